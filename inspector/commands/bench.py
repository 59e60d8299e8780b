"""`pcb-inspector bench [--model M] [--frames N] [--size 640] [--json]`: detector and pipeline speed.

Why through the real pipeline: the figure that matters on the line is capture-to-verdict, not the
bare `invoke`. One run measures, side by side:
1. latency: the replay camera in software-trigger mode, one board at a time, through the real
   capture thread -> latest-frame slot -> inference thread -> `inspector.inspection.inspect_board`
   (registration, detection, decision: exactly the station's path) -> sink; each step's time
   (`register`, the detector's `pre`/`invoke`/`post`, `decide`, ... one row each) and end-to-end
   time (capture timestamp to the sink receiving the result);
   `handoff` is capture timestamp to the inference thread starting on the board;
   the boards sit `--shift` px / `--rotate` deg off their references, as boards in a fixture do,
   so registration estimates and resamples as it does on the line;
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

from ..detect.settings import PASSES
from ..image_file import read_image_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the detector and the pipeline (latency, throughput, RSS)")
    p.add_argument("--config", help="station.toml whose [detector] section is used (default: demo station)")
    p.add_argument(
        "--model",
        metavar="PATH",
        action="append",
        help="model package (.tflite, .onnx; its sidecar names the runtime; default: the configured model); "
        "give it twice (e.g. the LiteRT and the ONNX package) to print both side by side",
    )
    p.add_argument("--frames", type=int, default=200, help="boards timed in the latency phase (and throughput)")
    p.add_argument("--size", type=int, default=640, help="synthetic board size, px (square)")
    p.add_argument("--boards", type=int, default=24, help="distinct synthetic boards replayed in a loop")
    p.add_argument(
        "--designs",
        type=int,
        default=1,
        help="board designs (products, each with its own reference) the boards cycle through; a line runs one "
        "recipe for a batch, so 1 (default) times what it does; --designs equal to --boards switches recipe "
        "on every board (each new reference is then prepared afresh)",
    )
    p.add_argument("--threads", type=int, default=None, help="override detector.threads")
    p.add_argument(
        "--passes",
        choices=PASSES,
        default=None,
        help="override detector.passes: the package's passes, the full-size board and its mirror, or one pass",
    )
    p.add_argument(
        "--delegate", choices=["auto", "cpu"], default=None, help="override detector.delegate (LiteRT packages)"
    )
    p.add_argument("--warmup", type=int, default=10, help="boards run before timing starts")
    p.add_argument("--shift", type=float, default=3.0, help="largest board offset from its reference, px")
    p.add_argument("--rotate", type=float, default=0.3, help="largest board rotation against its reference, deg")
    p.add_argument(
        "--code",
        choices=["region", "frame", "none"],
        default="region",
        help="a DataMatrix serial on every board, decoded beside the detector in the recipe's region (default), "
        "over the whole frame, or none (when the recipe has no [recipes.code] of its own)",
    )
    p.add_argument(
        "--camera",
        choices=["none", "gray", "colour"],
        default="none",
        help="render every board and its reference as a gray or colour camera sees it (texture, light, blur, "
        "noise, JPEG; --shift/--rotate off), so registration and the model's input preparation work as on a "
        "line; none (default): the binary synthetic boards, which the preparation passes untouched",
    )
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


#: Timing rows in path order: (key in the result's timings_ms, printed name). Steps a detector or
#: station does not report are left out of the table.
STEP_ROWS: tuple[tuple[str, str], ...] = (
    ("queue", "handoff"),
    ("undistort", "undistort"),
    ("register", "register"),
    ("prepare", "prepare"),
    ("pre", "pre"),
    ("invoke", "invoke"),
    ("post", "post"),
    ("serial", "serial *"),
    ("decide", "decide"),
)


def _misplace(folder: Path, shift: float, rotate: float, seed: int = 5) -> None:
    """Move every board off its reference (random offset up to `shift` px, rotation up to `rotate` deg)."""
    import cv2

    rng = np.random.default_rng(seed)
    for path in sorted(folder.glob("*_test.png")):
        img = read_image_file(path)
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-rotate, rotate)), 1.0)
        m[:, 2] += rng.uniform(-shift, shift, 2)
        cv2.imwrite(str(path), cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))


def _as_camera(folder: Path, mode: str, shift: float, rotate: float, seed: int = 9) -> None:
    """Replace every board and reference by a camera's view of it (`inspector.evaluation.camera_domain`).

    Why: the synthetic boards are binary, and a binary frame skips the preparation (a histogram check,
    0.5 ms), while a camera frame is registered and binarised under its own light (docs/model.md, *Image
    domain*). One golden capture per design is the recipe's reference; every board is its own capture,
    `shift` px / `rotate` deg off, with its own surface, light, blur, noise and JPEG.
    """
    import zlib

    import cv2

    from ..evaluation.camera_domain import render

    golden: dict[int, np.ndarray] = {}
    for i, path in enumerate(sorted(folder.glob("*_test.png"))):
        ref_path = path.with_name(path.name.replace("_test", "_temp"))
        ref = read_image_file(ref_path, cv2.IMREAD_GRAYSCALE)
        key = zlib.crc32(ref.tobytes())
        if key not in golden:
            golden[key] = render(ref, seed * 7919 + len(golden), board_seed=key, mode=mode)[0]
        cv2.imwrite(str(ref_path), golden[key])
        board = read_image_file(path, cv2.IMREAD_GRAYSCALE)
        frame, _ = render(
            board, seed * 104_729 + i, board_seed=seed * 15_485_863 + i, mode=mode, max_shift=shift, max_rot_deg=rotate
        )
        cv2.imwrite(str(path), frame)


def _with_code(folder: Path, recipe, code: str, size: int):
    """Print a DataMatrix serial in each board's top-right corner and read it as `code` says.

    Why on by default: reading the serial runs beside the detector on every board of a coded product,
    so its time (row `serial`, decoded in parallel with pre/invoke/post) belongs in the figures.
    """
    if code == "none" or recipe.code is not None:
        return recipe
    import cv2

    from ..board_serial import paste_code
    from ..config import BoardCode

    x, y, w, h = size - 56, 8, 48, 48  # 8-character serials: a 14x14 DataMatrix, 3 px modules, quiet zone
    for i, path in enumerate(sorted(folder.glob("*_test.png"))):
        img = read_image_file(path, cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(path), paste_code(img, f"BN{i:06d}", (x, y))[0])
    region = (x, y, w, h) if code == "region" else None
    return recipe.model_copy(update={"code": BoardCode(region=region)})


def run_bench(
    model: Path | None,
    frames: int,
    size: int,
    boards: int = 24,
    threads: int | None = None,
    delegate: str | None = None,
    warmup: int = 10,
    config: str | None = None,
    shift: float = 3.0,
    rotate: float = 0.3,
    code: str = "region",
    designs: int = 1,
    camera: str = "none",
    passes: str | None = None,
) -> dict:
    from ..capture.replay import ReplayCameraSource
    from ..config import ReplayCamera, load_config
    from ..decision import RecipeRules
    from ..detect.factory import create_detector
    from ..detect.package import read_meta
    from ..detect.registry import settings_for_model
    from ..domain import TriggerRequest
    from ..health import Health
    from ..host_cpu import host_cpu
    from ..pipeline import Pipeline
    from ..registration import BoardRegistrar, settings_from_config
    from ..repeat_watch import watch_from
    from ..synth import write_boards

    cfg = load_config(config)
    # --model: that package on the runtime its sidecar names (so A and B may be LiteRT and ONNX Runtime).
    det_cfg = settings_for_model(cfg.detector, Path(model)) if model is not None else cfg.detector.model_copy()
    if threads is not None:
        det_cfg.threads = threads
    if passes is not None and "passes" in type(det_cfg).model_fields:  # packaged models; the classical one has none
        det_cfg.passes = passes
    if delegate is not None and "delegate" in type(det_cfg).model_fields:  # LiteRT's key; other runtimes lack it
        det_cfg.delegate = delegate
    with tempfile.TemporaryDirectory(prefix="pcb-bench-") as tmp:
        folder = write_boards(Path(tmp), boards, seed=11, size=size, designs=designs)
        recipe = _with_code(folder, cfg.recipe(), code, size)
        if camera != "none":
            _as_camera(folder, camera, shift, rotate)
        elif shift > 0 or rotate > 0:
            _misplace(folder, shift, rotate)
        rules = RecipeRules(recipe)

        # 1. latency: one board per trigger through the real pipeline.
        detector = create_detector(det_cfg)
        cam = ReplayCameraSource(ReplayCamera(path=folder, fps=None, loop=True, trigger="software"))
        sink = _TimingSink()
        health = Health()
        registrar = BoardRegistrar(settings_from_config(cfg.calibration))
        pipe = Pipeline(
            cam,
            detector,
            rules,
            health,
            [sink],
            triggered=True,
            keep_images=False,
            registrar=registrar,
            repeat=watch_from(cfg.supervisor),  # as the station watches its triggered boards
        )
        pipe.start()
        e2e, tiles, failed = [], [], []
        steps: dict[str, list[float]] = {key: [] for key, _ in STEP_ROWS}
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
                    for key, values in steps.items():
                        if key in r.timings_ms:
                            values.append(r.timings_ms[key])
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
        pipe2 = Pipeline(
            cam2,
            detector2,
            rules,
            Health(),
            [sink2],
            keep_images=False,
            registrar=BoardRegistrar(settings_from_config(cfg.calibration)),
        )
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
    inv50 = _pct(steps["invoke"], 50)
    # The passes that ran: the package's, less what `[detector] passes` leaves out.
    meta = getattr(detector, "meta", None) or read_meta(det_cfg.model)
    rows = {}
    for key, values in steps.items():
        if values:
            rows[f"{key}_p50_ms"] = _pct(values, 50)
            rows[f"{key}_p99_ms"] = _pct(values, 99)
    return {
        "model": str(det_cfg.model),
        "model_id": info.model_id,
        "backend": info.backend,
        # the INT8 invoke differs fourfold between CPUs with and without dot-product instructions (`host_cpu`)
        "cpu": host_cpu().to_json(),
        "input": list(info.input_size),
        "board_size": size,
        "frames": len(e2e),
        "tiles_per_board": float(np.median(tiles)) if tiles else float("nan"),
        "passes": getattr(det_cfg, "passes", "package"),
        "tta": meta.tta,
        "scales": [1.0, *(meta.multiscale.scales if meta.multiscale else ())],
        # smaller passes that ran on the graph at their own size rather than letterboxed into the input
        "sized_inputs": [list(wh) for wh in getattr(detector, "sized_inputs", ())],
        "board_shift_px": shift,
        "board_rotate_deg": rotate,
        "designs": designs,
        "camera": camera,
        "steps": [key for key, _ in STEP_ROWS if steps[key]],
        **rows,
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
    if not 1 <= args.designs <= args.boards:
        raise CommandError(f"--designs {args.designs}: must be between 1 and --boards ({args.boards})")
    models = [Path(m) for m in args.model or []]
    if len(models) > 1:
        return _bench_side_by_side(models, args)
    try:
        res = _run_args(models[0] if models else None, args)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))
        return 0
    print(f"model    {res['model_id']} ({res['model']})")
    print(f"backend  {res['backend']}")
    print(f"cpu      {_cpu_line(res['cpu'])}")
    sized = "".join(f", {w}x{h}" for w, h in res.get("sized_inputs", ()))
    print(
        f"boards   {res['frames']} x {res['board_size']}x{res['board_size']} px, "
        f"{res['tiles_per_board']:.0f} model input(s) per board (tiles over all scales) of "
        f"{res['input'][0]}x{res['input'][1]}{sized}{' x2 mirror TTA' if res.get('tta') == 'hflip' else ''}"
    )
    if res.get("passes", "package") != "package":
        print(f"passes   {res['passes']} (detector.passes; the package declares more)")
    print(f"placed   up to {res['board_shift_px']:g} px / {res['board_rotate_deg']:g} deg off the reference")
    n = res["designs"]
    print(f"designs  {n} ({'one recipe, one reference' if n == 1 else f'{n} references in turn'})")
    if res.get("camera", "none") != "none":
        print(f"camera   {res['camera']} renderings of the boards and their references (prepared as a line's)")
    print(f"{'':12}{'p50 ms':>10}{'p99 ms':>10}")
    for key, name in (*STEP_ROWS, ("e2e", "end-to-end")):
        if key + "_p50_ms" in res:
            print(f"{name:12}{res[key + '_p50_ms']:10.2f}{res[key + '_p99_ms']:10.2f}")
    if "serial_p50_ms" in res:
        print("* serial: the board code, decoded in a helper thread while pre/invoke/post run")
    print(f"overhead ratio (e2e p50 / invoke p50)  {res['overhead_ratio']:.3f}")
    print(f"throughput (capture || inference)      {res['boards_per_s']:.1f} boards/s")
    print(f"peak RSS                               {res['rss_mb']:.0f} MB")
    if res["failed"]:
        print(f"WARNING: {res['failed']} boards failed")
    return 0


def _run_args(model: Path | None, args: argparse.Namespace) -> dict:
    """`run_bench` with the command line's settings (one model)."""
    return run_bench(
        model,
        args.frames,
        args.size,
        boards=args.boards,
        threads=args.threads,
        delegate=args.delegate,
        warmup=args.warmup,
        config=args.config,
        shift=args.shift,
        rotate=args.rotate,
        code=args.code,
        designs=args.designs,
        camera=args.camera,
        passes=args.passes,
    )


def _cpu_line(cpu: dict) -> str:
    """The bench's `cpu` line; a CPU without INT8 dot-product instructions is said to be one."""
    from ..host_cpu import HostCpu

    line = HostCpu(**{**cpu, "int8_dot": tuple(cpu["int8_dot"])}).summary()
    if not cpu["int8_dot"]:
        line += " (INT8 several times slower: docs/performance.md, *Which CPU*)"
    return line


def _bench_side_by_side(models: list[Path], args: argparse.Namespace) -> int:
    """The same boards through the same pipeline for each model, one column each (e.g. LiteRT vs ONNX Runtime)."""
    from ..cli import CommandError

    results = []
    for m in models:
        try:
            results.append(_run_args(m, args))
        except RuntimeError as exc:
            raise CommandError(f"{m}: {exc}") from None
    if args.json:
        print(json.dumps([{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in results]))
        return 0
    width = max(24, *(max(len(r["backend"]), len(r["model_id"])) + 2 for r in results))
    print(f"boards   {results[0]['frames']} x {args.size}x{args.size} px, same boards and pipeline for each model")
    print(f"cpu      {_cpu_line(results[0]['cpu'])}")
    print(f"{'':26}" + "".join(f"{r['model_id']:>{width}}" for r in results))
    print(f"{'backend':26}" + "".join(f"{r['backend']:>{width}}" for r in results))
    print(f"{'inputs per board':26}" + "".join(f"{r['tiles_per_board']:>{width}.0f}" for r in results))
    for key, name in (*STEP_ROWS, ("e2e", "end-to-end")):
        for q in ("p50", "p99"):
            k = f"{key}_{q}_ms"
            if any(k in r for r in results):
                cells = "".join(f"{r[k]:>{width}.2f}" if k in r else f"{'-':>{width}}" for r in results)
                print(f"{name + ' ' + q + ' ms':26}{cells}")
    print(f"{'throughput boards/s':26}" + "".join(f"{r['boards_per_s']:>{width}.1f}" for r in results))
    # One process runs the models in turn: a later column's peak includes the earlier ones.
    print(f"{'peak RSS MB (so far)':26}" + "".join(f"{r['rss_mb']:>{width}.0f}" for r in results))
    for r in results:
        if r["failed"]:
            print(f"WARNING: {r['model_id']}: {r['failed']} boards failed")
    return 0
