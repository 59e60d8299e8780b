"""BoardRegistrar inside the real pipeline: replay camera, classical difference detector."""

from __future__ import annotations

import cv2
import numpy as np

from calibration.registration import BoardRegistrar
from inspector.capture.replay import ReplayCameraSource
from inspector.config import Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.classical import DifferenceDetector
from inspector.domain import TriggerRequest, Verdict
from inspector.health import Health
from inspector.pipeline import Pipeline
from inspector.synth import make_board


def test_moved_good_board_passes_and_unregistrable_board_is_rejected_with_reason(tmp_path):
    good = make_board(21, defect_rate=0.0)
    h, w = good.reference.shape
    T = cv2.getRotationMatrix2D((w / 2, h / 2), 1.5, 1.0)
    T[:, 2] += (9.0, -6.0)
    moved = cv2.warpAffine(good.image, T, (w, h), borderMode=cv2.BORDER_REPLICATE)
    cv2.imwrite(str(tmp_path / "a_moved_test.png"), moved)
    cv2.imwrite(str(tmp_path / "a_moved_temp.png"), good.reference)
    cv2.imwrite(str(tmp_path / "b_wrong_test.png"), make_board(77, defect_rate=0.0).image)
    cv2.imwrite(str(tmp_path / "b_wrong_temp.png"), good.reference)

    # the control: the same detector on the unregistered board sees the shift as defects
    control = DifferenceDetector()
    control.load()
    assert RecipeRules(Recipe()).decide(control.detect(moved, good.reference), {}).verdict is Verdict.REJECT

    cam = ReplayCameraSource(ReplayCamera(path=tmp_path, fps=None, loop=False, trigger="software"))
    # no registrar given: the pipeline registers with its own (registration is on whenever a reference is used)
    p = Pipeline(cam, DifferenceDetector(), RecipeRules(Recipe()), Health(), triggered=True)
    assert isinstance(p.registrar, BoardRegistrar)
    p.start()
    try:
        tickets = [p.trigger(TriggerRequest(part_seq=i)) for i in range(2)]
        assert all(t.done.wait(20) for t in tickets)
    finally:
        p.stop()
    registered = [t.result for t in tickets]
    assert registered[0].verdict is Verdict.PASS and registered[0].timings_ms["register"] > 0
    assert registered[1].verdict is Verdict.REJECT
    assert "board not registered to the reference" in registered[1].reason
    assert np.isfinite(registered[0].timings_ms["register"])
