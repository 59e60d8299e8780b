"""Export reviewed history as a training set in the DeepPCB layout (for retraining).

Labels come from the reviews: confirmed detections and missed defects drawn by reviewers are
annotations; false calls are dropped, so the board teaches the model what *not* to flag. Only
reviewed boards whose full image and reference were archived can be exported.
Layout (what `inspector.datasets.deeppcb.load_list` reads):
  groupG/G/<id>_test.jpg, groupG/G/<id>_temp.jpg, groupG/G_not/<id>.txt ("x1 y1 x2 y2 class"),
  trainval.txt ("groupG/G/<id>.jpg groupG/G_not/<id>.txt"), heldout.txt (the ~20% of boards held out,
  chosen by board, same format) and export.json (uids, recipes, counts).
One group per recipe, numbered from 90000 so it never collides with DeepPCB's own groups.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from ..domain import CLASS_NAMES
from .db import Database
from .models import Defect, Inspection, Review
from .queries import HistoryFilter, apply_filter

log = logging.getLogger(__name__)


class ExportError(Exception):
    pass


def _archived_gray(archive_dir: Path, rel: str) -> np.ndarray | None:
    """An archived image as 8-bit gray, or None (logged) when it is gone or damaged.

    Strictly (`inspector.image_file`): a truncated file read leniently comes back half gray, and a retraining set
    would teach the network that a board's missing half is laminate, under its reviewed labels."""
    from ..image_file import ImageFileError, read_image_file

    try:
        return read_image_file(Path(archive_dir) / rel, cv2.IMREAD_GRAYSCALE)
    except ImageFileError as exc:
        log.warning("export: archived image %s skipped: %s", Path(archive_dir) / rel, exc)
        return None


@dataclass
class ExportReport:
    out_dir: Path
    boards: int = 0
    annotations: int = 0
    skipped_no_image: int = 0
    skipped_unjudged: int = 0
    """Boards with a detection nobody judged (an old partial review): left out, not exported as background."""
    false_calls_dropped: int = 0
    groups: dict[str, str] = field(default_factory=dict)
    """recipe name -> DeepPCB group number."""
    held_out: int = 0
    """Boards listed in heldout.txt (never trained on; validation, INT8 check, model comparison)."""


def recipe_group(recipe: str) -> str:
    """The DeepPCB-style group number of a recipe's boards: from its name, so it is the same in every export.

    Why: numbered in the order recipes came up (90000, 90001, ...), a re-export of one recipe renumbered its boards,
    and the board-keyed held-out split (`split_by_board`) put 4 of 4 earlier validation boards into training.
    Two recipes may share a group (boards keep distinct ids): nothing is split by group here.
    """
    return f"{90000 + zlib.crc32(recipe.encode()) % 10000:05d}"


def export_dataset(
    db: Database,
    archive_dir: Path,
    out_dir: Path,
    f: HistoryFilter | None = None,
    *,
    include_unreviewed_defects: bool = False,
    jpeg_quality: int = 95,
) -> ExportReport:
    """Write the reviewed boards matching `f` to `out_dir` in the DeepPCB layout.

    `include_unreviewed_defects`: also label detections on a reviewed board that nobody judged
    (default no: only a reviewer's word makes a label).
    """
    archive_dir, out_dir = Path(archive_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "trainval.txt").exists():
        raise ExportError(f"{out_dir} already holds an export (trainval.txt); choose an empty folder")
    rep = ExportReport(out_dir)
    flt = HistoryFilter(**{**(f.__dict__ if f else {}), "reviewed": True})
    q = apply_filter(
        select(Inspection.id, Inspection.uid, Inspection.recipe_name, Inspection.image_path, Inspection.reference_path),
        flt,
    ).order_by(Inspection.created_at, Inspection.id)
    lines: list[str] = []
    boards: list[dict] = []
    with db.session() as s:
        for iid, uid, recipe, image_path, ref_path in s.execute(q).all():
            if not image_path or not ref_path:
                rep.skipped_no_image += 1
                continue
            img, ref = _archived_gray(archive_dir, image_path), _archived_gray(archive_dir, ref_path)
            if img is None or ref is None:
                rep.skipped_no_image += 1
                continue
            group = rep.groups.setdefault(recipe, recipe_group(recipe))
            reviews = list(s.scalars(select(Review).where(Review.inspection_id == iid)))
            verdict = {r.defect_id: r.verdict for r in reviews if r.defect_id is not None}
            detected = list(s.scalars(select(Defect.id).where(Defect.inspection_id == iid)))
            if not include_unreviewed_defects and any(d not in verdict for d in detected):
                # Without the reviewer's word on every detection the board's label file would call the unjudged
                # ones background; exported anyway, they taught the network that real defects are laminate.
                log.warning("export: board %s (uid %s) skipped: a detection on it is not judged yet", iid, uid)
                rep.skipped_unjudged += 1
                continue
            labels: list[tuple[tuple[float, float, float, float], int]] = []
            for d in s.scalars(select(Defect).where(Defect.inspection_id == iid).order_by(Defect.idx)):
                v = verdict.get(d.id)
                if v == "false_call":
                    rep.false_calls_dropped += 1
                elif v == "confirmed" or (v is None and include_unreviewed_defects):
                    labels.append(((d.x1, d.y1, d.x2, d.y2), d.class_id))
            for r in reviews:
                if r.verdict == "missed" and r.class_id:
                    labels.append(((r.x1, r.y1, r.x2, r.y2), r.class_id))
            name = f"{group}{iid:08d}"
            img_dir = out_dir / f"group{group}" / group
            ann_dir = out_dir / f"group{group}" / f"{group}_not"
            img_dir.mkdir(parents=True, exist_ok=True)
            ann_dir.mkdir(parents=True, exist_ok=True)
            params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
            if not (cv2.imwrite(str(img_dir / f"{name}_test.jpg"), img, params)
                    and cv2.imwrite(str(img_dir / f"{name}_temp.jpg"), ref, params)):  # fmt: skip
                raise ExportError(f"cannot write images into {img_dir}")
            h, w = img.shape[:2]
            ann = []
            for (x1, y1, x2, y2), cid in labels:
                a, b = max(0, math.floor(x1)), max(0, math.floor(y1))
                c, d = min(w, max(a + 1, math.ceil(x2))), min(h, max(b + 1, math.ceil(y2)))
                ann.append(f"{a} {b} {c} {d} {cid}")
            (ann_dir / f"{name}.txt").write_text("\n".join(ann) + ("\n" if ann else ""))
            lines.append(f"group{group}/{group}/{name}.jpg group{group}/{group}_not/{name}.txt")
            boards.append({"id": name, "uid": uid, "recipe": recipe, "labels": len(ann)})
            rep.boards += 1
            rep.annotations += len(ann)
    (out_dir / "trainval.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    # The held-out boards, chosen by board (a single-recipe station has one group, so a split by
    # group is impossible): the trainer validates on them, the INT8 export checks quantisation on
    # them and `pcb-inspector evaluate --list heldout.txt` compares models on them.
    from ..datasets.deeppcb import HELD_OUT_LIST, load_list, split_by_board

    _, held = split_by_board(load_list(out_dir)) if rep.boards >= 2 else ([], [])
    held_ids = {p.id for p in held}
    held_lines = [ln for ln in lines if Path(ln.split()[0]).stem in held_ids]
    (out_dir / HELD_OUT_LIST).write_text("\n".join(held_lines) + ("\n" if held_lines else ""))
    rep.held_out = len(held_lines)
    (out_dir / "export.json").write_text(
        json.dumps(
            {
                "classes": list(CLASS_NAMES),
                "groups": rep.groups,
                "held_out": sorted(held_ids),
                "boards": boards,
                "false_calls_dropped": rep.false_calls_dropped,
                "skipped_no_image": rep.skipped_no_image,
                "skipped_unjudged": rep.skipped_unjudged,
            },
            indent=1,
        )  # fmt: skip
    )
    return rep
