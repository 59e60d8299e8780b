"""`pcb-inspector bench [--model M] [--frames N] [--size 640] [--json]`: detector and pipeline speed.

Why through the real pipeline: the figure that matters on the line is capture-to-verdict, not the
bare `invoke`. One run measures, side by side:
1. latency: the replay camera in software-trigger mode, one board at a time, through the real
   capture thread -> latest-frame slot -> inference thread -> decision -> sink; each board's
   invoke, pre-/post-processing (from the detector) and end-to-end time (capture timestamp to
   the sink receiving the result);
   `handoff` is capture timestamp to the inference thread starting on the board;
2. throughput: the same boards free-running as fast as the camera delivers them, with capture and
   inference overlapped (boards/s);
and the process's peak RSS. `overhead_ratio` is end-to-end p50 over invoke p50.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the detector and the pipeline (latency, throughput, RSS)")
    p.add_argument("--config", help="station.toml whose [detector] section is used (default: demo station)")
    p.add_argument("--model", metavar="PATH", help=".tflite model (default: the configured model)")
    p.add_argument("--frames", type=int, default=200, help="boards timed in the latency phase (and throughput)")
    p.add_argument("--size", type=int, default=640, help="synthetic board size, px (square)")
    p.add_argument("--boards", type=int, default=24, help="distinct synthetic boards replayed in a loop")
    p.add_argument("--threads", type=int, default=None, help="override detector.threads")
    p.add_argument("--delegate", choices=["auto", "cpu"], default=None, help="override detector.delegate")
    p.add_argument("--warmup", type=int, default=10, help="boards run before timing starts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=bench)


class _TimingSink:
    """Records when each result reaches a sink (what the PLC/database writer would see)."""

    name = "bench"

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[tuple[float, object]] = []
        self.event = threading.Event()

    def submit(self, result) -> None:
        with self.lock:
            self.items.append((time.monotonic(), result))
        self.event.set()

    def take(self) -> list[tuple[float, object]]:
        with self.lock:
            out, self.items = self.items, []
        return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def run_bench(
    model: Path | None,
    frames: int,
    size: int,
    boards: int = 24,
    threads: int | None = None,
    delegate: str | None = None,
    warmup: int = 10,
    config: str | None = None,
) -> dict:
    from ..capture.replay import ReplayCameraSource
    from ..config import ReplayCamera, load_config
    from ..decision import RecipeRules
    from ..detect.factory import create_detector
    from ..detect.package import read_meta
    from ..domain import TriggerRequest
    from ..health import Health
    from ..pipeline import Pipeline
    from ..synth import write_boards

    cfg = load_config(config)
    det_cfg = cfg.detector.model_copy()
    if model is not None:
        det_cfg.model = Path(model)
    if threads is not None:
        det_cfg.threads = threads
    if delegate is not None:
        det_cfg.delegate = delegate
    with tempfile.TemporaryDirectory(prefix="pcb-bench-") as tmp:
        folder = write_boards(Path(tmp), boards, seed=11, size=size)
        rules = RecipeRules(cfg.recipe())

        # 1. latency: one board per trigger through the real pipeline.
        detector = create_detector(det_cfg)
        cam = ReplayCameraSource(ReplayCamera(path=folder, fps=None, loop=True, trigger="software"))
        sink = _TimingSink()
        health = Health()
        pipe = Pipeline(cam, detector, rules, health, [sink], triggered=True, keep_images=False)
        pipe.start()
        e2e, invoke, pre, post, queue, tiles, failed = [], [], [], [], [], [], []
        try:
            for i in range(warmup + frames):
                ticket = pipe.trigger(TriggerRequest(part_seq=i))
                if not ticket.done.wait(60):
                    raise RuntimeError(f"no result for bench board {i} within 60 s")
                for t_sink, r in sink.take():
                    if i < warmup:
                        continue
                    if r.reason:
                        failed.append(r.reason)
                        continue
                    e2e.append((t_sink - r.captured_at) * 1000)
                    invoke.append(r.timings_ms.get("invoke", float("nan")))
                    pre.append(r.timings_ms.get("pre", float("nan")))
                    post.append(r.timings_ms.get("post", float("nan")))
                    queue.append(r.timings_ms.get("queue", float("nan")))
                    tiles.append(r.timings_ms.get("tiles", 1.0))
        finally:
            pipe.stop()
        info = pipe.detector_info
        if info is None or failed and not e2e:
            reason = health.get("model").reason if health.get("model") else (failed[:1] or ["unknown"])[0]
            raise RuntimeError(f"benchmark could not run the model: {reason}")

        # 2. throughput: free-run, capture and inference overlapped.
        detector2 = create_detector(det_cfg)
        cam2 = ReplayCameraSource(ReplayCamera(path=folder, fps=None, loop=True, trigger="free_run"))
        sink2 = _TimingSink()
        pipe2 = Pipeline(cam2, detector2, rules, Health(), [sink2], keep_images=False)
        pipe2.start()
        try:
            got, t_first = 0, None
            deadline = time.monotonic() + 120
            while got < warmup + frames and time.monotonic() < deadline:
                sink2.event.wait(1.0)
                sink2.event.clear()
                for t, _r in sink2.take():
                    got += 1
                    if got == warmup:
                        t_first, n_first = t, got
                    t_last = t
        finally:
            pipe2.stop()
        boards_per_s = (got - n_first) / (t_last - t_first) if t_first is not None and t_last > t_first else 0.0

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    inv50 = _pct(invoke, 50)
    meta = read_meta(det_cfg.model)
    return {
        "model": str(det_cfg.model),
        "model_id": info.model_id,
        "backend": info.backend,
        "input": list(info.input_size),
        "board_size": size,
        "frames": len(e2e),
        "tiles_per_board": float(np.median(tiles)) if tiles else float("nan"),
        "tta": meta.tta,
        "scales": [1.0, *(meta.multiscale.scales if meta.multiscale else ())],
        "invoke_p50_ms": inv50,
        "invoke_p99_ms": _pct(invoke, 99),
        "pre_p50_ms": _pct(pre, 50),
        "pre_p99_ms": _pct(pre, 99),
        "post_p50_ms": _pct(post, 50),
        "post_p99_ms": _pct(post, 99),
        "queue_p50_ms": _pct(queue, 50),
        "queue_p99_ms": _pct(queue, 99),
        "e2e_p50_ms": _pct(e2e, 50),
        "e2e_p99_ms": _pct(e2e, 99),
        "overhead_ratio": _pct(e2e, 50) / inv50 if inv50 > 0 else float("nan"),
        "boards_per_s": boards_per_s,
        "rss_mb": rss_mb,
        "failed": len(failed),
    }


def bench(args: argparse.Namespace) -> int:
    from ..cli import CommandError

    if args.frames < 1:
        raise CommandError(f"--frames {args.frames}: must be at least 1")
    try:
        res = run_bench(
            Path(args.model) if args.model else None,
            args.frames,
            args.size,
            boards=args.boards,
            threads=args.threads,
            delegate=args.delegate,
            warmup=args.warmup,
            config=args.config,
        )
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))
        return 0
    print(f"model    {res['model_id']} ({res['model']})")
    print(f"backend  {res['backend']}")
    print(
        f"boards   {res['frames']} x {res['board_size']}x{res['board_size']} px, "
        f"{res['tiles_per_board']:.0f} model input(s) of {res['input'][0]}x{res['input'][1]} per board "
        f"(tiles over all scales){' x2 mirror TTA' if res.get('tta') == 'hflip' else ''}"
    )
    print(f"{'':10}{'p50 ms':>10}{'p99 ms':>10}")
    rows = (("invoke", "invoke"), ("pre", "pre"), ("post", "post"), ("queue", "handoff"), ("e2e", "end-to-end"))
    for key, name in rows:
        print(f"{name:10}{res[key + '_p50_ms']:10.2f}{res[key + '_p99_ms']:10.2f}")
    print(f"overhead ratio (e2e p50 / invoke p50)  {res['overhead_ratio']:.3f}")
    print(f"throughput (capture || inference)      {res['boards_per_s']:.1f} boards/s")
    print(f"peak RSS                               {res['rss_mb']:.0f} MB")
    if res["failed"]:
        print(f"WARNING: {res['failed']} boards failed")
    return 0
