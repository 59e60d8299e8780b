"""No password leaves the station: not in errors, the /health reason, the journal, nor the signed audit trail.

Real parts: the CLI as a plant engineer runs it (subprocess), the real recorder writing the station-start audit event
into a real SQLite file, a PostgreSQL URL pointing at a closed local port (nothing is contacted).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from inspector.config import StationConfig
from inspector.health import Health
from inspector.redact import redact, safe_url

PW = "S3cretPW"
PG = f"postgres://station:{PW}@127.0.0.1:1/inspections"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (PG, "postgres://station:***@127.0.0.1:1/inspections"),
        ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://u:pa@ss@h/db", "postgresql://u:***@h/db"),  # an unescaped @ in the password: hidden whole
        ("rtsp://admin:CamPW99@10.0.0.9/stream", "rtsp://admin:***@10.0.0.9/stream"),
        ("rtsp://:only@cam/s", "rtsp://***@cam/s"),
        ("sqlite:///data/inspections.db", "sqlite:///data/inspections.db"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
    ],
)
def test_safe_url_hides_the_password_of_any_url(url, shown):
    assert safe_url(url) == shown
    assert safe_url(f"database_url {url!r}: refused") == f"database_url {shown!r}: refused"


def test_a_postgres_spelt_url_is_accepted_and_its_error_hides_the_password():
    """`postgres://` (psql's spelling) was refused with the whole URL, password included, in /health and the journal."""
    from inspector.storage import open_database
    from inspector.storage.db import StorageError

    with pytest.raises(StorageError) as err:
        open_database(PG)
    assert PW not in str(err.value) and "station:***@127.0.0.1:1" in str(err.value)
    assert "only sqlite and postgresql" not in str(err.value)  # postgres:// is PostgreSQL


def test_the_cli_never_prints_the_database_password(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "history", "--db", PG],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode != 0 and "station:***@" in r.stderr, r.stderr
    assert PW not in r.stdout + r.stderr


def _recorder_cfg(tmp_path, url: str) -> StationConfig:
    cfg = StationConfig()
    cfg.camera = {"type": "opencv", "source": "rtsp://admin:CamPW99@127.0.0.1:1/stream"}
    cfg.storage.database_url = url
    cfg.storage.archive_dir = tmp_path / "archive"
    cfg.storage.spool_dir = tmp_path / "spool"
    cfg.storage.min_free_mb = 0
    return cfg


def test_the_recorders_health_reason_hides_the_database_password(tmp_path):
    """The reason is what /health serves (on the metrics port) and the journal logs."""
    import time

    from inspector.storage.writer import open_recorder

    health = Health()
    rec = open_recorder(_recorder_cfg(tmp_path, PG), health)
    rec.start()
    try:
        deadline = time.monotonic() + 20
        while (state := health.get("database")) is None or state.ok:
            assert time.monotonic() < deadline, "no database state"
            time.sleep(0.05)
        assert PW not in state.reason and "station:***@" in state.reason, state.reason
    finally:
        rec.stop()


def test_the_signed_station_start_event_holds_no_camera_password(tmp_path):
    """The configuration goes into the signed audit trail, synced to the plant: a stream password in it could never
    be taken out again."""
    from inspector.storage import audit, open_database
    from inspector.storage.writer import open_recorder

    url = f"sqlite:///{tmp_path / 'inspections.db'}"
    rec = open_recorder(_recorder_cfg(tmp_path, url), Health())
    rec.start()
    assert rec.flush(30)
    rec.stop()
    db = open_database(url)
    try:
        events = [e for e in audit.list_events(db) if e.action == "station.start"]
        assert events
        stored = json.dumps([(e.before, e.after) for e in events], default=str)
        assert "CamPW99" not in stored and "rtsp://admin:***@127.0.0.1:1/stream" in stored
    finally:
        db.close()
    assert redact({"a": [PG, 3], "b": "op@plant"}) == {"a": [safe_url(PG), 3], "b": "op@plant"}
