"""`pcb-inspector soak --boards N [--json]`: run the whole station for N boards and report what leaks.

Why: a station runs for weeks; a leak of a few bytes or one file descriptor per board, or a record
the PLC saw acknowledged but the database never got, shows only after tens of thousands of boards.
The soak drives the real station (camera, detector, recorder with its SQLite and archive, the Modbus
server and its handshake) as fast as it goes: by default with the line PLC simulator in a separate
process (`pcb-inspector plc-sim`, so its own bookkeeping does not count in the station's memory), or
with `--external-plc` by a real PLC on the configured server port. It samples the station process's
RSS, open file descriptors and threads as it goes, then compares the records in the database with
the boards the PLC saw acknowledged.

Memory is judged on the second half only (the first half includes warm-up, allocator pools and
SQLite's page cache filling), as a least-squares slope in bytes per 1000 boards: through every
sample, and through the median of each tenth (`slice_medians`, the resting footprint; a sample
taken mid-board swings by a few MB, which a short run's line follows). The samples live in
a buffer allocated before the first board (`SampleLog`): the soak measures its own process, so a
series that grew by one object per sample would add its own slope to the one it reports. With
`--data` the series is kept in `soak-samples.csv` there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PART_LINE = re.compile(r"^part (\d+): (PASS|REJECT)")


class SoakError(RuntimeError):
    """The soak could not run (the station never got going); the message says why."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", help="run the whole station for N boards: throughput, memory, fds, lost records")
    p.add_argument("--config", help="station.toml (default: the demo station: replay camera, shipped model)")
    p.add_argument("--boards", type=int, default=1000, help="boards to inspect (default 1000)")
    p.add_argument("--rate", default="1000/s", help="PLC trigger rate; above the station's speed = as fast as it goes")
    p.add_argument(
        "--external-plc",
        action="store_true",
        help="no simulator: a real PLC drives the station's Modbus server (plc.host/plc.port of the config)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="folder for the soak's database and archive (default: a temporary folder, removed afterwards)",
    )
    p.add_argument(
        "--archive",
        choices=["all", "rejects", "none"],
        default="rejects",
        help="storage.archive for the soak (default rejects; 'all' writes every image)",
    )
    p.add_argument("--sample-s", type=float, default=1.0, help="seconds between RSS/fd/thread samples")
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=180.0,
        help="give up when no board is done this many seconds after the start (model missing, PLC absent)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=soak)


@dataclass
class Sample:
    t: float
    boards: int
    rss: int
    fds: int
    threads: int
    heap: int = 0
    """Bytes the C allocator has handed out and not had back (`HeapInUse`)."""
    py_blocks: int = 0
    """Python's small-object blocks in use (`sys.getallocatedblocks`)."""


class HeapInUse:
    """glibc's `mallinfo2`: bytes in use in every arena plus the mmapped chunks; 0 where unavailable.

    Why next to RSS: glibc keeps freed memory or gives it back as it sees fit (trimming the heap's
    top, mmapping large blocks past a threshold that moves), so RSS steps by MB between steady
    states with no leak at all. Bytes in use are what a native leak would raise; Python's objects
    live in its own arenas and are counted by `sys.getallocatedblocks` instead.
    """

    FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")

    def __init__(self) -> None:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in self.FIELDS]

        try:
            self._fn: Any = ctypes.CDLL(None).mallinfo2
            self._fn.restype = MallInfo2
        except (OSError, AttributeError):  # not glibc, or glibc before 2.33
            self._fn = None

    def __call__(self) -> int:
        if self._fn is None:
            return 0
        mi = self._fn()
        return int(mi.uordblks + mi.hblkhd)


class SampleLog:
    """The soak's RSS/fd/thread series in a fixed buffer, evenly spread over a run of any length.

    Why: the soak samples the process it runs in. A list that grows by one `Sample` per second
    (~200 bytes each) added ~40 KiB per 1,000 boards at 5 boards/s to the very slope it reported.
    Here the buffer is allocated once, before the first board; when it is full, every other stored
    sample is dropped and only every second one is stored from then on, so between `capacity / 2`
    and `capacity` samples cover the whole run at even spacing. Peaks are kept over every sample,
    stored or not, and the first sample with a board done is kept aside (the start of the figures).
    """

    COLUMNS = ("t", "boards", "rss", "fds", "threads", "heap", "py_blocks")

    def __init__(self, capacity: int = 4096) -> None:
        import numpy as np

        if capacity < 4 or capacity % 2:
            raise ValueError("capacity must be even and at least 4")
        self._rows = np.zeros((capacity, len(self.COLUMNS)), np.float64)
        self.n = 0
        self.stride = 1
        self.seen = 0
        self.first_warm: Sample | None = None
        self.last: Sample | None = None
        self.rss_max = 0
        self.fds_max = 0
        self.threads_max = 0

    def add(self, s: Sample, *, keep: bool = False) -> None:
        """Take one sample; it is stored if it falls on the current spacing (or `keep`: the last one)."""
        self.last = s
        self.rss_max = max(self.rss_max, s.rss)
        self.fds_max = max(self.fds_max, s.fds)
        self.threads_max = max(self.threads_max, s.threads)
        if self.first_warm is None and s.boards > 0:
            self.first_warm = s
        on_spacing = self.seen % self.stride == 0
        self.seen += 1
        if not (on_spacing or keep):
            return
        if self.n == len(self._rows):
            half = self._rows[::2].copy()  # rows 0, 2, 4, ...: the spacing doubles
            self._rows[: len(half)] = half
            self.n = len(half)
            self.stride *= 2
        self._rows[self.n] = (s.t, s.boards, s.rss, s.fds, s.threads, s.heap, s.py_blocks)
        self.n += 1

    def rows(self) -> Any:
        """The stored samples, oldest first (one row each, columns as in COLUMNS)."""
        return self._rows[: self.n]

    def write_csv(self, path: Path) -> None:
        with open(path, "w") as f:
            f.write(",".join(self.COLUMNS) + "\n")
            for t, *rest in self.rows():
                f.write(f"{t:.3f}," + ",".join(f"{v:.0f}" for v in rest) + "\n")


@dataclass
class SoakReport:
    boards: int = 0
    seconds: float = 0.0
    boards_per_s: float = 0.0
    detector: str = ""
    plc: str = ""
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_slope_second_half_kb_per_1000_boards: float = 0.0
    rss_slope_second_half_mb_per_hour: float = 0.0
    rss_slope_second_half_medians_kb_per_1000_boards: float = 0.0
    """The same slope through the median RSS of each tenth of the second half (by boards): the
    resting footprint, without the few-MB swings of a sample taken mid-board."""
    rss_second_half_rise_mb: float = 0.0
    """Median RSS of the second half's last tenth minus that of its first tenth."""
    heap_slope_second_half_kb_per_1000_boards: float = 0.0
    """Through the medians of the tenths, for the C allocator's bytes in use (`HeapInUse`)."""
    py_blocks_slope_second_half_per_1000_boards: float = 0.0
    """Through the medians of the tenths, for Python's blocks in use (a per-board object leak)."""
    fds_start: int = 0
    fds_end: int = 0
    fds_max: int = 0
    threads_start: int = 0
    threads_end: int = 0
    threads_max: int = 0
    plc_acknowledged: int = 0
    plc_missed: int = 0
    plc_violations: int = 0
    database_records: int = 0
    records_lost: int = 0
    """Boards the PLC saw acknowledged (RESULTS_VALID) that have no database record."""
    records_unacknowledged: int = 0
    """Records the PLC never saw acknowledged (the board in flight when the PLC stopped)."""
    archive: str = ""
    archive_mb: float = 0.0
    samples: int = 0
    notes: list[str] = field(default_factory=list)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope dy/dx; 0 for fewer than two distinct x."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def slice_medians(boards: Any, rss: Any, slices: int = 10) -> tuple[list[float], list[float]]:
    """Median boards and median RSS of each of `slices` equal board ranges (empty ones left out).

    Why: RSS read at a random moment of a board's cycle swings by a few MB (the frame, the
    detector's tensors, the writer's batch in flight); over a few thousand boards a least-squares
    line through every sample follows those swings as much as any trend. The medians of slices are
    the resting footprint, and a line through them is what "grows per 1000 boards" means.
    """
    import numpy as np

    boards, rss = np.asarray(boards, np.float64), np.asarray(rss, np.float64)
    if len(boards) == 0:
        return [], []
    edges = np.linspace(boards.min(), boards.max(), slices + 1)
    xs: list[float] = []
    ys: list[float] = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        sel = (boards >= lo) & ((boards < hi) if i < slices - 1 else (boards <= hi))
        if sel.any():
            xs.append(float(np.median(boards[sel])))
            ys.append(float(np.median(rss[sel])))
    return xs, ys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_config(args: argparse.Namespace, data_dir: Path) -> Any:
    from ..config import StationConfig, load_config

    cfg = load_config(args.config)
    d = cfg.model_dump()
    d["storage"].update(
        database_url=f"sqlite:///{data_dir / 'soak.db'}",
        archive_dir=str(data_dir / "archive"),
        spool_dir=str(data_dir / "spool"),
        archive=args.archive,
    )
    d["metrics"]["listen"] = None  # a soak must not take the station's metrics port
    if args.external_plc:
        if d["plc"]["mode"] != "server":
            raise ValueError("--external-plc needs plc.mode = 'server' in the config (the PLC polls the station)")
        d["plc"]["simulator"] = False
    else:
        d["plc"].update(mode="server", host="127.0.0.1", port=_free_port(), simulator=False)
    return StationConfig.model_validate(d)


def _db_part_seqs(url: str) -> list[int | None]:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return [r[0] for r in c.execute(text("SELECT part_seq FROM inspections"))]
    finally:
        eng.dispose()


def run_soak(args: argparse.Namespace, data_dir: Path, log: Any = None) -> SoakReport:
    import psutil

    from ..station import build_station

    cfg = _build_config(args, data_dir)
    proc = psutil.Process(os.getpid())
    rep = SoakReport(archive=args.archive)
    station = build_station(cfg)
    sim: subprocess.Popen | None = None
    sim_out = data_dir / "plc-sim.log"
    samples = SampleLog()
    heap_in_use = HeapInUse()

    def sample(keep: bool = False) -> Sample:
        s = Sample(time.monotonic(), station.pipeline.results_published, proc.memory_info().rss, proc.num_fds(), 0)
        s.threads = proc.num_threads()
        s.heap, s.py_blocks = heap_in_use(), sys.getallocatedblocks()
        samples.add(s, keep=keep)
        return s

    # Ctrl-C or SIGTERM ends the run early and still reports it (the figures so far are worth having).
    stopped: list[str] = []
    old_term = signal.signal(signal.SIGTERM, lambda *_: stopped.append("SIGTERM"))
    station.start()
    t0 = time.monotonic()
    try:
        if args.external_plc:
            rep.plc = f"external PLC on {cfg.plc.host}:{cfg.plc.port}"
        else:
            cmd = [sys.executable, "-m", "inspector.cli", "plc-sim", "--station", f"127.0.0.1:{cfg.plc.port}"]
            cmd += ["--boards", str(args.boards), "--rate", args.rate, "--result-timeout", "30"]
            with open(sim_out, "w") as out:
                sim = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            rep.plc = f"line PLC simulator (separate process), rate {args.rate}"
        next_log = time.monotonic() + 30
        while True:
            s = sample()
            if s.boards == 0 and time.monotonic() - t0 > args.ready_timeout:
                raise SoakError(
                    f"no board inspected {args.ready_timeout:.0f} s after the start; station: {station.health.summary()}"
                )
            if sim is not None and sim.poll() is not None:
                break
            if sim is None and s.boards >= args.boards:
                break
            if stopped:
                rep.notes.append(f"stopped early by {stopped[0]} after {s.boards} of {args.boards} boards")
                break
            if log and time.monotonic() >= next_log:
                log(f"soak: {s.boards} boards, RSS {s.rss / 1e6:.1f} MB, fds {s.fds}, threads {s.threads}")
                next_log += 30
            try:
                time.sleep(args.sample_s)
            except KeyboardInterrupt:
                stopped.append("Ctrl-C")
        rep.seconds = time.monotonic() - t0
        sample(keep=True)
        info = station.pipeline.detector_info
        rep.detector = f"{info.model_id} on {info.backend}" if info else "no model loaded"
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if sim is not None and sim.poll() is None:
            sim.terminate()
            sim.wait(10)
        station.stop()  # flushes the recorder: every published result is in the database after this

    # ------------------------------------------------------------------ figures
    last = samples.last
    assert last is not None  # sampled at least once before the loop could end
    first = samples.first_warm or last
    rows = samples.rows()
    if args.data:
        samples.write_csv(data_dir / "soak-samples.csv")
    rep.boards = last.boards
    rep.boards_per_s = (last.boards - first.boards) / max(1e-9, last.t - first.t)
    rep.rss_start_mb, rep.rss_end_mb = first.rss / 1e6, last.rss / 1e6
    rep.rss_peak_mb = samples.rss_max / 1e6
    half = rows[rows[:, 1] >= last.boards / 2]
    if len(half) < 10:
        rep.notes.append(f"only {len(half)} samples in the second half: the RSS slope is warm-up noise, not a trend")
    t, boards, rss = half[:, 0].tolist(), half[:, 1].tolist(), half[:, 2].tolist()
    rep.rss_slope_second_half_kb_per_1000_boards = slope(boards, rss) * 1000 / 1024
    rep.rss_slope_second_half_mb_per_hour = slope(t, rss) * 3600 / 1e6
    mx, my = slice_medians(boards, rss)
    rep.rss_slope_second_half_medians_kb_per_1000_boards = slope(mx, my) * 1000 / 1024
    rep.rss_second_half_rise_mb = (my[-1] - my[0]) / 1e6 if my else 0.0
    rep.heap_slope_second_half_kb_per_1000_boards = slope(*slice_medians(boards, half[:, 5])) * 1000 / 1024
    rep.py_blocks_slope_second_half_per_1000_boards = slope(*slice_medians(boards, half[:, 6])) * 1000
    rep.fds_start, rep.fds_end, rep.fds_max = first.fds, last.fds, samples.fds_max
    rep.threads_start, rep.threads_end = first.threads, last.threads
    rep.threads_max = samples.threads_max
    rep.samples = len(rows)

    db = _db_part_seqs(cfg.storage.database_url)
    rep.database_records = len(db)
    if sim is not None:
        acked: set[int] = set()
        for line in sim_out.read_text().splitlines():
            m = PART_LINE.match(line)
            if m:
                acked.add(int(m.group(1)))
            elif line.startswith("VIOLATION"):
                rep.plc_violations += 1
            elif line.startswith("boards "):
                m2 = re.search(r"missed (\d+)", line)
                rep.plc_missed = int(m2.group(1)) if m2 else 0
        recorded = {p for p in db if p is not None}
        rep.plc_acknowledged = len(acked)
        rep.records_lost = len(acked - recorded)
        rep.records_unacknowledged = len(recorded - acked)
        if sim.returncode not in (0, None):
            rep.notes.append(f"plc-sim exited {sim.returncode} (see the violations count)")
    else:
        rep.notes.append(
            "external PLC: the PLC's own count is not visible here; records compared with boards published"
        )
        rep.plc_acknowledged = rep.boards
        rep.records_lost = max(0, rep.boards - rep.database_records)
    archive = Path(cfg.storage.archive_dir)
    if archive.exists():
        rep.archive_mb = sum(p.stat().st_size for p in archive.rglob("*") if p.is_file()) / 1e6
    return rep


def soak(args: argparse.Namespace) -> int:
    from ..cli import CommandError

    if args.boards < 1:
        raise CommandError("--boards must be at least 1")
    say = None if args.json else (lambda m: print(m, flush=True))
    try:
        if args.data:
            args.data.mkdir(parents=True, exist_ok=True)
            rep = run_soak(args, args.data, say)
        else:
            with tempfile.TemporaryDirectory(prefix="pcb-soak-") as d:
                rep = run_soak(args, Path(d), say)
    except (ValueError, SoakError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(asdict(rep)))
    else:
        print(
            f"boards {rep.boards} in {rep.seconds:.0f} s ({rep.boards_per_s:.1f} boards/s); {rep.detector}; {rep.plc}\n"
            f"RSS start {rep.rss_start_mb:.1f} MB, end {rep.rss_end_mb:.1f} MB, peak {rep.rss_peak_mb:.1f} MB; "
            f"second-half slope {rep.rss_slope_second_half_kb_per_1000_boards:+.1f} KiB/1000 boards "
            f"({rep.rss_slope_second_half_mb_per_hour:+.2f} MB/h); through the medians of its tenths "
            f"{rep.rss_slope_second_half_medians_kb_per_1000_boards:+.1f} KiB/1000 boards "
            f"(rise {rep.rss_second_half_rise_mb:+.2f} MB); C heap in use "
            f"{rep.heap_slope_second_half_kb_per_1000_boards:+.1f} KiB/1000 boards, Python blocks "
            f"{rep.py_blocks_slope_second_half_per_1000_boards:+.0f}/1000 boards\n"
            f"open fds {rep.fds_start} -> {rep.fds_end} (max {rep.fds_max}); "
            f"threads {rep.threads_start} -> {rep.threads_end} (max {rep.threads_max})\n"
            f"records: database {rep.database_records}, PLC-acknowledged {rep.plc_acknowledged}, "
            f"lost {rep.records_lost}, unacknowledged {rep.records_unacknowledged}; PLC missed {rep.plc_missed}, "
            f"violations {rep.plc_violations}; archive ({rep.archive}) {rep.archive_mb:.1f} MB"
        )
        for n in rep.notes:
            print(f"note: {n}")
    return 0 if rep.records_lost == 0 and rep.plc_violations == 0 else 1
