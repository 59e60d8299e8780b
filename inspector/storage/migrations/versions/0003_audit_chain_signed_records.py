"""Tamper evidence: hash-chained, signed audit events; signed inspection records; a persisted login lock-out.

Only new columns and tables (plain ADD COLUMN, no table copy), so a large history upgrades in
seconds. Events and records written before this version stay unsigned: `audit verify` seals the
old events into the chain the first time the station opens with its key (an `audit.seal` event
says how many), and `db verify` reports old unsigned records separately from tampered ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_events", sa.Column("source", sa.String(32), nullable=False, server_default=""))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(64), nullable=True))
    op.add_column("audit_events", sa.Column("key_id", sa.String(16), nullable=True))
    op.add_column("audit_events", sa.Column("signature", sa.String(100), nullable=True))
    op.create_index("ux_audit_station_seq", "audit_events", ["station_id", "seq"], unique=True)
    op.create_index("ix_audit_who_at", "audit_events", ["who", "at"])
    op.create_index("ix_audit_action_at", "audit_events", ["action", "at"])
    op.create_table(
        "audit_heads",
        sa.Column("station_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.add_column("inspections", sa.Column("sig_key_id", sa.String(16), nullable=True))
    op.add_column("inspections", sa.Column("signature", sa.String(100), nullable=True))
    op.create_table(
        "login_lockouts",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_lockouts")
    with op.batch_alter_table("inspections") as b:
        b.drop_column("signature")
        b.drop_column("sig_key_id")
    op.drop_table("audit_heads")
    op.drop_index("ix_audit_action_at", "audit_events")
    op.drop_index("ix_audit_who_at", "audit_events")
    op.drop_index("ux_audit_station_seq", "audit_events")
    with op.batch_alter_table("audit_events") as b:
        for c in ("signature", "key_id", "hash", "prev_hash", "source", "seq"):
            b.drop_column(c)
