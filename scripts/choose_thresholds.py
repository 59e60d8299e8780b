"""Choose the station's score threshold: the fewest missed defects for a budget of falsely rejected good boards.

    .venv/bin/pcb-inspector evaluate --root ../shared/datasets/deeppcb --list TRAIN_LIST --model PKG \
        --one-defect --camera gray --camera-shift 3 --camera-rotate 0.5 --out runs/thr/gray-line
    .venv/bin/python scripts/choose_thresholds.py runs/thr/gray-line runs/thr/colour-line \
        [--check runs/thr/gray-harsh ...] [--budget 0.01] [--json]

Reads `scores.jsonl` of each `evaluate --one-defect --out` folder: every box above the evaluation floor on every
one-defect board (the board with one labelled defect; `touches` says whether the box lies on it) and on every
known-good board (a second capture of the golden board; under `--camera` another physical board too). At a threshold
t, a one-defect board's defect is *missed* when no box on it scores t or more, and a good board is *falsely rejected*
when any box does (or when it could not be inspected). A board that could not be inspected is a REJECT on the line and
counts as neither miss nor find.

Why one threshold for every class, chosen this way: a line's defective boards mostly carry one defect, so each
missed defect is an escaped board, while a false call costs a second look. The choice is the threshold with the
fewest misses whose false rejects stay within `--budget` of the good boards in every folder; among equals the highest
(fewest false calls, and fewer second boxes on a defect). Per-class thresholds would be chosen on a handful of misses
each. Choose on boards the model did not train on where there are any to spare, else on its training boards (they
flatter it: expect more misses on unseen boards), and report the chosen threshold's figures on boards the choice
never saw (`evaluate` with the sidecar's thresholds set to it). `--check` folders are printed, not chosen on (e.g. a
harsh camera whose good boards are already above the budget at every threshold).

The default recipe is assumed (no ROI, no minimum defect size), and so is the sidecar's cross-class suppression
lowered with the threshold (`cross_class.min_score`): it only ever removes a box in favour of a better-scoring one on
the same place, so it changes neither a miss nor a false reject.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

GRID = (0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.08)


@dataclass(frozen=True)
class Count:
    """One folder at one threshold."""

    one_defect_boards: int
    missed: list[str]
    """One-defect boards (id and class) with no box on their defect at or above the threshold."""
    not_inspected: int
    good_boards: int
    false_rejects: list[str]
    """Good boards (id and which board) with a box at or above the threshold, or not inspected."""


def read_scores(folder: Path) -> list[dict]:
    """The records of `folder/scores.jsonl`; a clear error when the folder is not an `evaluate --out` folder."""
    path = folder / "scores.jsonl"
    if not path.is_file():
        raise SystemExit(f"{folder}: no scores.jsonl (run `pcb-inspector evaluate --one-defect --out {folder}`)")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"{path}:{n}: not JSON ({exc})") from None
        missing = {"boxes", "board", "inspected"} - (r.keys() if isinstance(r, dict) else set())
        if missing:
            raise SystemExit(f"{path}:{n}: not a record of `evaluate` (no {', '.join(sorted(missing))})")
        records.append(r)
    if not any(r["board"] == "one defect" for r in records):
        raise SystemExit(f"{path}: no one-defect boards (evaluate was run without --one-defect)")
    return records


def count(records: list[dict], threshold: float) -> Count:
    one = [r for r in records if r["board"] == "one defect"]
    good = [r for r in records if r["board"] != "one defect"]
    missed = [
        f"{r['id']} ({r.get('class', '?')})"
        for r in one
        if r["inspected"] and not any(score >= threshold for _, score, touches, _ in r["boxes"] if touches)
    ]
    false = [
        f"{r['id']} ({r['board']})"
        for r in good
        if not r["inspected"] or any(score >= threshold for _, score, _, _ in r["boxes"])
    ]
    return Count(len(one), missed, sum(not r["inspected"] for r in one), len(good), false)


def choose(folders: dict[str, list[dict]], budget: float, grid=GRID) -> tuple[float | None, dict]:
    """The threshold with the fewest misses (summed over `folders`) whose false rejects are within `budget` of the
    good boards in every folder; the highest such. None when no threshold of `grid` keeps to the budget."""
    table = {t: {name: count(recs, t) for name, recs in folders.items()} for t in grid}
    within = [t for t in grid if all(len(c.false_rejects) <= budget * c.good_boards for c in table[t].values())]
    if not within:
        return None, table
    fewest = min(sum(len(c.missed) for c in table[t].values()) for t in within)
    return max(t for t in within if sum(len(c.missed) for c in table[t].values()) == fewest), table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+", help="`evaluate --one-defect --out` folders to choose on")
    ap.add_argument("--check", type=Path, nargs="*", default=[], help="folders printed beside, not chosen on")
    ap.add_argument(
        "--budget", type=float, default=0.01, help="largest share of good boards falsely rejected (default 0.01)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not 0 <= args.budget < 1:
        raise SystemExit(f"--budget {args.budget}: a share of the good boards, 0 to below 1")
    chosen_on = {str(f): read_scores(f) for f in args.folders}
    checked = {str(f): read_scores(f) for f in args.check}
    best, table = choose(chosen_on, args.budget)
    shown = {t: {**row, **{name: count(recs, t) for name, recs in checked.items()}} for t, row in table.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "threshold": best,
                    "budget": args.budget,
                    "chosen_on": list(chosen_on),
                    "checked": list(checked),
                    "table": {
                        str(t): {
                            name: {
                                "one_defect_boards": c.one_defect_boards,
                                "missed": c.missed,
                                "not_inspected": c.not_inspected,
                                "good_boards": c.good_boards,
                                "false_rejects": c.false_rejects,
                            }
                            for name, c in row.items()
                        }
                        for t, row in shown.items()
                    },
                },
                indent=2,
            )
        )
        return 0 if best is not None else 1
    names = [*chosen_on, *checked]
    width = max(len(n) for n in names)
    print(f"missed defects of one-defect boards / falsely rejected good boards (budget {args.budget:.1%}):")
    for t, row in shown.items():
        mark = "  <- chosen" if t == best else ""
        print(f"threshold {t:.2f}{mark}")
        for name in names:
            c = row[name]
            tag = "" if name in chosen_on else " (check)"
            print(
                f"  {name:<{width}}  missed {len(c.missed):>3} of {c.one_defect_boards}"
                f"  false rejects {len(c.false_rejects):>3} of {c.good_boards}{tag}"
            )
    if best is None:
        print(f"no threshold keeps the false rejects within {args.budget:.1%} in every folder chosen on")
        return 1
    print(f"chosen: {best:.2f}; misses there:")
    for name in names:
        for m in shown[best][name].missed:
            print(f"  {name}: {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
