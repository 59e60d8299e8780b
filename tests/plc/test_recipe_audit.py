"""A recipe switch commanded by the PLC lands in the signed audit trail with source "plc".

The station is built as `pcb-inspector run` builds it (build_station with storage on a temp SQLite and
the PLC link in server mode on a free 127.0.0.1 port); the PLC is played by pyModbusTCP. A switch
that works and one that is refused are both audited, and the chain verifies afterwards.
"""

from __future__ import annotations

import socket

from inspector import station_key
from inspector.config import DetectorSection, Recipe, ReplayCamera, StationConfig, StorageSection
from inspector.station import build_station
from inspector.storage import audit
from inspector.storage.db import open_database
from plc import registers as R
from plc.modbus import ModbusSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(plc, recipe_id: int, expect: int) -> list[int]:
    with plc.lock:
        assert plc.c.write_single_register(R.COMMAND_RECIPE, recipe_id)
    plc.set_bits(R.EXECUTE_COMMAND)
    other = R.CMD_DONE if expect == R.CMD_FAILED else R.CMD_FAILED
    st = plc.wait_bits(on=expect, off=other)
    plc.clear_bits(R.EXECUTE_COMMAND)
    plc.wait_bits(off=R.CMD_DONE | R.CMD_FAILED)
    return st


def test_plc_recipe_switch_is_audited_with_source_plc(tmp_path, demo_boards, plc_factory):
    golden = demo_boards / "board0000_temp.png"
    url = f"sqlite:///{tmp_path / 'records.db'}"
    cfg = StationConfig(
        camera=ReplayCamera(path=demo_boards, trigger="software", fps=None),
        detector=DetectorSection(engine="classical"),
        plc=ModbusSettings(mode="server", port=free_port(), simulator=False, heartbeat_timeout_s=2.0),
        storage=StorageSection(
            database_url=url, archive_dir=tmp_path / "archive", spool_dir=tmp_path / "spool", min_free_mb=0
        ),
        recipes=[
            Recipe(id=1, name="golden", reference=golden),
            Recipe(id=2, name="other", reference=golden),
        ],
        active_recipe="golden",
    )
    station = build_station(cfg)
    station.start()
    try:
        plc = plc_factory(cfg.plc.port)
        plc.set_bits(R.TRIGGER_ENABLE)
        plc.wait_bits(on=R.READY, timeout=30)
        st = command(plc, 2, R.CMD_DONE)
        assert plc.reg(st, R.CURRENT_RECIPE) == 2
        command(plc, 9, R.CMD_FAILED)  # no recipe with id 9: refused
    finally:
        station.stop()
    key = station_key.load(tmp_path / "station.key")
    db = open_database(url, station_id=cfg.station.id, migrate=False)
    try:
        events = audit.list_events(db, audit.AuditFilter(source="plc"), limit=None)
        got = [(e.who, e.action, e.target, e.before, e.after) for e in reversed(events)]
        assert got == [
            ("plc", "recipe.switch", "recipe id 2", {"recipe_id": 1}, {"recipe_id": 2, "ok": True}),
            ("plc", "recipe.switch_refused", "recipe id 9", {"recipe_id": 2}, {"recipe_id": 9, "ok": False}),
        ]
        rep = audit.verify(db, key.verifier())
        assert rep.ok, rep.problems
        actions = [e.action for e in reversed(audit.list_events(db, limit=None))]
        assert actions[0] == "station.start" and actions[-1] == "station.stop"
    finally:
        db.close()
