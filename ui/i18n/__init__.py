"""Runtime language switch (Qt Linguist): English source strings, compiled `.qm` per language.

Why `.qm` files are committed: the line PC has no Qt tool chain; `scripts`-free rebuild with
`pyside6-lupdate` + `pyside6-lrelease` is described in docs/ui.md. Every screen re-reads its texts
on `QEvent.LanguageChange`, which `QCoreApplication.installTranslator` sends to all widgets.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLocale, QTranslator

HERE = Path(__file__).resolve().parent
LANGUAGES = {"en": "English", "zh_CN": "简体中文"}

_current: dict[str, object] = {"lang": "en", "translator": None}


def qm_path(lang: str) -> Path:
    return HERE / f"pcb_inspector_{lang}.qm"


def set_language(lang: str) -> None:
    """Install the translator for `lang` ("en" removes it); raises ValueError for an unknown one."""
    if lang not in LANGUAGES:
        raise ValueError(f"ui.language {lang!r} is not one of {', '.join(LANGUAGES)}")
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("set_language needs a running QApplication")
    old = _current["translator"]
    if old is not None:
        app.removeTranslator(old)
        _current["translator"] = None
    if lang != "en":
        tr = QTranslator(app)
        if not tr.load(str(qm_path(lang))):
            raise FileNotFoundError(f"translation {qm_path(lang)} is missing or unreadable (run pyside6-lrelease)")
        app.installTranslator(tr)
        _current["translator"] = tr
        QLocale.setDefault(QLocale(lang))
    else:
        QLocale.setDefault(QLocale(QLocale.Language.English))
    _current["lang"] = lang


def current_language() -> str:
    return str(_current["lang"])
