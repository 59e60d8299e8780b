"""Touch targets a gloved operator must hit: at least `theme.MIN_TOUCH_PX` on the screens' own style sheet.

Why: the tables (history, audit, review's defect list) have no touch scrolling, so their vertical scroll bar is
the only way to rows past the first screenful; at 28 px wide it was under the theme's own minimum.
"""

from __future__ import annotations

from PySide6.QtWidgets import QStyle, QStyleOptionSlider, QTableWidget

from ui import theme


def test_table_scroll_bars_are_big_enough_for_a_glove(qtbot):
    table = QTableWidget(60, 3)
    table.setStyleSheet(theme.stylesheet(1.0))
    table.resize(900, 500)
    qtbot.addWidget(table)
    table.show()
    qtbot.waitExposed(table)
    bar = table.verticalScrollBar()
    opt = QStyleOptionSlider()
    bar.initStyleOption(opt)
    assert bar.width() >= theme.MIN_TOUCH_PX
    for sub in (QStyle.SubControl.SC_ScrollBarAddLine, QStyle.SubControl.SC_ScrollBarSubLine):
        r = bar.style().subControlRect(QStyle.ComplexControl.CC_ScrollBar, opt, sub, bar)
        assert min(r.width(), r.height()) >= theme.MIN_TOUCH_PX, (sub, r)


def test_spin_box_arrows_are_big_enough_for_a_glove(qtbot):
    """The recipe's minimum defect size and defects allowed: their arrows were 34 x 28 px, under the theme's minimum."""
    from PySide6.QtWidgets import QSpinBox, QStyleOptionSpinBox

    box = QSpinBox()
    box.setRange(0, 500)
    box.setSuffix(" px")
    box.setStyleSheet(theme.stylesheet(1.0))
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    opt = QStyleOptionSpinBox()
    box.initStyleOption(opt)
    for sub in (QStyle.SubControl.SC_SpinBoxUp, QStyle.SubControl.SC_SpinBoxDown):
        r = box.style().subControlRect(QStyle.ComplexControl.CC_SpinBox, opt, sub, box)
        assert min(r.width(), r.height()) >= theme.MIN_TOUCH_PX, (sub, r)
