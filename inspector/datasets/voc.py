"""Pascal VOC XML annotations (the PKU-Market-PCB layout), mapped onto the station's six classes.

PKU-Market-PCB names the same six defect kinds differently and ships 3034x1586 colour boards
without pixel-aligned templates, so a customer using it must register a golden board per product
(see calibration) before training the reference-aware model on it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..domain import CLASS_NAMES
from .deeppcb import DatasetError

#: VOC class names seen in PKU-Market-PCB (and common variants) -> station class name.
VOC_NAMES: dict[str, str] = {
    "open_circuit": "open",
    "open": "open",
    "short": "short",
    "mouse_bite": "mousebite",
    "mousebite": "mousebite",
    "spur": "spur",
    "spurious_copper": "copper",
    "copper": "copper",
    "missing_hole": "pin-hole",
    "pin-hole": "pin-hole",
    "pin_hole": "pin-hole",
}


@dataclass
class VocImage:
    image_path: Path
    width: int
    height: int
    boxes: np.ndarray = field(repr=False)  # (N, 4) x1 y1 x2 y2
    classes: np.ndarray = field(repr=False)  # (N,) 0-based station class index


def read_voc(xml_path: Path, images_dir: Path | None = None) -> VocImage:
    """Parse one VOC file; unknown class names and malformed boxes raise DatasetError naming them."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"{xml_path}: not a readable VOC XML file ({exc})") from None
    fname = root.findtext("filename")
    if not fname:
        raise DatasetError(f"{xml_path}: <filename> is missing")
    images_dir = images_dir or xml_path.parent
    try:
        w = int(root.findtext("size/width") or 0)
        h = int(root.findtext("size/height") or 0)
    except ValueError:
        raise DatasetError(f"{xml_path}: <size> is not numeric") from None
    boxes, classes = [], []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip().lower()
        if name not in VOC_NAMES:
            raise DatasetError(
                f"{xml_path}: object {i} has unknown class {name!r}; known: {', '.join(sorted(VOC_NAMES))}"
            )
        try:
            b = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise DatasetError(f"{xml_path}: object {i} has a malformed <bndbox>") from None
        if b[2] <= b[0] or b[3] <= b[1]:
            raise DatasetError(f"{xml_path}: object {i} box {b} is empty")
        boxes.append(b)
        classes.append(CLASS_NAMES.index(VOC_NAMES[name]))
    return VocImage(
        images_dir / fname,
        w,
        h,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(classes, np.int64),
    )


def load_voc_folder(annotations: Path, images: Path | None = None) -> list[VocImage]:
    files = sorted(Path(annotations).rglob("*.xml"))
    if not files:
        raise DatasetError(f"{annotations}: no .xml annotation files")
    return [read_voc(f, images or f.parent) for f in files]
