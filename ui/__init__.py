"""PySide6 touchscreen UI for operators and quality engineers (imports Qt; `inspector` never imports this)."""
