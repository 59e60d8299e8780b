"""An image with boxes drawn over it, scaled to fit, that maps taps back to frame pixels.

Why boxes are drawn at paint time and not burnt into the picture: the same owned QImage serves the
live view, the zoom, the review (where a box changes colour when it is marked) and the recipe ROI,
and labels stay readable at any window size.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from . import theme


@dataclass(frozen=True, slots=True)
class Overlay:
    box: tuple[float, float, float, float]
    """Frame pixels (x1, y1, x2, y2)."""
    colour: str
    label: str = ""
    dashed: bool = False
    highlight: bool = False


class ImageCanvas(QWidget):
    """Draws `image` fitted into the widget, letterboxed, with overlays in frame coordinates."""

    tapped = Signal(float, float)
    """Frame-pixel coordinates of a tap inside the image."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.image_scale = 1.0  # displayed-image px per frame px
        self.display: QImage | None = None
        self.blits = 0
        """Paints that copied a pre-scaled picture 1:1 (the live view's normal case)."""
        self.scaled_paints = 0
        """Paints that had to resample `image` on the GUI thread."""
        self.overlays: list[Overlay] = []
        self.label_rects: list[QRectF] = []
        """Where the last paint put each overlay's label, in widget pixels (in overlay order)."""
        self.polygon: list[tuple[float, float]] = []
        self.placeholder = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_image(self, image: QImage | None, scale: float = 1.0, display: QImage | None = None) -> None:
        """`display`: the same picture pre-scaled to this view's size (made off the GUI thread)."""
        self.image = image
        self.image_scale = scale
        self.display = display
        self.update()

    def set_overlays(self, overlays: list[Overlay]) -> None:
        self.overlays = overlays
        self.update()

    # ------------------------------------------------------------ geometry
    def _target(self) -> QRectF:
        if self.image is None or self.image.isNull():
            return QRectF(self.rect())
        iw, ih = self.image.width(), self.image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def frame_to_widget_scale(self) -> float:
        if self.image is None or self.image.isNull():
            return 1.0
        return self._target().width() / self.image.width() * self.image_scale

    def to_widget(self, x: float, y: float) -> QPointF:
        t = self._target()
        s = self.frame_to_widget_scale()
        return QPointF(t.x() + x * s, t.y() + y * s)

    def to_frame(self, p: QPointF) -> tuple[float, float]:
        t = self._target()
        s = self.frame_to_widget_scale()
        return (p.x() - t.x()) / s, (p.y() - t.y()) / s

    def box_rect(self, box: tuple[float, float, float, float]) -> QRectF:
        a = self.to_widget(box[0], box[1])
        b = self.to_widget(box[2], box[3])
        return QRectF(a, b)

    # ------------------------------------------------------------ input
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.image is not None and self._target().contains(event.position()):
            x, y = self.to_frame(event.position())
            self.tapped.emit(x, y)
        super().mousePressEvent(event)

    def overlay_at(self, x: float, y: float, slop_px: float = 24.0) -> int | None:
        """Index of the overlay under a tap; `slop_px` (screen px) forgives a gloved finger."""
        slop = slop_px / max(self.frame_to_widget_scale(), 1e-6)
        best, best_area = None, None
        for i, o in enumerate(self.overlays):
            x1, y1, x2, y2 = o.box
            if x1 - slop <= x <= x2 + slop and y1 - slop <= y <= y2 + slop:
                area = (x2 - x1) * (y2 - y1)
                if best_area is None or area < best_area:
                    best, best_area = i, area
        return best

    # ------------------------------------------------------------ drawing
    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.BG))
        if self.image is None or self.image.isNull():
            if self.placeholder:
                p.setPen(QColor(theme.TEXT_DIM))
                f = QFont(self.font())
                f.setPixelSize(max(18, self.height() // 16))
                p.setFont(f)
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            p.end()
            return
        t = self._target()
        d = self.display
        if d is not None and abs(d.width() - t.width()) < 1.5 and abs(d.height() - t.height()) < 1.5:
            p.drawImage(QPointF(round(t.x()), round(t.y())), d)  # 1:1 blit, no resampling here
            self.blits += 1
        else:  # no pre-scaled picture for this size (just resized, or not a live view)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(t, self.image)
            self.scaled_paints += 1
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.paint_polygon(p)
        self.label_rects = []
        # Every box first, then every label, so that no box is drawn across another box's label.
        rects = [self.paint_overlay(p, o) for o in self.overlays]
        for o, r in zip(self.overlays, rects):
            self.paint_label(p, o, r)
        self.paint_extra(p)
        p.end()

    def paint_polygon(self, p: QPainter) -> None:
        if not self.polygon:
            return
        pts = [self.to_widget(x, y) for x, y in self.polygon]
        pen = QPen(QColor(theme.INFO), 3)
        p.setPen(pen)
        p.setBrush(QBrush(QColor(47, 128, 237, 50)))
        if len(pts) >= 3:
            p.drawPolygon(QPolygonF(pts))
        else:
            for a, b in zip(pts, pts[1:]):
                p.drawLine(a, b)
        p.setBrush(QColor(theme.INFO))
        for q in pts:
            p.drawEllipse(q, 9, 9)

    def paint_overlay(self, p: QPainter, o: Overlay) -> QRectF:
        """Draws the box; returns its on-screen rectangle."""
        r = self.box_rect(o.box)
        # Tiny defects get a minimum on-screen size so they can be seen and tapped.
        grow = max(0.0, (18 - min(r.width(), r.height())) / 2)
        r = r.adjusted(-grow, -grow, grow, grow)
        colour = QColor(o.colour)
        pen = QPen(colour, 5 if o.highlight else 3)
        if o.dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(r)
        return r

    def paint_label(self, p: QPainter, o: Overlay, r: QRectF) -> None:
        if o.label:
            colour = QColor(o.colour)
            f = QFont(self.font())
            f.setPixelSize(max(14, min(24, int(self.height() / 32))))
            f.setBold(True)
            p.setFont(f)
            fm = p.fontMetrics()
            tw, th = fm.horizontalAdvance(o.label) + 10, fm.height() + 4
            label_rect = self._place_label(r, tw, th)
            self.label_rects.append(label_rect)
            p.fillRect(label_rect, colour)
            p.setPen(QColor("#000000"))
            p.drawText(label_rect, Qt.AlignmentFlag.AlignCenter, o.label)

    def _place_label(self, r: QRectF, tw: float, th: float) -> QRectF:
        """Above the box's left corner, or the nearest place that hides no label drawn before it.

        Why: boxes that share a corner (a defect and a box around it and a neighbour, the union of two
        pieces) would stack their labels exactly on top of each other and the operator would read only
        the last one. Tried in order, one label height further out each round: above left, below left,
        above right, below right; if every place is taken, the first.
        """
        w, h = self.width(), self.height()
        left = min(max(0.0, r.x()), w - tw)
        right = min(max(0.0, r.right() - tw), w - tw)
        spots = []
        for k in range(4):
            above, below = r.y() - th * (k + 1), r.bottom() + th * k
            for x in (left, right):
                if above >= 0:
                    spots.append(QRectF(x, above, tw, th))
                if below + th <= h:
                    spots.append(QRectF(x, below, tw, th))
        if not spots:  # a box as tall as the view: on its top edge
            return QRectF(left, max(0.0, r.y()), tw, th)
        for spot in spots:
            if not any(spot.intersects(other) for other in self.label_rects):
                return spot
        return spots[0]

    def paint_extra(self, p: QPainter) -> None:
        """Subclasses draw what they add (a box being drawn, ...)."""
