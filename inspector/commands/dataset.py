"""`pcb-inspector dataset export`: the station's reviewed history as a training set.

Why: the shipped model was trained on DeepPCB, whose licence restricts it to research use; a
customer retrains (or fine-tunes) on their own boards, labelled by their own reviews in the UI.
The export is in the DeepPCB layout, which `python -m inspector.training.train --data DIR` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="export reviewed boards as a training set")
    dsub = p.add_subparsers(dest="dataset_cmd", metavar="ACTION", required=True)
    e = dsub.add_parser("export", help="write reviewed boards in the DeepPCB layout")
    e.add_argument("--db", default=None, help="database URL (default: from the config)")
    e.add_argument("--config", default=None, help="station.toml")
    e.add_argument("--archive", type=Path, default=None, help="image archive folder (default: from the config)")
    e.add_argument("--out", type=Path, required=True, help="empty folder for the dataset")
    e.add_argument("--recipe", default=None, help="only this recipe")
    e.add_argument(
        "--include-unreviewed", action="store_true", help="also label unjudged detections of reviewed boards"
    )
    e.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..config import load_config
    from ..storage.db import open_database
    from ..storage.export import ExportError, export_dataset
    from ..storage.queries import HistoryFilter

    cfg = load_config(args.config)
    url = args.db or cfg.storage.database_url
    from ..storage.db import current_revision, sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise CommandError(f"database {path} does not exist")
    db = open_database(url, station_id=cfg.station.id, migrate=False)
    if current_revision(db.engine) is None:
        raise CommandError(f"database {url} holds no station records (no schema)")
    flt = HistoryFilter(recipe=args.recipe) if args.recipe else None
    try:
        rep = export_dataset(
            db,
            args.archive or cfg.storage.archive_dir,
            args.out,
            flt,
            include_unreviewed_defects=args.include_unreviewed,
        )
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"exported {rep.boards} boards with {rep.annotations} labels to {rep.out_dir}, {rep.held_out} held out "
        f"(heldout.txt) ({rep.false_calls_dropped} false calls dropped, {rep.skipped_no_image} boards without "
        f"archived images, {rep.skipped_unjudged} boards with a detection nobody judged yet)"
    )
    if rep.boards:
        print(
            f"groups by recipe: {rep.groups}. Fine-tune (validates on heldout.txt) with: python -m "
            f"inspector.training.train --data {rep.out_dir} --out runs/site "
            "--init-weights models/pcb-defect-det.weights.h5 (the whole loop: docs/model.md)"
        )
    return 0
