"""Synthetic bare-PCB boards with known defects, for the demo station and the tests.

Why: no third-party images may be copied into the repository, yet the demo and the end-to-end tests
need boards whose ground truth is known exactly. The look follows DeepPCB's binarised images
(black copper on a white laminate, 640x640), so the shipped detector meets the same kind of input.
Every board comes with its defect-free reference, pixel-aligned, as a golden board would be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .domain import CLASS_NAMES

COPPER = 0
LAMINATE = 255


@dataclass(slots=True)
class SynthBoard:
    image: np.ndarray
    reference: np.ndarray
    defects: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    """(x1, y1, x2, y2, class_id) in pixels, DeepPCB-style boxes around each defect."""

    @property
    def defective(self) -> bool:
        return bool(self.defects)


def _route(rng: np.random.Generator, size: int) -> list[tuple[int, int]]:
    """A trace path of horizontal, vertical and 45-degree segments, as a router draws them."""
    x, y = int(rng.integers(40, size - 40)), int(rng.integers(40, size - 40))
    pts = [(x, y)]
    dirs = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    d = dirs[int(rng.integers(0, 4))]
    for _ in range(int(rng.integers(2, 5))):
        length = int(rng.integers(50, 220))
        nx = int(np.clip(x + d[0] * length, 25, size - 25))
        ny = int(np.clip(y + d[1] * length, 25, size - 25))
        if (nx, ny) != (x, y):
            pts.append((nx, ny))
            x, y = nx, ny
        # turn by 45 or 90 degrees
        i = dirs.index(d)
        d = dirs[(i + int(rng.choice([-1, 1, 2, -2]))) % 8] if i < 4 else dirs[int(rng.integers(0, 4))]
    return pts


def draw_reference(rng: np.random.Generator, size: int = 640) -> tuple[np.ndarray, list[dict]]:
    """A defect-free board; returns the image and the traces drawn (for placing defects)."""
    img = np.full((size, size), LAMINATE, np.uint8)
    traces: list[dict] = []
    for _ in range(int(rng.integers(5, 9))):
        pts = _route(rng, size)
        width = int(rng.choice([8, 10, 12, 14, 18]))
        cv2.polylines(img, [np.array(pts, np.int32)], False, COPPER, width, cv2.LINE_8)
        traces.append({"pts": pts, "width": width})
        for end in (pts[0], pts[-1]):
            if rng.random() < 0.5:
                r = width + int(rng.integers(4, 12))
                cv2.circle(img, end, r, COPPER, -1)
                cv2.circle(img, end, max(3, r // 2 - 2), LAMINATE, -1)  # drilled via
            else:
                h = width + int(rng.integers(6, 16))
                cv2.rectangle(img, (end[0] - h, end[1] - h), (end[0] + h, end[1] + h), COPPER, -1)
    # copper pour areas and pad rows, as on real boards
    for _ in range(int(rng.integers(0, 3))):
        x, y = int(rng.integers(0, size - 150)), int(rng.integers(0, size - 100))
        w, h = int(rng.integers(80, 200)), int(rng.integers(40, 90))
        cv2.rectangle(img, (x, y), (x + w, y + h), COPPER, -1)
    for _ in range(int(rng.integers(0, 2))):
        x, y = int(rng.integers(30, size - 200)), int(rng.integers(30, size - 40))
        for k in range(int(rng.integers(3, 7))):
            cv2.rectangle(img, (x + 28 * k, y), (x + 28 * k + 16, y + 26), COPPER, -1)
    # silkscreen-free board: a little text etched in copper
    if rng.random() < 0.5:
        cv2.putText(
            img,
            f"R{int(rng.integers(1, 99))}",
            (int(rng.integers(20, size - 80)), int(rng.integers(30, size - 10))),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8,
            COPPER,
            2,
        )
    return img, traces


def _segment_point(rng: np.random.Generator, trace: dict) -> tuple[np.ndarray, np.ndarray, float]:
    pts = trace["pts"]
    i = int(rng.integers(0, len(pts) - 1))
    a, b = np.array(pts[i], float), np.array(pts[i + 1], float)
    t = float(rng.uniform(0.25, 0.75))
    p = a + t * (b - a)
    d = b - a
    d /= np.linalg.norm(d) + 1e-9
    return p, d, float(trace["width"])


def _box(cx: float, cy: float, half_w: float, half_h: float, size: int) -> tuple[int, int, int, int]:
    return (
        int(max(0, cx - half_w)),
        int(max(0, cy - half_h)),
        int(min(size - 1, cx + half_w)),
        int(min(size - 1, cy + half_h)),
    )


def _place_defect(rng: np.random.Generator, img: np.ndarray, ref: np.ndarray, traces: list[dict], cls: int):
    """Draw one defect of class `cls` (1..6) and return its box, or None if it did not fit."""
    size = img.shape[0]
    name = CLASS_NAMES[cls - 1]
    if name in {"open", "mousebite", "spur", "short"}:
        trace = traces[int(rng.integers(0, len(traces)))]
        p, d, w = _segment_point(rng, trace)
        n = np.array([-d[1], d[0]])
        if name == "open":
            gap = float(rng.uniform(4, 9))
            q = [
                p - d * gap / 2 - n * (w / 2 + 3),
                p + d * gap / 2 - n * (w / 2 + 3),
                p + d * gap / 2 + n * (w / 2 + 3),
                p - d * gap / 2 + n * (w / 2 + 3),
            ]
            cv2.fillPoly(img, [np.array(q, np.int32)], LAMINATE)
        elif name == "mousebite":
            for k in range(int(rng.integers(1, 3))):
                c = p + d * k * 6 + n * (w / 2) * rng.choice([-1, 1])
                cv2.circle(img, tuple(int(v) for v in c), int(rng.integers(3, 6)), LAMINATE, -1)
        elif name == "spur":
            side = rng.choice([-1, 1])
            base = p + n * side * (w / 2)
            tip = base + n * side * float(rng.uniform(9, 16)) + d * float(rng.uniform(-6, 6))
            cv2.line(img, tuple(int(v) for v in base), tuple(int(v) for v in tip), COPPER, int(rng.integers(2, 4)))
        else:  # short: a thin copper bridge from this trace outwards
            side = rng.choice([-1, 1])
            start = p + n * side * (w / 2)
            end = start + n * side * float(rng.uniform(18, 30)) + d * float(rng.uniform(-8, 8))
            cv2.line(img, tuple(int(v) for v in start), tuple(int(v) for v in end), COPPER, int(rng.integers(2, 4)))
            cv2.circle(img, tuple(int(v) for v in end), 4, COPPER, -1)
            c = (start + end) / 2
            return _box(c[0], c[1], 18, 18, size)
        return _box(p[0], p[1], 16, 16, size)
    if name == "copper":
        # spurious copper on bare laminate
        for _ in range(50):
            x, y = int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20))
            if (ref[y - 14 : y + 15, x - 14 : x + 15] == LAMINATE).all():
                axes = (int(rng.integers(4, 8)), int(rng.integers(3, 6)))
                cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, COPPER, -1)
                return _box(x, y, 14, 14, size)
        return None
    # pin-hole: a hole inside solid copper
    for _ in range(80):
        x, y = int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20))
        if (ref[y - 7 : y + 8, x - 7 : x + 8] == COPPER).all():
            cv2.circle(img, (x, y), int(rng.integers(2, 4)), LAMINATE, -1)
            return _box(x, y, 12, 12, size)
    return None


def _overlaps(box, boxes, margin=6) -> bool:
    return any(
        box[0] < b[2] + margin and b[0] < box[2] + margin and box[1] < b[3] + margin and b[1] < box[3] + margin
        for b in boxes
    )


def _fit_box(changed: np.ndarray, size: int, pad: int = 8, min_side: int = 24) -> tuple[int, int, int, int]:
    """Box around the pixels a defect actually changed, padded like DeepPCB's (generous) boxes."""
    ys, xs = np.nonzero(changed)
    x1, x2, y1, y2 = xs.min() - pad, xs.max() + pad, ys.min() - pad, ys.max() + pad
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = max((x2 - x1) / 2, min_side / 2), max((y2 - y1) / 2, min_side / 2)
    return _box(cx, cy, hw, hh, size)


def make_board(
    seed: int, size: int = 640, defect_rate: float = 0.6, max_defects: int = 4, design: int | None = None
) -> SynthBoard:
    """One board and its reference; with probability `defect_rate` it carries 1..max_defects defects.

    `design` (a seed) draws the board's layout on its own, so boards of one design share one reference
    (one product, one recipe, as on a line) and differ only by their defects; None: the layout comes
    from `seed` too (every board its own product).
    """
    rng = np.random.default_rng(seed)
    ref, traces = draw_reference(np.random.default_rng(design) if design is not None else rng, size)
    img = ref.copy()
    defects: list[tuple[int, int, int, int, int]] = []
    if rng.random() < defect_rate:
        wanted = int(rng.integers(1, max_defects + 1))
        for _ in range(wanted * 4):
            if len(defects) >= wanted:
                break
            cls = int(rng.integers(1, len(CLASS_NAMES) + 1))
            trial = img.copy()
            box = _place_defect(rng, trial, ref, traces, cls)
            if box is None or _overlaps(box, defects):
                continue
            changed = trial != img
            if not changed.any():  # the defect drew nothing (e.g. spur inside a pad)
                continue
            box = _fit_box(changed, size)
            if _overlaps(box, defects):
                continue
            img = trial
            defects.append((*box, cls))
    return SynthBoard(image=img, reference=ref, defects=defects)


def write_boards(out: Path, count: int, seed: int = 7, size: int = 640, designs: int | None = None) -> Path:
    """Write boards as DeepPCB-style pairs plus `truth.json`; returns the folder.

    Layout: `<id>_test.png` (board), `<id>_temp.png` (reference), `truth.json`
    ({id: [[x1, y1, x2, y2, class_id], ...]}). The replay camera reads the `_test` images and
    looks up each board's reference beside it. `designs`: the boards cycle through that many products
    (each its own reference); None: every board is its own product.
    """
    if designs is not None and designs < 1:
        raise ValueError(f"designs {designs}: need at least one board design")
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(count):
        design = None if designs is None else seed * 100_003 + 50_000 + i % designs
        b = make_board(seed * 100_003 + i, size, design=design)
        name = f"board{i:04d}"
        cv2.imwrite(str(out / f"{name}_test.png"), b.image)
        cv2.imwrite(str(out / f"{name}_temp.png"), b.reference)
        truth[name] = [list(d) for d in b.defects]
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return out
