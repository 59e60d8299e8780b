"""Thumbnails, shared reference images, archive errors, a `reviewed` flag, and calibrations.

`reviewed` is backfilled from the reviews that version 1 already stored, so the "unreviewed"
filter is right for old boards too.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite supports it): no table copy, so a large history upgrades in seconds.
    op.add_column("inspections", sa.Column("thumb_path", sa.String(300), nullable=True))
    op.add_column("inspections", sa.Column("reference_path", sa.String(300), nullable=True))
    op.add_column("inspections", sa.Column("archive_error", sa.Text(), nullable=True))
    op.add_column("inspections", sa.Column("reviewed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE inspections SET reviewed = TRUE WHERE id IN (SELECT DISTINCT inspection_id FROM reviews)"
        if op.get_bind().dialect.name == "postgresql"
        else "UPDATE inspections SET reviewed = 1 WHERE id IN (SELECT DISTINCT inspection_id FROM reviews)"
    )
    op.create_index("ix_inspections_reviewed_created", "inspections", ["reviewed", "created_at"])
    op.create_table(
        "calibrations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_calibrations_station_kind", "calibrations", ["station_id", "kind", "active"])


def downgrade() -> None:
    op.drop_index("ix_calibrations_station_kind", "calibrations")
    op.drop_table("calibrations")
    op.drop_index("ix_inspections_reviewed_created", "inspections")
    with op.batch_alter_table("inspections") as b:
        b.drop_column("reviewed")
        b.drop_column("archive_error")
        b.drop_column("reference_path")
        b.drop_column("thumb_path")
