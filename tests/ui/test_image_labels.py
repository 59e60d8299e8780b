"""Defect labels on the image: boxes that share a corner must not hide each other's labels."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from ui.image_view import ImageCanvas, Overlay

from .conftest import save_shot


def _canvas(qtbot, overlays) -> ImageCanvas:
    c = ImageCanvas()
    qtbot.addWidget(c)
    c.resize(640, 640)
    img = np.full((640, 640), 255, np.uint8)
    q = QImage(img.data, 640, 640, 640, QImage.Format.Format_Grayscale8).copy()
    c.set_image(q)
    c.set_overlays(overlays)
    c.grab()  # paints
    return c


@pytest.mark.usefixtures("ui_app")
def test_a_lone_label_sits_above_its_box(qtbot):
    c = _canvas(qtbot, [Overlay((100, 100, 140, 140), "#2ecc71", "spur 0.66")])
    (r,) = c.label_rects
    box = c.box_rect((100, 100, 140, 140))
    assert r.bottom() == pytest.approx(box.top(), abs=12) and r.left() == pytest.approx(box.left(), abs=12)


@pytest.mark.usefixtures("ui_app")
def test_boxes_sharing_a_corner_keep_every_label_readable(qtbot):
    """Two pieces of a spur and their union (model sidecar `join_fragments`): three labels, none hidden."""
    overlays = [
        Overlay((100, 100, 140, 140), "#2ecc71", "spur 0.66"),
        Overlay((135, 102, 175, 138), "#2ecc71", "spur 0.64"),
        Overlay((100, 100, 175, 140), "#2ecc71", "spur 0.64"),
    ]
    c = _canvas(qtbot, overlays)
    save_shot(c, "labels_shared_corner")
    rects = c.label_rects
    assert len(rects) == 3
    for i in range(3):
        assert 0 <= rects[i].left() and rects[i].right() <= c.width() + 0.5
        assert 0 <= rects[i].top() and rects[i].bottom() <= c.height() + 0.5
        for j in range(i):
            assert not rects[i].intersects(rects[j]), (i, j, rects[i], rects[j])


@pytest.mark.usefixtures("ui_app")
def test_labels_at_the_top_edge_go_below(qtbot):
    c = _canvas(
        qtbot, [Overlay((10, 0, 60, 30), "#e74c3c", "open 0.9"), Overlay((10, 0, 90, 40), "#e74c3c", "open 0.5")]
    )
    a, b = c.label_rects
    assert a.top() >= c.box_rect((10, 0, 60, 30)).bottom() - 12 and not a.intersects(b)
