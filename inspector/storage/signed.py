"""Signed inspection records: each record carries the station key's signature over what it says.

Why: a verdict is evidence (a customer's return, an audit). A row edited with plain sqlite3 after the
fact must be provably edited. The writer signs each record's content before it is stored (and
before it is spooled), the signature travels with the row to the plant (`inspector.sync` copies
every column), and `db verify` here or at the plant recomputes the content and checks the signature
with the station's *public* key: the plant can verify, but cannot forge.

Signed content (canonical JSON, sorted keys): uid, station, time (ISO 8601 UTC), recipe, model id,
board serial, part sequence, verdict, reason, and every defect (class, score, box) in order. Image
paths, timings and the review flag are not signed: they legitimately change later (archive moves,
retention, reviews).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .audit import canonical
from .models import Defect, Inspection

T_IN, T_DF = Inspection.__table__, Defect.__table__

SIGNED_FIELDS = (
    "uid",
    "station_id",
    "created_at",
    "recipe",
    "model_id",
    "board_serial",
    "part_seq",
    "verdict",
    "reason",
    "defects",
)


def content(
    *,
    uid: str,
    station_id: str,
    created_at: datetime | str,
    recipe: str,
    model_id: str,
    board_serial: str | None,
    part_seq: int | None,
    verdict: str,
    reason: str | None,
    defects: list[tuple[int, float, float, float, float, float]],
) -> bytes:
    """The bytes the signature is over; built the same way from a fresh record and from stored rows."""
    at = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(created_at)
    return canonical(
        {
            "uid": uid,
            "station_id": station_id,
            "created_at": at.isoformat(),
            "recipe": recipe or "",
            "model_id": model_id or "",
            "board_serial": board_serial,
            "part_seq": None if part_seq is None else int(part_seq),
            "verdict": verdict,
            "reason": reason,
            "defects": [
                [int(c), float(sc), float(x1), float(y1), float(x2), float(y2)] for c, sc, x1, y1, x2, y2 in defects
            ],
        }
    )


def record_content(rec: dict[str, Any]) -> bytes:
    """From the writer's record dict (`writer.result_record`)."""
    return content(
        uid=rec["uid"],
        station_id=rec["station_id"],
        created_at=rec["created_at"],
        recipe=rec["recipe"],
        model_id=rec["model_id"],
        board_serial=rec["board_serial"],
        part_seq=rec["part_seq"],
        verdict=rec["verdict"],
        reason=rec["reason"],
        defects=[(d["class_id"], d["score"], *d["box"]) for d in rec["defects"]],
    )


def sign_record(rec: dict[str, Any], key: Any) -> None:
    """Add `sig_key_id` and `signature` to a writer record (in place)."""
    rec["sig_key_id"] = key.key_id
    rec["signature"] = key.sign(record_content(rec))


def _row_content(row: Any, defects: list[Any]) -> bytes:
    return content(
        uid=row.uid,
        station_id=row.station_id,
        created_at=row.created_at,
        recipe=row.recipe_name,
        model_id=row.model_id,
        board_serial=row.board_serial,
        part_seq=row.part_seq,
        verdict=row.verdict,
        reason=row.reason,
        defects=[(d.class_id, d.score, d.x1, d.y1, d.x2, d.y2) for d in defects],
    )


@dataclass
class RecordReport:
    checked: int = 0
    signed_ok: int = 0
    unsigned_legacy: int = 0
    """Records stored before signing existed (older than the first signed record)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(conn: Connection, station_id: str | None, chunk: int) -> Iterator[tuple[Any, list[Any]]]:
    last = 0
    while True:
        q = select(T_IN).where(T_IN.c.id > last).order_by(T_IN.c.id).limit(chunk)
        if station_id:
            q = q.where(T_IN.c.station_id == station_id)
        rows = list(conn.execute(q))
        if not rows:
            return
        ids = [r.id for r in rows]
        by: dict[int, list[Any]] = {i: [] for i in ids}
        for d in conn.execute(select(T_DF).where(T_DF.c.inspection_id.in_(ids)).order_by(T_DF.c.idx, T_DF.c.id)):
            by[d.inspection_id].append(d)
        for r in rows:
            yield r, by[r.id]
        last = ids[-1]


def verify_records(
    conn: Connection, verifier: Any, *, station_id: str | None = None, chunk: int = 2000, limit_problems: int = 1000
) -> RecordReport:
    """Check every inspection's signature (in id order); one line per changed, unsigned or foreign record.

    Unsigned records are accepted only before the first signed one (history from before signing);
    an unsigned record after it means the signature was removed.
    """
    rep = RecordReport()
    seen_signed = False
    for row, defects in _rows(conn, station_id, chunk):
        rep.checked += 1
        name = f"inspection id {row.id} (uid {row.uid}, {row.created_at:%Y-%m-%d %H:%M:%S}, serial {row.board_serial})"
        if row.defect_count != len(defects):
            if len(rep.problems) < limit_problems:
                rep.problems.append(f"{name}: {row.defect_count} defects recorded, {len(defects)} rows present")
        why = verifier.check(row.sig_key_id, row.signature, _row_content(row, defects))
        if why is None:
            rep.signed_ok += 1
            seen_signed = True
            continue
        if why == "not signed" and not seen_signed:
            rep.unsigned_legacy += 1
            continue
        if len(rep.problems) < limit_problems:
            detail = "changed after it was recorded (signature does not match)" if "does not match" in why else why
            rep.problems.append(f"{name}: {detail}")
    return rep
