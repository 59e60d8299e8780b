"""`pcb-inspector ui --demo --screenshot`: the whole demo station (replay camera, detector, PLC
simulator, throwaway database) runs, the review screen opens the newest reject, a PNG is written."""

from __future__ import annotations

import shutil

from inspector.cli import main

from .conftest import SHOTS


def test_demo_screenshot_of_review_screen(qapp, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the demo makes its throwaway folder
    out = tmp_path / "review.png"
    rc = main(
        ["ui", "--demo", "--screenshot", str(out), "--after-boards", "4", "--screen", "review", "--timeout", "90"]
    )
    assert rc == 0 and out.is_file() and out.stat().st_size > 10_000
    # The demo's throwaway database and archive are gone once the window closed.
    assert not list(tmp_path.glob("pcb-inspector-ui-demo-*"))
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert (img.width(), img.height()) == (1280, 800)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, SHOTS / "cli_demo_review_1280x800.png")
