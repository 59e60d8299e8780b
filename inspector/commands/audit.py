"""`pcb-inspector audit {verify,list,export,key,rotate-key}`: read and check the station's audit trail.

`verify` walks the hash chain and checks every signature with the station's public key (or the
keys given with --key, which is how the plant or an auditor checks a copy); it exits 1 and names the
first broken, missing or edited event. `list` and `export --csv` filter by user, action and time.
`key` prints the public key the plant needs; `rotate-key` retires the key and makes a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit trail: verify the chain, list or export events, show or rotate the key")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    specs = (
        ("verify", "check the hash chain and signatures; exit 1 naming the first bad event"),
        ("list", "list events, newest first"),
        ("export", "write events to a CSV file (oldest first, with the chain fields)"),
        ("key", "print the station key's id and public key (what the plant verifies with)"),
        ("rotate-key", "retire the station key (its public half is kept for verifying) and create a new one"),
    )
    for name, text in specs:
        q = asub.add_parser(name, help=text)
        q.add_argument("--config", help="station.toml (database URL, station id, station key)")
        q.add_argument("--db", metavar="URL", help="database URL (default: the config's storage.database_url)")
        q.add_argument("--station", metavar="ID", help="station whose chain to read (default: the config's)")
        if name in ("verify",):
            q.add_argument(
                "--key",
                metavar="PUB",
                action="append",
                type=Path,
                help="verify with this public key file (repeat for retired keys); default: the station's own key",
            )
        if name in ("list", "export"):
            q.add_argument("--user", help="only events by this user")
            q.add_argument("--action", help="only this action, or a family: 'user' gives user.create, user.role ...")
            q.add_argument("--source", help="only from this source: ui, cli, plc, station")
            q.add_argument("--since", metavar="TIME", help="from this time: ISO date/time (UTC unless offset) or 8h/2d")
            q.add_argument("--until", metavar="TIME", help="up to (not including) this time, same forms as --since")
        if name == "list":
            q.add_argument("--limit", type=int, default=50, help="most events shown (default 50; 0 = all)")
            q.add_argument("--json", action="store_true", help="one JSON object per line")
        if name == "export":
            q.add_argument("--csv", metavar="FILE", required=True, type=Path, help="CSV file to write ('-' = stdout)")
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..config import load_config
    from ..storage import StorageError, current_revision, head_revision, open_database

    cfg = load_config(args.config)
    if args.db:
        cfg.storage.database_url = args.db  # the default key path follows the database (station.key beside it)
    key_path = cfg.storage.station_key_path()
    if args.audit_command in ("key", "rotate-key"):
        return _key(args, cfg, key_path)
    url = args.db or cfg.storage.database_url
    try:
        db = open_database(url, station_id=args.station or cfg.station.id, migrate=False)
    except StorageError as exc:
        raise CommandError(str(exc)) from None
    try:
        if current_revision(db.engine) != head_revision():
            raise CommandError(
                f"schema is at {current_revision(db.engine)}, this version needs {head_revision()}: "
                "run `pcb-inspector db upgrade` first"
            )
        if args.audit_command == "verify":
            return _verify(args, db, key_path)
        f = _filter(args)
        if args.audit_command == "list":
            return _list(args, db, f)
        return _export(args, db, f)
    finally:
        db.close()


def _verifier(keys: list[Path] | None, key_path: Path):
    from .. import station_key

    if keys:
        return station_key.Verifier.from_files(keys), ", ".join(str(k) for k in keys)
    return station_key.load(key_path).verifier(), str(key_path)


def _verify(args: argparse.Namespace, db, key_path: Path) -> int:
    from ..storage.audit import verify

    verifier, where = _verifier(args.key, key_path)
    rep = verify(db, verifier)
    if rep.ok:
        legacy = f" ({rep.legacy_unsigned} from before signing, chained but unsigned)" if rep.legacy_unsigned else ""
        print(
            f"audit trail of station {rep.station_id}: {rep.checked} events, chain intact, "
            f"{rep.signed} signatures valid{legacy} (keys: {where})"
        )
        return 0
    print(f"audit trail of station {rep.station_id}: FAILED at the first of {len(rep.problems)} problem(s):")
    for line in rep.problems[:50]:
        print(f"  {line}")
    if len(rep.problems) > 50:
        print(f"  ... and {len(rep.problems) - 50} more")
    return 1


def _filter(args: argparse.Namespace):
    from ..cli import CommandError
    from ..storage.audit import AuditFilter
    from .history import parse_time

    try:
        return AuditFilter(
            who=args.user,
            action=args.action,
            source=args.source,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _short(v: Any, n: int = 60) -> str:
    if v is None:
        return "-"
    text = json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= n else text[: n - 3] + "..."


def _list(args: argparse.Namespace, db, f) -> int:
    from ..storage.audit import list_events

    events = list_events(db, f, limit=args.limit or None)
    for ev in events:
        if args.json:
            print(
                json.dumps(
                    {
                        "seq": ev.seq,
                        "id": ev.id,
                        "at": ev.at.isoformat(),
                        "station_id": ev.station_id,
                        "who": ev.who,
                        "source": ev.source,
                        "action": ev.action,
                        "target": ev.target,
                        "before": ev.before,
                        "after": ev.after,
                    },
                    ensure_ascii=False,
                    default=str,
                )
            )
        else:
            print(
                f"{ev.seq or '-':>6} {ev.at:%Y-%m-%d %H:%M:%S} {ev.who:<12} {ev.source or '-':<7} {ev.action:<20} "
                f"{ev.target:<24} {_short(ev.before, 40)} -> {_short(ev.after)}"
            )
    if not args.json:
        print(f"{len(events)} event(s)", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace, db, f) -> int:
    """A file is written whole or not at all (`.part`, then renamed). '-', a pipe, a device or a link is written
    into: renaming over `/dev/stdout` replaced the link itself (as root, `/dev/full` became a regular file)."""
    from ..storage.audit import iter_events, write_csv

    path: Path = args.csv
    if str(path) == "-":
        n = write_csv(iter_events(db, f), sys.stdout)
    elif path.is_symlink() or (path.exists() and not path.is_file()):
        with open(path, "w", newline="", encoding="utf-8") as out:
            n = write_csv(iter_events(db, f), out)
    else:
        part = path.with_name(path.name + ".part")
        try:
            with open(part, "w", newline="", encoding="utf-8") as out:
                n = write_csv(iter_events(db, f), out)
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    print(f"{n} event(s) written to {'stdout' if str(path) == '-' else path}", file=sys.stderr)
    return 0


def _key(args: argparse.Namespace, cfg, key_path: Path) -> int:
    from .. import station_key
    from ..storage import StorageError, open_database
    from ..storage.audit import append

    if args.audit_command == "key":
        key = station_key.load(key_path)
        print(f"station key {key_path}: id {key.key_id}")
        sys.stdout.write(station_key.public_pem(key.public).decode())
        return 0
    old, new = station_key.rotate(key_path)
    print(
        f"station key rotated: {old.key_id} -> {new.key_id}; old public key kept in {key_path.parent / 'station-keys'}"
    )
    try:
        db = open_database(
            args.db or cfg.storage.database_url, station_id=args.station or cfg.station.id, station_key=new
        )
        try:
            append(
                db,
                _who(),
                "key.rotate",
                str(key_path),
                {"key_id": old.key_id},
                {"key_id": new.key_id},
                source="cli",
            )
        finally:
            db.close()
    except StorageError as exc:
        print(f"warning: rotation not recorded in the audit trail: {exc}", file=sys.stderr)
    print("give the plant the new public key: pcb-inspector audit key")
    return 0


def _who() -> str:
    import getpass

    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:
        return "unknown"
