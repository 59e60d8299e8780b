"""Subprocess for the durable-publish crash test: a real station as `pcb-inspector run` builds it
(build_station: replay camera over synthetic boards, the classical detector, the recorder on SQLite,
the PLC link in server mode on an free 127.0.0.1 port). Prints `READY <port>` once started; the
PLC (the test process, over pyModbusTCP) then drives boards until the test SIGKILLs this process.

Usage: python durable_station_worker.py BOARDS_DIR DATA_DIR
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from pathlib import Path

from inspector.config import StationConfig
from inspector.station import build_station


def free_port() -> int:
    # plc.port must be >= 1 (config validation), so the ephemeral port is picked here.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    boards, data = Path(sys.argv[1]), Path(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "path": str(boards), "trigger": "software", "fps": None, "loop": True},
            "detector": {"engine": "classical"},
            "plc": {
                "mode": "server",
                "host": "127.0.0.1",
                "port": free_port(),
                "simulator": False,
                "heartbeat_timeout_s": 2.0,
            },
            "storage": {
                "database_url": f"sqlite:///{data / 'records.db'}",
                "archive_dir": str(data / "archive"),
                "spool_dir": str(data / "spool"),
                "min_free_mb": 0,
            },
        }
    )
    station = build_station(cfg)
    assert station.recorder is not None and station.plc is not None
    station.start()
    sys.stdout.write(f"READY {station.plc.port}\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
