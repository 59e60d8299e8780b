"""The audit trail: append-only, hash-chained and signed, so nobody can quietly edit or delete an event.

How it holds together:
- each station's events are numbered 1, 2, 3 ... (`seq`); an event's `hash` is SHA-256 over its
  content (when, who, source, action, target, before, after, station, seq) and the previous
  event's hash (`prev_hash`), so editing, deleting or re-ordering any event breaks the chain from there;
- `signature` is the station key's Ed25519 signature of `hash`. The key lives outside the database,
  so someone who can write the database still cannot produce a valid event;
- `audit_heads` holds the last (seq, hash) of each chain. Every append updates it *first*, which
  takes the write lock (SQLite) or the row lock (PostgreSQL): two processes appending at once
  (station, UI, a CLI command) queue instead of both chaining onto the same predecessor. It also
  lets `verify` see events deleted from the end.

What it does not do: someone who holds the station key (root on the device) can rewrite the whole
chain; deleting the newest events *and* rewinding the head is only caught by a copy kept elsewhere
(the plant sync or an export). docs/security.md says more.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from .db import Database
from .models import AuditEvent, AuditHead, LoginLockout, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""prev_hash of a station's first event."""
LEGACY = "legacy"
"""`source` of events sealed into the chain from before it existed; accepted unsigned only before the
first signed event."""


def canonical(obj: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces; what hashes and signatures are over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _jsonable(v: Any) -> Any:
    # What the JSON column will give back, so the stored value and the hashed value are the same.
    return None if v is None else json.loads(canonical(v))


def event_content(
    *,
    station_id: str | None,
    seq: int,
    at: datetime,
    who: str,
    source: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> dict[str, Any]:
    return {
        "station_id": station_id,
        "seq": int(seq),
        "at": at.isoformat(),
        "who": who,
        "source": source or "",
        "action": action,
        "target": target or "",
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }


def event_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content)).hexdigest()


def _row_content(ev: AuditEvent) -> dict[str, Any]:
    return event_content(
        station_id=ev.station_id,
        seq=ev.seq or 0,
        at=ev.at,
        who=ev.who,
        source=ev.source,
        action=ev.action,
        target=ev.target,
        before=ev.before,
        after=ev.after,
        prev_hash=ev.prev_hash or "",
    )


# ------------------------------------------------------------------ writing
def _lock_head(s, station_id: str) -> AuditHead:
    """Take the chain's lock (a no-op UPDATE of its head row) and return the head; creates it once."""
    res = s.execute(update(AuditHead).where(AuditHead.station_id == station_id).values(seq=AuditHead.seq))
    if res.rowcount == 0:
        head = AuditHead(station_id=station_id, seq=0, hash=GENESIS)
        s.add(head)
        s.flush()
        _seal_legacy(s, station_id, head)
        return head
    return s.get(AuditHead, station_id, populate_existing=True)


def _seal_legacy(s, station_id: str, head: AuditHead) -> None:
    """Chain the events written before the chain existed (schema 0002), oldest first, unsigned.

    They were never signed, so `verify` reports how many precede the first signed event; from then
    on an edit to them shows like any other.
    """
    legacy = list(
        s.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq.is_(None), or_(AuditEvent.station_id == station_id, AuditEvent.station_id.is_(None)))
            .order_by(AuditEvent.id)
        )
    )
    for ev in legacy:
        ev.station_id = station_id
        ev.source = LEGACY
        ev.seq = head.seq + 1
        ev.prev_hash = head.hash
        ev.before, ev.after = _jsonable(ev.before), _jsonable(ev.after)
        ev.hash = event_hash(_row_content(ev))
        head.seq, head.hash = ev.seq, ev.hash
    if legacy:
        s.flush()
        log.warning("sealed %d audit events from before the chain into it (unsigned)", len(legacy))


def append(
    db: Database,
    who: str,
    action: str,
    target: str = "",
    before: Any = None,
    after: Any = None,
    *,
    source: str = "",
    session=None,
    at: datetime | None = None,
) -> int:
    """Add one event at the end of this station's chain; returns its id.

    Pass `session` to make the event part of the caller's transaction (the change and its audit
    record commit together, or neither does).
    """
    if session is None:
        for attempt in range(3):
            try:
                with db.session() as s, s.begin():
                    return _append(db, s, who, action, target, before, after, source, at)
            except IntegrityError:
                # Two processes created the first head row at once: the loser chains onto the winner.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    return _append(db, session, who, action, target, before, after, source, at)


def _append(db: Database, s, who, action, target, before, after, source, at) -> int:
    sid = db.station_id
    head = _lock_head(s, sid)
    ev = AuditEvent(
        at=(at or utcnow()),
        station_id=sid,
        who=who,
        action=action,
        target=target or "",
        before=_jsonable(before),
        after=_jsonable(after),
        source=source or db.audit_source or "",
        seq=head.seq + 1,
        prev_hash=head.hash,
    )
    ev.hash = event_hash(_row_content(ev))
    key = db.station_key
    if key is not None:
        ev.key_id = key.key_id
        ev.signature = key.sign(ev.hash.encode())
    s.add(ev)
    head.seq, head.hash = ev.seq, ev.hash
    s.flush()
    return ev.id


# ------------------------------------------------------------------ reading
@dataclass
class AuditFilter:
    who: str | None = None
    action: str | None = None
    """Exact action, or a family: 'user' matches user.create, user.role ..."""
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None


def _where(q, f: AuditFilter | None):
    if f is None:
        return q
    if f.who:
        q = q.where(AuditEvent.who == f.who)
    if f.action:
        fam = f.action.rstrip(".*")
        q = q.where(or_(AuditEvent.action == f.action, AuditEvent.action.like(f"{fam}.%")))
    if f.since is not None:
        q = q.where(AuditEvent.at >= f.since)
    if f.until is not None:
        q = q.where(AuditEvent.at < f.until)
    if f.source:
        q = q.where(AuditEvent.source == f.source)
    return q


def list_events(db: Database, f: AuditFilter | None = None, *, limit: int | None = 200) -> list[AuditEvent]:
    """Newest first."""
    q = _where(select(AuditEvent), f).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if limit:
        q = q.limit(limit)
    with db.session() as s:
        return list(s.scalars(q))


def distinct_values(db: Database) -> tuple[list[str], list[str]]:
    """(users, actions) that occur in the trail, for the Audit screen's filters."""
    with db.session() as s:
        who = sorted(s.scalars(select(AuditEvent.who).distinct()))
        actions = sorted(s.scalars(select(AuditEvent.action).distinct()))
    return who, actions


CSV_COLUMNS = (
    "seq",
    "id",
    "at",
    "station_id",
    "who",
    "source",
    "action",
    "target",
    "before",
    "after",
    "prev_hash",
    "hash",
    "key_id",
    "signature",
)


def iter_events(db: Database, f: AuditFilter | None = None, chunk: int = 1000) -> Iterator[AuditEvent]:
    """Oldest first, in chunks (exports of a long trail stay small in memory)."""
    last = 0
    while True:
        q = _where(select(AuditEvent), f).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(chunk)
        with db.session() as s:
            rows = list(s.scalars(q))
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def write_csv(events: Iterable[AuditEvent], out: IO[str]) -> int:
    """One row per event with the chain fields, so the export can be checked away from the station."""
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    n = 0
    for ev in events:
        w.writerow(
            [
                ev.seq if ev.seq is not None else "",
                ev.id,
                ev.at.isoformat(),
                ev.station_id or "",
                ev.who,
                ev.source,
                ev.action,
                ev.target,
                "" if ev.before is None else canonical(ev.before).decode(),
                "" if ev.after is None else canonical(ev.after).decode(),
                ev.prev_hash or "",
                ev.hash or "",
                ev.key_id or "",
                ev.signature or "",
            ]
        )
        n += 1
    return n


# ------------------------------------------------------------------ verifying
@dataclass
class AuditReport:
    station_id: str
    checked: int = 0
    signed: int = 0
    legacy_unsigned: int = 0
    """Events sealed from before the chain existed (unsigned, at the start of the chain)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(db: Database, verifier: Any, station_id: str | None = None) -> AuditReport:
    """Walk the station's chain from the first event; every broken, missing, edited or unsigned event
    becomes one line in `problems`, in chain order (so `problems[0]` is the first one).

    `verifier` is an inspector.station_key.Verifier (public keys by key id).
    """
    sid = station_id or db.station_id
    rep = AuditReport(sid)
    with db.session() as s:
        head = s.get(AuditHead, sid)
        loose = list(
            s.scalars(
                select(AuditEvent.id).where(
                    AuditEvent.seq.is_(None), or_(AuditEvent.station_id == sid, AuditEvent.station_id.is_(None))
                )
            )
        )
    expected, prev_hash, last_hash = 1, GENESIS, GENESIS
    seen_signed = False
    last_seen = 0
    while True:
        with db.session() as s:
            rows = list(
                s.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.station_id == sid, AuditEvent.seq > last_seen)
                    .order_by(AuditEvent.seq)
                    .limit(1000)
                )
            )
        if not rows:
            break
        for ev in rows:
            rep.checked += 1
            last_seen = ev.seq
            name = f"event seq {ev.seq} (id {ev.id}, {ev.action} by {ev.who} at {ev.at:%Y-%m-%d %H:%M:%S})"
            if ev.seq != expected:
                gap = f"seq {expected}" if ev.seq == expected + 1 else f"seq {expected}..{ev.seq - 1}"
                rep.problems.append(f"audit event {gap} missing (deleted) before {name}")
            elif ev.prev_hash != prev_hash:
                rep.problems.append(f"{name} does not chain onto event seq {expected - 1}: the chain was rewritten")
            if event_hash(_row_content(ev)) != ev.hash:
                rep.problems.append(f"{name} was edited: its content does not match its hash")
            why = verifier.check(ev.key_id, ev.signature, (ev.hash or "").encode())
            if why is None:
                rep.signed += 1
                seen_signed = True
            elif why == "not signed" and ev.source == LEGACY and not seen_signed:
                rep.legacy_unsigned += 1
            else:
                rep.problems.append(f"{name}: {why}")
            expected, prev_hash, last_hash = ev.seq + 1, ev.hash, ev.hash
    for eid in loose:
        rep.problems.append(f"audit event id {eid} is outside the chain (added to the table directly)")
    last_seq = expected - 1
    if head is None:
        if rep.checked:
            rep.problems.append(f"chain head of station {sid} is missing (audit_heads row deleted)")
    elif head.seq > last_seq:
        rep.problems.append(
            f"audit events seq {last_seq + 1}..{head.seq} missing (deleted from the end; the head says {head.seq})"
        )
    elif head.seq < last_seq or head.hash != last_hash:
        rep.problems.append(f"chain head (seq {head.seq}) does not match the last event (seq {last_seq})")
    return rep


# ------------------------------------------------------------------ login lock-out
def load_lockout(db: Database, scope: str) -> tuple[int, datetime | None]:
    """(failed attempts so far, locked until) for `scope` (the station's login screen)."""
    with db.session() as s:
        row = s.get(LoginLockout, scope)
        return (row.failures, row.locked_until) if row else (0, None)


def save_lockout(db: Database, scope: str, failures: int, locked_until: datetime | None) -> None:
    with db.session() as s, s.begin():
        row = s.get(LoginLockout, scope)
        if row is None:
            s.add(LoginLockout(scope=scope, failures=failures, locked_until=locked_until, updated_at=utcnow()))
        else:
            row.failures, row.locked_until, row.updated_at = failures, locked_until, utcnow()
