"""Recipe and model versions: a recipe row is added only when its settings actually change.

Why versioned rows instead of updating in place: an inspection must point at the thresholds and
ROI it was judged with, even after an engineer edits the recipe.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .db import Database
from .models import ModelVersion, Recipe


def register_recipe(db: Database, recipe: dict[str, Any], *, by: str = "station") -> Recipe:
    """Store `recipe` (a config Recipe as JSON: name, id, thresholds, roi, ...); returns the current version.

    A new version is created when thresholds, ROI or any other setting differ from the latest one.
    """
    name = recipe["name"]
    settings = {k: v for k, v in recipe.items() if k not in {"name"}}
    with db.session() as s, s.begin():
        latest = s.scalar(select(Recipe).where(Recipe.name == name).order_by(Recipe.version.desc()).limit(1))
        if latest is not None and latest.settings == settings:
            return latest
        row = Recipe(
            name=name,
            version=(latest.version + 1) if latest else 1,
            product=recipe.get("product", name),
            plc_id=recipe.get("id"),
            thresholds=dict(recipe.get("thresholds") or {}),
            roi=recipe.get("roi"),
            settings=settings,
            created_by=by,
        )
        s.add(row)
    return row


def recipe_versions(db: Database, name: str) -> list[Recipe]:
    with db.session() as s:
        return list(s.scalars(select(Recipe).where(Recipe.name == name).order_by(Recipe.version)))


def register_model(
    db: Database, model_id: str, *, sha256: str | None = None, metrics: dict[str, Any] | None = None
) -> ModelVersion:
    """Record a model (`name@version`) with its hash and metrics; updates them if already known."""
    name, _, version = model_id.partition("@")
    with db.session() as s, s.begin():
        row = s.scalar(select(ModelVersion).where(ModelVersion.model_id == model_id))
        if row is None:
            row = ModelVersion(model_id=model_id, name=name, version=version, sha256=sha256, metrics=metrics or {})
            s.add(row)
        else:
            if sha256:
                row.sha256 = sha256
            if metrics is not None:
                row.metrics = metrics
    return row
