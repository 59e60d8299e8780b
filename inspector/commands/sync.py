"""`pcb-inspector sync`: push this station's records to the plant database (runs beside the station).

Why a separate process: the station must never wait on the plant network, and a sync that crashes
or hangs must not take inspection with it. It reads the station's SQLite and writes only to the plant.
The plant URL (with its password) comes from `--plant` or `$PCB_PLANT_DATABASE_URL` (a Secret).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="push inspections, defects and reviews to the plant database")
    p.add_argument("--config", help="station.toml (its storage.database_url is the local database)")
    p.add_argument("--db", help="local database URL (default: from the config)")
    p.add_argument("--plant", help="plant database URL (default: $PCB_PLANT_DATABASE_URL)")
    p.add_argument("--once", action="store_true", help="push what is pending and exit")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between pushes")
    p.add_argument("--batch", type=int, default=200, help="inspections per plant transaction")
    p.add_argument("--no-migrate", action="store_true", help="do not upgrade the plant schema (the DBA does)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve the sync gauges for Prometheus here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from .common import station_config

    cfg = station_config(argparse.Namespace(config=args.config, db=args.db))
    plant = args.plant or os.environ.get("PCB_PLANT_DATABASE_URL")
    if not plant:
        raise CommandError("no plant database: pass --plant URL or set PCB_PLANT_DATABASE_URL")
    from ..storage.db import sqlite_path
    from ..sync import PlantSync, SyncError, safe_url

    local = sqlite_path(cfg.storage.database_url)
    if local is not None and not local.is_file():
        # Started before the station ever ran, the sync created an empty database and failed on "no such table"
        # every 10 s; the station's own start then found that empty file instead of creating its own.
        raise CommandError(
            f"no station database at {local} yet: nothing to push until the station has recorded (retried by the unit)"
        )
    try:
        worker = PlantSync(
            cfg.storage.database_url,
            plant,
            batch=args.batch,
            interval_s=args.interval,
            migrate_plant=not args.no_migrate,
        )
    except SyncError as exc:
        raise CommandError(str(exc)) from None
    print(f"sync {safe_url(cfg.storage.database_url)} -> {safe_url(plant)}; pending {worker.pending()}", flush=True)
    if args.once:
        r = worker.run_once()
        print(
            f"pushed {r.inspections} inspections, {r.defects} defects, {r.reviews} reviews; pending {worker.pending()}"
        )
        worker.stop()
        return 0
    if args.metrics:
        from prometheus_client import start_http_server

        from ..metrics import parse_listen, source_registry

        host, port = parse_listen(args.metrics)
        start_http_server(port, addr=host, registry=source_registry(cfg.station.id, worker))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
    print(f"stopped; pending {worker.pending()}")
    return 0
