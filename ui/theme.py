"""Look of the station UI: high contrast, large type, touch targets of at least 48 px.

Why one stylesheet generated from a scale factor: the same screens run on a 1280x800 line panel
(read from two metres, operated with gloves) and on a 1920x1080 desk monitor. Every size below is
given for 1280x800 and multiplied by `scale`, so the layout keeps its proportions instead of
leaving the big screen half empty. Nothing relies on hover: gloves do not hover.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont

BASE_W, BASE_H = 1280, 800
MIN_TOUCH_PX = 48

BG = "#0e1116"
PANEL = "#1a1f27"
PANEL_2 = "#242b35"
BORDER = "#3a4452"
TEXT = "#f2f4f7"
TEXT_DIM = "#aeb7c4"
PASS = "#1faa59"
REJECT = "#e02424"
WARN = "#f5a300"
INFO = "#2f80ed"
OFF = "#5b6573"

CLASS_COLOURS = {
    1: "#ff3b30",  # open
    2: "#ff9500",  # short
    3: "#ffd60a",  # mousebite
    4: "#34c759",  # spur
    5: "#0a84ff",  # copper
    6: "#bf5af2",  # pin-hole
}
MISSED_COLOUR = "#00e5ff"
FALSE_CALL_COLOUR = "#8e8e93"

FONT_FAMILIES = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Sans"]


def scale_for(width: int, height: int) -> float:
    """Size factor for a window: 1.0 at 1280x800, 1.35 at 1920x1080."""
    return max(0.75, min(width / BASE_W, height / BASE_H))


def class_colour(class_id: int) -> QColor:
    return QColor(CLASS_COLOURS.get(class_id, "#ffffff"))


def app_font(scale: float = 1.0) -> QFont:
    f = QFont()
    f.setFamilies(FONT_FAMILIES)
    f.setPixelSize(px(18, scale))
    return f


def px(size: float, scale: float) -> int:
    return max(1, round(size * scale))


def stylesheet(scale: float = 1.0) -> str:
    s = scale
    touch = max(MIN_TOUCH_PX, px(56, s))
    # A spin box's arrows, one above the other: each a glove's target (they were 34 x 28 px).
    arrow = max(MIN_TOUCH_PX, px(48, s))
    return f"""
QWidget {{ background: {BG}; color: {TEXT}; font-size: {px(18, s)}px; }}
QFrame#panel, QWidget#panel {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: {px(8, s)}px; }}
QLabel {{ background: transparent; }}
QLabel#title {{ font-size: {px(22, s)}px; font-weight: bold; }}
QLabel#dim {{ color: {TEXT_DIM}; }}
QLabel#section {{ color: {TEXT_DIM}; font-size: {px(15, s)}px; font-weight: bold; letter-spacing: 1px; }}
QLabel#counterValue {{ font-size: {px(40, s)}px; font-weight: bold; }}
QLabel#counterName {{ color: {TEXT_DIM}; font-size: {px(15, s)}px; font-weight: bold; }}
QLabel#lampName {{ font-size: {px(19, s)}px; font-weight: bold; }}
QLabel#lampReason {{ color: {TEXT_DIM}; font-size: {px(16, s)}px; }}
QPushButton, QToolButton {{
    background: {PANEL_2}; color: {TEXT}; border: 2px solid {BORDER}; border-radius: {px(8, s)}px;
    min-height: {touch}px; min-width: {touch}px; padding: 0 {px(18, s)}px; font-size: {px(19, s)}px;
    font-weight: bold;
}}
QPushButton:pressed, QToolButton:pressed {{ background: {BORDER}; }}
QPushButton:checked, QToolButton:checked {{ background: {INFO}; border-color: {INFO}; }}
QPushButton:disabled, QToolButton:disabled {{ color: {OFF}; border-color: {PANEL_2}; }}
QPushButton#start {{ background: {PASS}; border-color: {PASS}; }}
QPushButton#stop {{ background: {REJECT}; border-color: {REJECT}; }}
QPushButton#ack {{ background: {TEXT}; color: {REJECT}; border-color: {TEXT}; }}
QPushButton#nav {{ border-radius: 0; border-width: 0 0 {px(5, s)}px 0; border-color: {PANEL};
    background: {PANEL}; padding: 0 {px(7, s)}px; }}
QPushButton#nav:checked {{ border-color: {INFO}; background: {PANEL_2}; }}
QPushButton#nav[locked="true"] {{ color: {OFF}; }}
QComboBox, QLineEdit, QSpinBox, QDoubleSpinBox, QDateTimeEdit {{
    background: {PANEL_2}; color: {TEXT}; border: 2px solid {BORDER}; border-radius: {px(6, s)}px;
    min-height: {touch}px; padding: 0 {px(10, s)}px; font-size: {px(19, s)}px;
}}
QSpinBox::up-button, QDoubleSpinBox::up-button, QSpinBox::down-button, QDoubleSpinBox::down-button
    {{ width: {touch}px; min-height: {arrow}px; }}
QSpinBox, QDoubleSpinBox {{ min-height: {2 * arrow}px; }}
QComboBox::drop-down {{ width: {px(40, s)}px; }}
QComboBox QAbstractItemView {{ background: {PANEL_2}; color: {TEXT}; selection-background-color: {INFO};
    font-size: {px(20, s)}px; }}
QComboBox QAbstractItemView::item {{ min-height: {touch}px; }}
QCheckBox {{ spacing: {px(12, s)}px; min-height: {touch}px; font-size: {px(19, s)}px; }}
QCheckBox::indicator {{ width: {px(32, s)}px; height: {px(32, s)}px; border: 2px solid {TEXT_DIM};
    border-radius: 4px; background: {PANEL_2}; }}
QCheckBox::indicator:checked {{ background: {INFO}; border-color: {INFO}; }}
QTableView {{ background: {PANEL}; alternate-background-color: {PANEL_2}; gridline-color: {BORDER};
    selection-background-color: {INFO}; font-size: {px(17, s)}px; }}
QHeaderView::section {{ background: {PANEL_2}; color: {TEXT_DIM}; font-weight: bold; border: 0;
    padding: {px(8, s)}px; font-size: {px(16, s)}px; }}
QTableView::item {{ padding: 0 {px(8, s)}px; }}
QScrollBar:vertical {{ width: {touch}px; background: {PANEL}; }}
QScrollBar::handle:vertical {{ background: {BORDER}; min-height: {touch}px; border-radius: 6px; }}
QSlider::groove:horizontal {{ height: {px(10, s)}px; background: {PANEL_2}; border-radius: 5px; }}
QSlider::handle:horizontal {{ width: {px(40, s)}px; height: {px(40, s)}px; margin: -{px(16, s)}px 0;
    background: {INFO}; border-radius: {px(20, s)}px; }}
QSlider {{ min-height: {touch}px; background: transparent; }}
QListWidget {{ background: {PANEL}; border: 1px solid {BORDER}; font-size: {px(18, s)}px; }}
QListWidget::item {{ min-height: {touch}px; }}
QDialog {{ background: {PANEL}; }}
QToolTip {{ background: {PANEL_2}; color: {TEXT}; border: 1px solid {BORDER}; }}
"""
