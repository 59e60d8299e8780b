#!/usr/bin/env python3
"""The whole demo station under the touchscreen UI: is the GUI event loop ever blocked?

  QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/bench_ui.py [--boards 2000] [--rate 20] [--browse 2]

Runs what `pcb-inspector ui --demo` runs (replay camera, the bundled INT8 model, the PLC simulator
and server, the records writer, the archive) and, while the line inspects `--boards` boards, a 10 ms
QTimer heartbeat on the GUI thread. With `--browse S` it also walks the screens every S seconds the
way a quality engineer would (history page, charts, a board opened in Review, users, back to the
line), so the database worker is busy too. Prints the heartbeat gaps (the issue's limit: 50 ms),
the slowest gaps with the screen that was showing, RSS over the run, and what the station did.
Figures, not assertions: the machine is shared; compare runs made back to back.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

BROWSE = ("history", "charts", "review", "users", "operator")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=2000, help="boards the line inspects")
    ap.add_argument("--rate", type=float, default=20.0, help="PLC simulator boards per second")
    ap.add_argument("--browse", type=float, default=2.0, help="seconds between screen changes (0: stay on the line)")
    ap.add_argument("--size", default="1280x800")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="override sys.setswitchinterval (s) after the UI set it, to compare GIL hand-over settings",
    )
    ap.add_argument(
        "--trace-memory", action="store_true", help="tracemalloc: print what grew between 25%% and the end (slow)"
    )
    args = ap.parse_args(argv)
    if args.trace_memory:
        import tracemalloc

        tracemalloc.start(8)
    snap = [None]

    from PySide6.QtCore import QElapsedTimer, QTimer

    from inspector.config import StationConfig
    from ui.session_setup import UiRuntime

    cfg = StationConfig()
    cfg.plc.simulator_rate = args.rate
    rt = UiRuntime.create(cfg, demo=True)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    w, h = (int(v) for v in args.size.split("x"))
    rt.window.resize(w, h)
    rt.window.show()
    proc = psutil.Process()

    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]
    gaps: list[tuple[float, str, int]] = []
    current = ["operator"]

    def beat() -> None:
        now = clock.nsecsElapsed()
        gaps.append(((now - last[0]) / 1e6, current[0], rt.bridge.submitted))
        last[0] = now

    # One login (scrypt) before measuring; the admin may open every screen. In the real UI the login
    # dialog hashes on the database worker.
    rt.session.login("admin", "9999")
    import gc

    gc_pauses: list[tuple[int, float, int]] = []
    gc_t = [0.0]

    def gc_cb(phase: str, info: dict) -> None:
        if phase == "start":
            gc_t[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_t[0]) * 1000, rt.bridge.submitted))

    gc.callbacks.append(gc_cb)
    heart = QTimer()
    heart.setInterval(10)
    heart.timeout.connect(beat)
    heart.start()
    rt.controller.start()

    rss: list[tuple[int, float]] = [(0, proc.memory_info().rss / 2**20)]
    t0 = time.monotonic()
    next_browse = t0 + args.browse if args.browse else float("inf")
    step = 0
    next_rss = args.boards // 20 or 1
    try:
        while rt.bridge.submitted < args.boards:
            rt.app.processEvents()
            time.sleep(0.002)
            now = time.monotonic()
            if now > t0 + args.timeout:
                print(f"timeout: only {rt.bridge.submitted} boards in {args.timeout:.0f} s", file=sys.stderr)
                break
            if now >= next_browse:
                screen = BROWSE[step % len(BROWSE)]
                step += 1
                current[0] = screen
                if screen == "review":
                    rt.window.screens["history"].open_first()  # looked up, then read, on the DB worker
                else:
                    rt.window.show_screen(screen)
                next_browse = now + args.browse
            if rt.bridge.submitted >= next_rss:
                rss.append((rt.bridge.submitted, proc.memory_info().rss / 2**20))
                if args.trace_memory and snap[0] is None and rt.bridge.submitted >= args.boards // 4:
                    snap[0] = tracemalloc.take_snapshot()
                next_rss += args.boards // 20 or 1
    finally:
        heart.stop()
        gc.callbacks.remove(gc_cb)
        if args.trace_memory and snap[0] is not None:
            end = tracemalloc.take_snapshot()
            print("Python allocations that grew after 25% (top 12):")
            for d in end.compare_to(snap[0], "traceback")[:12]:
                print(
                    f"  {d.size_diff / 1024:+.0f} KiB, {d.count_diff:+d} blocks: "
                    + " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(d.traceback)[:4])
                )
        elapsed = time.monotonic() - t0
        rss.append((rt.bridge.submitted, proc.memory_info().rss / 2**20))
        rt.controller.stop(wait=True)
        shown = rt.window.operator.last_update
        counts = shown.counts if shown is not None else None
        rt.close()

    g = np.array([x[0] for x in gaps[20:]])  # the first beats include the window's first paints
    slow = sorted(gaps[20:], key=lambda x: -x[0])[:5]
    warm = [m for n, m in rss if n >= args.boards // 4] or [rss[-1][1]]
    n = rss[-1][0]
    print(
        f"GIL switch interval {sys.getswitchinterval() * 1000:.1f} ms\n"
        f"UI bench: {n} demo boards in {elapsed:.1f} s ({n / max(elapsed, 1e-6):.1f}/s), "
        f"{rt.bridge.emitted} live frames drawn, screens visited {step}, "
        f"operator screen counted {counts.inspected if counts else 0} inspected / {counts.rejected if counts else 0} rejected\n"
        f"heartbeat 10 ms: {len(g)} beats, median {np.median(g):.1f} ms, p99 {np.percentile(g, 99):.1f} ms, "
        f"max {g.max():.1f} ms, beats over 50 ms: {int((g > 50).sum())}\n"
        f"slowest beats (ms, screen, boards so far): {[(round(a, 1), s, b) for a, s, b in slow]}\n"
        f"GC: {len(gc_pauses)} collections, gen2 {sum(1 for x in gc_pauses if x[0] == 2)}, longest (gen, ms, boards) "
        f"{[(g_, round(ms, 1), b) for g_, ms, b in sorted(gc_pauses, key=lambda x: -x[1])[:3]]}\n"
        f"RSS MiB: start {rss[0][1]:.1f}, after 25% {warm[0]:.1f}, end {warm[-1]:.1f} "
        f"(growth after warm-up {warm[-1] - warm[0]:+.1f})\n"
        f"RSS curve (boards: MiB): {', '.join(f'{b}: {m:.0f}' for b, m in rss)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
