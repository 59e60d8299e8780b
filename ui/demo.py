"""Assembling the station the window shows, and the demo variant of it.

Why here and not in the window: `pcb-inspector ui` and the screenshot tests build the station the
same way `run --headless` does (`inspector.station.build_station`); only the demo specifics live
here: a throwaway database and archive, and documented demo users.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from inspector.config import StationConfig
from inspector.station import Station, StationError, build_station

log = logging.getLogger(__name__)

#: Demo credentials (documented in docs/ui.md). Only ever created in --demo's throwaway database.
DEMO_USERS = (("operator", "operator", "1111"), ("engineer", "engineer", "2222"), ("admin", "admin", "9999"))


@dataclass
class Assembly:
    station: Station
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None


def demo_config(cfg: StationConfig | None = None, workdir: Path | None = None) -> tuple[StationConfig, Path]:
    """The demo station with its records in a throwaway folder."""
    cfg = (cfg or StationConfig()).model_copy(deep=True)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="pcb-inspector-ui-demo-"))
    cfg.storage.database_url = f"sqlite:///{workdir / 'inspections.db'}"
    cfg.storage.archive_dir = workdir / "archive"
    cfg.storage.spool_dir = workdir / "spool"
    cfg.storage.min_free_mb = min(cfg.storage.min_free_mb, 50)
    if cfg.plc.mode == "server" and getattr(cfg.plc, "simulator", False):  # Modbus or OPC UA
        # The simulator talks to our own server: any free local port will do, and a second demo
        # (or a test) holding 1502 must not stop this one from starting.
        cfg.plc.port = free_local_port()
    return cfg, workdir


def free_local_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assemble(cfg: StationConfig, *, demo: bool = False, sinks=None) -> Assembly:
    notes: list[str] = []
    model = getattr(cfg.detector, "model", None)  # packaged-model types have one; the classical detector not
    if model is not None and not Path(model).is_file():
        if not demo:
            raise StationError(f"detector.model {model} does not exist")
        notes.append(f"bundled model {model} not found: demo runs the classical difference detector")
        cfg.detector = {"type": "classical"}
    try:
        station = build_station(cfg, sinks=sinks)
    except StationError as exc:
        if not (demo and "plc package is not installed" in str(exc)):
            raise
        notes.append("plc package not installed: demo runs without the PLC simulator (free-run)")
        cfg.plc.mode = "off"
        station = build_station(cfg, sinks=sinks)
    for n in notes:
        log.warning("%s", n)
    return Assembly(station, notes)
