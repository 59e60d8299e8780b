"""Where the points are: error kinds of a detector's result files on a DeepPCB-layout dataset.

    .venv/bin/pcb-inspector evaluate --root ../shared/datasets/deeppcb --groups 44000,92000 --out runs/eval-int8
    .venv/bin/python scripts/error_breakdown.py --root ../shared/datasets/deeppcb --results runs/eval-int8 \
        --groups 44000,92000 [--score 0.3] [--json]

Prints, at the station's score threshold, how many detections are true positives, duplicates,
loose boxes of the right class (IoU 0.1-0.5), a second class on a defect, boxes on clean copper,
and how many labelled defects were missed, by group and by defect size; then how many mAP@0.5
points each kind costs over all scores (each fixed alone). See inspector/evaluation/breakdown.py.
A camera run (`evaluate --camera`) leaves `<id>.truth.txt` beside each result: the labels where that capture put
the defects, which are then used instead of the dataset's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.datasets.deeppcb import CLASS_NAMES, DatasetError, load_list  # noqa: E402
from inspector.evaluation.breakdown import DET_KINDS, breakdown, oracle_gains  # noqa: E402


def read_results(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`x1,y1,x2,y2,score,class` lines as written by `pcb-inspector evaluate --out`."""
    boxes, scores, classes = [], [], []
    if path.is_file():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != 6 or parts[5] not in CLASS_NAMES:
                raise SystemExit(f"{path}:{n}: expected 'x1,y1,x2,y2,score,class', got {line!r}")
            boxes.append([float(v) for v in parts[:4]])
            scores.append(float(parts[4]))
            classes.append(CLASS_NAMES.index(parts[5]))
    return (
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int64),
    )


def read_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`x1,y1,x2,y2,class` lines: the labels of a camera run in frame pixels (`evaluate --camera ... --out`)."""
    boxes, classes = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 5 or parts[4] not in CLASS_NAMES:
            raise SystemExit(f"{path}:{n}: expected 'x1,y1,x2,y2,class', got {line!r}")
        boxes.append([float(v) for v in parts[:4]])
        classes.append(CLASS_NAMES.index(parts[4]))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="dataset root (DeepPCB layout)")
    ap.add_argument("--results", type=Path, required=True, help="folder of <id>.txt result files")
    ap.add_argument("--list", type=Path, default=None, help="list file (default: ROOT/trainval.txt), as for evaluate")
    ap.add_argument("--groups", default=None, help="only these board groups, e.g. 44000,92000")
    ap.add_argument("--score", type=float, default=0.3, help="score at which detections count (the station's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        pairs = load_list(args.root, args.list)
    except DatasetError as exc:
        raise SystemExit(f"dataset: {exc}") from None
    if args.groups:
        wanted = {g.strip() for g in args.groups.split(",")}
        pairs = [p for p in pairs if p.group in wanted]
    if not pairs:
        raise SystemExit("no boards selected")
    missing = [p.id for p in pairs if not (args.results / f"{p.id}.txt").is_file()]
    if missing:
        raise SystemExit(f"{args.results}: no result file for {len(missing)} boards (e.g. {missing[0]}.txt)")
    gts, dets, rows = [], [], []
    moved = 0
    for p in pairs:
        b, s, c = read_results(args.results / f"{p.id}.txt")
        truth, classes = p.boxes, p.classes
        if (args.results / f"{p.id}.truth.txt").is_file():  # a camera run: the labels where its capture put them
            truth, classes = read_truth(args.results / f"{p.id}.truth.txt")
            moved += 1
        gts.append((truth, classes))
        dets.append((b, s, c))
        rows.append((p.group, truth, classes, b, s, c))
    if moved and moved != len(pairs):
        raise SystemExit(f"{args.results}: {moved} of {len(pairs)} boards have <id>.truth.txt; expected all or none")
    bd = breakdown(rows, args.score).as_dict()
    bd["map50_gain_if_fixed"] = oracle_gains(gts, dets, CLASS_NAMES)
    if args.json:
        print(json.dumps(bd, indent=2))
        return 0
    where = " (labels as each camera capture placed them: <id>.truth.txt)" if moved else ""
    print(f"{len(pairs)} boards, {bd['labels']} labelled defects{where}; detections scoring >= {args.score}:")
    print("  " + "  ".join(f"{k} {bd['detections'][k]}" for k in DET_KINDS) + f"  | missed {bd['missed']}")
    for title, table in (("by group", bd["by_group"]), ("by defect size (longer side, px)", bd["by_size"])):
        print(title + ":")
        for key, counts in table.items():
            print(f"  {key:>8}: " + "  ".join(f"{k} {counts.get(k, 0)}" for k in (*DET_KINDS, "missed")))
    g = bd["map50_gain_if_fixed"]
    print(f"mAP@0.5 {g['base_map50']:.4f}; points gained if one kind were fixed (all scores):")
    print("  " + "  ".join(f"{k} {100 * v:+.2f}" for k, v in g.items() if k != "base_map50"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
