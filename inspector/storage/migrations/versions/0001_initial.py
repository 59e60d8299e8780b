"""First schema: stations, recipes, models, inspections, defects, reviews, users, audit events.

Frozen: this file describes version 1 as shipped and never imports the current models.

Revision ID: 0001
Revises:
Create Date: 2025-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("line", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "recipes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("plc_id", sa.Integer(), nullable=True),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("roi", sa.JSON(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_recipes_name_version"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(200), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "inspections",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("station_id", sa.String(64), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("recipe_id", BigId, sa.ForeignKey("recipes.id"), nullable=True),
        sa.Column("recipe_name", sa.String(200), nullable=False),
        sa.Column("model_version_id", BigId, sa.ForeignKey("model_versions.id"), nullable=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("board_serial", sa.String(64), nullable=True),
        sa.Column("part_seq", sa.BigInteger(), nullable=True),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("defect_count", sa.Integer(), nullable=False),
        sa.Column("cycle_ms", sa.Float(), nullable=False),
        sa.Column("timings_ms", sa.JSON(), nullable=False),
        sa.Column("frame_meta", sa.JSON(), nullable=False),
        sa.Column("image_path", sa.String(300), nullable=True),
    )
    op.create_index("ix_inspections_created", "inspections", ["created_at", "id"])
    op.create_index("ix_inspections_verdict_created", "inspections", ["verdict", "created_at"])
    op.create_index("ix_inspections_recipe_created", "inspections", ["recipe_id", "created_at"])
    op.create_index("ix_inspections_station_created", "inspections", ["station_id", "created_at"])
    op.create_index("ix_inspections_serial", "inspections", ["board_serial"])
    op.create_table(
        "defects",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("inspection_id", BigId, sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("crop_path", sa.String(300), nullable=True),
    )
    op.create_index("ix_defects_inspection", "defects", ["inspection_id"])
    op.create_index("ix_defects_class_inspection", "defects", ["class_id", "inspection_id"])
    op.create_table(
        "reviews",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("inspection_id", BigId, sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("defect_id", BigId, sa.ForeignKey("defects.id", ondelete="CASCADE"), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("x1", sa.Float(), nullable=True),
        sa.Column("y1", sa.Float(), nullable=True),
        sa.Column("x2", sa.Float(), nullable=True),
        sa.Column("y2", sa.Float(), nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
    )
    op.create_index("ix_reviews_inspection", "reviews", ["inspection_id"])
    op.create_index("ix_reviews_defect", "reviews", ["defect_id"])
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=True),
        sa.Column("who", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_at", "audit_events", ["at"])


def downgrade() -> None:
    for t in ("audit_events", "users", "reviews", "defects", "inspections", "model_versions", "recipes", "stations"):
        op.drop_table(t)
