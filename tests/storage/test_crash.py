"""Crash safety: SIGKILL the pipeline + recorder at random moments, many times.

After each kill, the next start must find every acknowledged result (the ones the PLC could have
seen: `ACK` lines the worker printed after the recorder confirmed them durable) in the database,
the database must pass `PRAGMA integrity_check`, and no row may point at a missing archive file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from inspector.storage import check_archive, integrity_check, open_database
from inspector.storage.models import Inspection
from inspector.storage.writer import Recorder, RecorderSettings

WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(args: list[str], rng: random.Random) -> tuple[set[str], int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    acks: set[str] = set()
    ready = threading.Event()

    def read():
        for line in p.stdout:
            if line.startswith("ACK "):
                acks.add(line.split()[1])
            elif line.startswith("READY"):
                ready.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert ready.wait(60), "worker did not start"
    time.sleep(rng.uniform(0.05, 1.5))
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    t.join(10)
    return acks, p.returncode


def _crash_loop(tmp_path, demo_boards, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    url = f"sqlite:///{tmp_path / 'records.db'}"
    archive, spool = tmp_path / "archive", tmp_path / "spool"
    acked: set[str] = set()
    for k in range(kills):
        got, rc = _run_and_kill([url, str(archive), str(spool), str(demo_boards)], rng)
        assert rc == -signal.SIGKILL
        acked |= got
        # the next start: the recorder replays whatever the spool holds, then we look
        rec = Recorder(RecorderSettings(url, archive_dir=archive, spool_dir=spool, min_free_mb=0, retention_days=None))
        rec.start()
        rec.stop()
        db = open_database(url)
        assert integrity_check(db) == "ok"
        with db.session() as s:
            stored = set(s.scalars(select(Inspection.uid)))
        lost = acked - stored
        assert not lost, f"kill {k}: {len(lost)} acknowledged results missing after restart"
        chk = check_archive(db, archive, grace_s=0)
        assert chk.missing == [], f"kill {k}: rows point at missing files: {chk.missing[:3]}"
        db.close()
    assert len(acked) > kills, "the worker should have acknowledged results before being killed"
    print(f"{kills} SIGKILLs, {len(acked)} acknowledged results, all present; {len(stored)} rows in total")


def test_sigkill_loses_nothing_acknowledged(tmp_path, demo_boards):
    _crash_loop(tmp_path, demo_boards, kills=5, seed=1)


@pytest.mark.slow
def test_sigkill_many_times(tmp_path, demo_boards):
    _crash_loop(tmp_path, demo_boards, kills=int(os.environ.get("PCB_CRASH_KILLS", "30")), seed=2)
