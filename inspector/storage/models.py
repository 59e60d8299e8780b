"""The records schema (SQLAlchemy 2 typed ORM), identical on SQLite and PostgreSQL.

Why these shapes:
- `Inspection.uid` (the result's globally unique hex id) is the natural key: replaying a spool or a
  plant sync inserts it at most once, whatever happened before a crash.
- Times are stored as naive UTC (`UtcDateTime`) because SQLite has no time zone type; the type turns
  them back into aware UTC values, so code never compares naive with aware times.
- Indexes follow the history queries: (created_at, id) for keyset paging, and one index per filter
  that narrows a time range (verdict, recipe, serial, reviewed, station, defect class).
- Archive paths are relative to `storage.archive_dir`, so an archive can be moved or mounted elsewhere.

This module is the *current* schema. Migrations in `migrations/versions` are frozen copies of each
step and never import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: BIGINT on PostgreSQL (plant databases outgrow 2^31 defects), INTEGER on SQLite (rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")

REVIEW_VERDICTS = ("confirmed", "false_call", "missed")
ROLES = ("operator", "engineer", "admin")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database (same text/bytes on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL paths on SQLite
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    line: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Recipe(Base):
    """One version of a product recipe; a new row is added whenever thresholds or ROI change."""

    __tablename__ = "recipes"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_recipes_name_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    product: Mapped[str] = mapped_column(String(200), default="")
    plc_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    thresholds: Mapped[dict] = mapped_column(JSON, default=dict)
    roi: Mapped[Any] = mapped_column(JSON, nullable=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    """The whole recipe section as configured (min sizes, reference path...)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(200), unique=True)
    """The id the detector reports (`name@version`), as stored on every inspection."""
    name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[str] = mapped_column(String(50), default="")
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Inspection(Base):
    __tablename__ = "inspections"
    __table_args__ = (
        Index("ix_inspections_created", "created_at", "id"),
        Index("ix_inspections_verdict_created", "verdict", "created_at"),
        Index("ix_inspections_recipe_created", "recipe_id", "created_at"),
        Index("ix_inspections_station_created", "station_id", "created_at"),
        Index("ix_inspections_reviewed_created", "reviewed", "created_at"),
        Index("ix_inspections_serial", "board_serial"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    recipe_id: Mapped[int | None] = mapped_column(ForeignKey("recipes.id"), nullable=True)
    recipe_name: Mapped[str] = mapped_column(String(200))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    model_id: Mapped[str] = mapped_column(String(200), default="")
    board_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    part_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    frame_id: Mapped[int] = mapped_column(BigInteger, default=0)
    verdict: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    defect_count: Mapped[int] = mapped_column(Integer, default=0)
    cycle_ms: Mapped[float] = mapped_column(Float, default=0.0)
    timings_ms: Mapped[dict] = mapped_column(JSON, default=dict)
    frame_meta: Mapped[dict] = mapped_column(JSON, default=dict)
    image_path: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # --- added by migration 0002
    thumb_path: Mapped[str | None] = mapped_column(String(300), nullable=True)
    reference_path: Mapped[str | None] = mapped_column(String(300), nullable=True)
    archive_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    # --- added by migration 0003: Ed25519 signature of the record's content (inspector.storage.signed)
    sig_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    signature: Mapped[str | None] = mapped_column(String(100), nullable=True)

    defects: Mapped[list[Defect]] = relationship(
        back_populates="inspection", cascade="all, delete-orphan", passive_deletes=True, order_by="Defect.idx"
    )
    reviews: Mapped[list[Review]] = relationship(
        back_populates="inspection", cascade="all, delete-orphan", passive_deletes=True, order_by="Review.id"
    )


class Defect(Base):
    __tablename__ = "defects"
    __table_args__ = (
        Index("ix_defects_inspection", "inspection_id"),
        Index("ix_defects_class_inspection", "class_id", "inspection_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer, default=0)
    class_id: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    crop_path: Mapped[str | None] = mapped_column(String(300), nullable=True)

    inspection: Mapped[Inspection] = relationship(back_populates="defects")


class Review(Base):
    """A reviewer's word on one defect (confirmed / false_call) or a defect the model missed (with a box)."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_inspection", "inspection_id"), Index("ix_reviews_defect", "defect_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    defect_id: Mapped[int | None] = mapped_column(ForeignKey("defects.id", ondelete="CASCADE"), nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))
    class_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    x1: Mapped[float | None] = mapped_column(Float, nullable=True)
    y1: Mapped[float | None] = mapped_column(Float, nullable=True)
    x2: Mapped[float | None] = mapped_column(Float, nullable=True)
    y2: Mapped[float | None] = mapped_column(Float, nullable=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    reviewed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")

    inspection: Mapped[Inspection] = relationship(back_populates="reviews")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuditEvent(Base):
    """Who did what, when, before -> after. From migration 0003 each event is chained and signed.

    `hash` is SHA-256 over the event's content and `prev_hash` (the station's previous event), and
    `signature` is the station key's signature of `hash` (inspector.storage.audit).
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ux_audit_station_seq", "station_id", "seq", unique=True),
        Index("ix_audit_who_at", "who", "at"),
        Index("ix_audit_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    station_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    who: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300), default="")
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    # --- added by migration 0003
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(32), default="")
    """Where the action came from: ui, cli, plc, station."""
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    signature: Mapped[str | None] = mapped_column(String(100), nullable=True)


class AuditHead(Base):
    """Added by migration 0003. The last event of each station's chain.

    Every append updates this row first, which serialises writers (SQLite write lock, PostgreSQL
    row lock) so two processes never chain onto the same predecessor, and lets `audit verify` see
    events deleted from the end of the chain.
    """

    __tablename__ = "audit_heads"

    station_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class LoginLockout(Base):
    """Added by migration 0003. Failed logins and the lock-out, kept across restarts."""

    __tablename__ = "login_lockouts"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Calibration(Base):
    """Added by migration 0002. One active row per (station, kind); older rows are the history."""

    __tablename__ = "calibrations"
    __table_args__ = (Index("ix_calibrations_station_kind", "station_id", "kind", "active"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    results: Mapped[dict] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
