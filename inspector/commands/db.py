"""`pcb-inspector db {check,upgrade,retention}`: look after the records database and the image archive.

`check` reports the database's integrity and whether the archive folder and the rows agree (files
without rows, rows without files); `--repair` removes the orphans and clears dangling paths.
`upgrade` applies pending migrations (with a backup first), as the station does at start.
`retention` runs the age / free-disk retention now, instead of waiting for the writer's next pass.
`verify` checks every inspection record's signature (station key, or the public keys given with
--key: how the plant checks records it received) and names each record changed after the fact.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="records database: check/repair the archive, upgrade the schema, run retention")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text in (
        ("check", "report integrity and archive/database disagreements (orphans)"),
        ("upgrade", "apply pending schema migrations (backs the database up first)"),
        ("retention", "delete records and files past the retention age or below the disk floor, now"),
        ("verify", "check the signature of every inspection record; exit 1 naming each one changed after the fact"),
    ):
        q = dsub.add_parser(name, help=text)
        q.add_argument("--config", help="station.toml (database URL, archive folder, retention settings)")
        q.add_argument("--db", metavar="URL", help="database URL (default: the config's storage.database_url)")
        q.add_argument("--archive", metavar="DIR", help="archive folder (default: the config's storage.archive_dir)")
        if name == "check":
            q.add_argument("--repair", action="store_true", help="delete orphan files, clear paths of missing files")
            q.add_argument("--grace", type=float, default=300.0, help="ignore files younger than this (s); default 300")
        if name == "verify":
            q.add_argument(
                "--key",
                metavar="PUB",
                action="append",
                type=Path,
                help="station public key file(s) to verify with (the plant's copy); default: the station's own key",
            )
            q.add_argument("--station", metavar="ID", help="only this station's records (default: all in the database)")
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..config import load_config
    from ..storage import RetentionPolicy, StorageError, check_archive, current_revision, head_revision, open_database

    cfg = load_config(args.config)
    url = args.db or cfg.storage.database_url
    cfg.storage.database_url = url  # the default station key path follows the database (station.key beside it)
    archive = Path(args.archive) if args.archive else Path(cfg.storage.archive_dir)
    try:
        db = open_database(url, station_id=cfg.station.id, migrate=args.db_command == "upgrade")
    except StorageError as exc:
        raise CommandError(str(exc)) from None
    try:
        if args.db_command == "upgrade":
            print(f"schema at {current_revision(db.engine)} (newest {head_revision()})")
            if db.backup_path:
                print(f"backup before the upgrade: {db.backup_path}")
            return 0
        if current_revision(db.engine) != head_revision():
            raise CommandError(
                f"schema is at {current_revision(db.engine)}, this version needs {head_revision()}: "
                "run `pcb-inspector db upgrade` first"
            )
        if args.db_command == "verify":
            return _verify(args, cfg, db)
        if args.db_command == "retention":
            st = cfg.storage
            from ..storage.writer import _sync_state_path

            rep = RetentionPolicy(
                db,
                archive,
                max_age_days=st.retention_days,
                min_free_mb=st.min_free_mb,
                min_age_days=st.retention_min_days,
                batch=st.retention_batch,
                sync_state=_sync_state_path(db.url),
            ).run()
            from ..storage.writer import _retention_summary

            _audit_cli(cfg, db, "retention.run", "records", None, _retention_summary(rep))
            print(
                f"deleted {rep.deleted} inspections and {rep.files_deleted} files"
                + (f" (the images of {rep.stripped} more, rows kept)" if rep.stripped else "")
                + f"; {rep.free_mb:.0f} MB free"
            )
            if rep.low_disk:
                print(f"still below the disk floor: {rep.message}", file=sys.stderr)
                return 1
            return 0
        rep = check_archive(db, archive, repair=args.repair, grace_s=args.grace)
        for line in rep.lines():
            print(line)
        if not rep.ok and not args.repair:
            print("run with --repair to fix", file=sys.stderr)
            return 1
        return 0 if rep.integrity in ("ok", "n/a") else 1
    finally:
        db.close()


def _verify(args: argparse.Namespace, cfg, db) -> int:
    from .. import station_key
    from ..storage.signed import verify_records

    if args.key:
        verifier, where = station_key.Verifier.from_files(args.key), ", ".join(str(k) for k in args.key)
    else:
        path = cfg.storage.station_key_path()
        verifier, where = station_key.load(path).verifier(), str(path)
    with db.engine.connect() as conn:
        rep = verify_records(conn, verifier, station_id=args.station)
    legacy = f", {rep.unsigned_legacy} from before signing (unsigned)" if rep.unsigned_legacy else ""
    if rep.ok:
        print(f"{rep.checked} inspection records: {rep.signed_ok} signatures valid{legacy} (keys: {where})")
        return 0
    print(f"{rep.checked} inspection records: {len(rep.problems)} FAILED verification{legacy}:")
    for line in rep.problems[:100]:
        print(f"  {line}")
    if len(rep.problems) > 100:
        print(f"  ... and {len(rep.problems) - 100} more")
    return 1


def _audit_cli(cfg, db, action: str, target: str, before, after) -> None:
    """An audit event for what this command changed, signed with the station key."""
    import getpass
    import os

    from .. import station_key
    from ..storage.audit import append

    db.station_key = station_key.load_or_create(cfg.storage.station_key_path())
    try:
        who = os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:
        who = "unknown"
    append(db, who, action, target, before, after, source="cli")
