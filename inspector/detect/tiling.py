"""Tiles for frames larger than the model input, letterboxing for smaller ones, and the merge.

Why tiles and not a resize: a pin-hole is a few pixels wide; shrinking a 3000 px board to 640 px
would erase it. Tiles keep the native scale the model was trained at. The overlap is at least the
largest defect side, so every defect lies whole inside at least one tile; each tile then "owns"
the central part of its overlap, detections centred outside what a tile owns are dropped, and
what remains is merged with class-wise NMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Tile:
    x0: int
    y0: int
    """Top-left of the tile in frame pixels (the tile may extend past the frame: it is padded)."""
    own: tuple[float, float, float, float]
    """Region (x1, y1, x2, y2) in frame pixels whose detection centres this tile keeps."""


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    if step <= 0:
        raise ValueError(f"tile overlap {overlap} px must be smaller than the tile ({tile} px)")
    n = math.ceil((length - tile) / step) + 1
    # Evenly spread so the overlap is the same everywhere and never below the requested one.
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _own(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    out = []
    for i, s in enumerate(starts):
        lo = -math.inf if i == 0 else (starts[i - 1] + tile + s) / 2  # middle of the overlap
        hi = math.inf if i == len(starts) - 1 else (s + tile + starts[i + 1]) / 2
        out.append((lo, hi))
    return out


def plan_tiles(height: int, width: int, tile_h: int, tile_w: int, overlap: int) -> list[Tile]:
    """Tile origins covering a frame, overlapping by at least `overlap` px."""
    xs, ys = _starts(width, tile_w, overlap), _starts(height, tile_h, overlap)
    ox, oy = _own(xs, tile_w, width), _own(ys, tile_h, height)
    return [Tile(x, y, (ox[i][0], oy[j][0], ox[i][1], oy[j][1])) for j, y in enumerate(ys) for i, x in enumerate(xs)]


def pad_from_reference(
    image: np.ndarray, reference: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Board and reference grown to at least `height` x `width`, both padded with the reference's border
    replicated.

    Why the board takes the reference's padding: replicating each image's own last column and row turns a
    one-pixel difference at the frame's edge (a board a fraction of a pixel off, a defect touching the edge)
    into a stripe as long as the padding, which the model called a large short along the edge (a model trained
    on every pair called 101 such boxes on 161 boards in its reduced pass). With one padding for both, the
    difference stays where the boards differ.
    """
    h, w = image.shape[:2]
    pad_b, pad_r = max(height - h, 0), max(width - w, 0)
    if not (pad_b or pad_r):
        return image, reference
    ref = cv2.copyMakeBorder(reference, 0, pad_b, 0, pad_r, cv2.BORDER_REPLICATE)
    board = ref.copy()
    board[:h, :w] = image
    return board, ref


def cut(image: np.ndarray, tile: Tile, tile_h: int, tile_w: int) -> np.ndarray:
    """The tile's pixels; parts beyond the frame are letterboxed by replicating the border.

    Replicating (not a constant) continues the board's pattern instead of drawing an edge the model
    could call a defect. A model that compares the board with its reference gets frames already padded by
    `pad_from_reference`, so both are padded alike and never differ there.
    """
    h, w = image.shape[:2]
    x1, y1 = min(tile.x0 + tile_w, w), min(tile.y0 + tile_h, h)
    crop = image[tile.y0 : y1, tile.x0 : x1]
    pad_b, pad_r = tile_h - crop.shape[0], tile_w - crop.shape[1]
    if pad_b or pad_r:
        crop = cv2.copyMakeBorder(crop, 0, pad_b, 0, pad_r, cv2.BORDER_REPLICATE)
    return crop


def keep_owned(boxes: np.ndarray, tile: Tile) -> np.ndarray:
    """Mask of boxes (frame coordinates) whose centre lies in what `tile` owns."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    x1, y1, x2, y2 = tile.own
    return (cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of `a` (N, 4) and `b` (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms_classwise(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS done separately per class, best first.

    Classes are separated by shifting each class's boxes far apart, so one IoU matrix serves all
    classes; the greedy pass walks a precomputed suppression matrix (no per-pixel work).
    """
    n = len(scores)
    if n == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-scores, kind="stable")
    span = float(np.max(boxes[:, 2:]) - min(0.0, float(np.min(boxes[:, :2])))) + 1.0
    shifted = boxes[order] + (classes[order].astype(np.float64) * span * 2)[:, None]
    over = box_iou(shifted, shifted) > iou
    suppressed = np.zeros(n, bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[np.asarray(keep, np.int64)]
