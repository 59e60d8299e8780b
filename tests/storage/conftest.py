"""Storage test fixtures: a throwaway PostgreSQL cluster, a database URL per backend, result factories.

The cluster is real (initdb + pg_ctl as the `postgres` user, listening on 127.0.0.1 on a free port,
in a temp folder) and is stopped and deleted at the end of the session. Tests that take `db_url`
run once on SQLite and once on PostgreSQL, each in a fresh database.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from inspector.domain import Detection, InspectionResult, Verdict
from inspector.health import Health
from inspector.storage.writer import Recorder, RecorderSettings


@pytest.fixture(scope="session")
def pg_cluster(postgres_server):
    """SQLAlchemy URL of the session's PostgreSQL server (tests/conftest.py)."""
    host, port = postgres_server
    return f"postgresql+psycopg://postgres@{host}:{port}"


_dbn = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.db'}"
        return
    base = request.getfixturevalue("pg_cluster")
    import psycopg

    name = f"t{os.getpid()}_{next(_dbn)}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield f"{base}/{name}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'records.db'}"


BOARD = np.zeros((96, 128), np.uint8)
BOARD[20:70, 30:100] = 200
REF = BOARD.copy()


def make_result(
    i: int = 0,
    *,
    verdict: Verdict | None = None,
    classes: tuple[int, ...] = (),
    when: datetime | None = None,
    serial: str | None = None,
    recipe: str = "demo",
    image: np.ndarray | None = BOARD,
    reference: np.ndarray | None = REF,
) -> InspectionResult:
    dets = [Detection((5.0 + 3 * k, 6.0, 25.0 + 3 * k, 30.0), c, 0.5 + 0.05 * k) for k, c in enumerate(classes)]
    if verdict is None:
        verdict = Verdict.REJECT if dets else Verdict.PASS
    r = InspectionResult(
        frame_id=i,
        recipe=recipe,
        verdict=verdict,
        detections=dets,
        timings_ms={"inference": 10.0, "total": 20.0 + i % 7},
        model_id="pcb-det@1.2.0",
        board_serial=serial if serial is not None else f"SN{i:06d}",
        part_seq=i,
        image=image,
        reference=reference,
        frame_meta={"name": f"board{i}", "exposure": np.float32(1.5)},
    )
    if when is not None:
        r.timestamp = when
    return r


@pytest.fixture
def make_recorder(tmp_path):
    made: list[Recorder] = []

    def make(url: str, **kw) -> Recorder:
        health = kw.pop("health", None) or Health()
        settings = RecorderSettings(
            database_url=url,
            archive_dir=kw.pop("archive_dir", tmp_path / "archive"),
            spool_dir=kw.pop("spool_dir", tmp_path / "spool"),
            min_free_mb=kw.pop("min_free_mb", 0),
            retention_days=kw.pop("retention_days", None),
            **kw,
        )
        rec = Recorder(settings, health)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.stop()


def hours_ago(h: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(hours=h)


def wait_for(pred, timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
