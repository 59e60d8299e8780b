"""`pcb-inspector calibrate ...` end to end against a real SQLite records database."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from calibration.store import CalibrationStore
from calibration.synthetic import fronto_parallel_view, write_views
from inspector.cli import main
from inspector.config import StationConfig


@pytest.fixture()
def station(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PCB_INSPECTOR_OPERATOR", "eng.lee")
    return tmp_path, ["--db", f"sqlite:///{tmp_path}/records.db"]


@pytest.fixture(scope="module")
def views_dir(tmp_path_factory, views):
    return write_views(tmp_path_factory.mktemp("views"), views[:9])[0].parent


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_intrinsics_json_and_history(station, views_dir, capsys, cam):
    tmp, db = station
    rc, out, err = run(capsys, "calibrate", "intrinsics", "--images", str(views_dir), "--pattern",
                       "checkerboard:9x6:5mm", "--json", *db)  # fmt: skip
    assert rc == 0, err
    obj = json.loads(out)
    K = np.array(obj["camera_matrix"])
    assert K.shape == (3, 3) and abs(K[0, 0] / cam.fx - 1) < 0.01
    assert len(obj["dist_coeffs"]) == 5 and obj["rms_px"] < 0.5 and obj["views_used"] == 9
    rc, out, _ = run(capsys, "calibrate", "history", "--json", *db)
    rows = json.loads(out)
    assert [(r["kind"], r["created_by"], r["active"]) for r in rows] == [("intrinsics", "eng.lee", True)]
    assert rows[0]["id"] == obj["calibration_id"]
    # The calibration is in the signed audit chain, from the CLI, by the operator named.
    rc, out, err = run(capsys, "audit", "list", "--json", "--action", "calibration", *db)
    assert rc == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["action"], e["who"], e["source"]) for e in events] == [("calibration.save", "eng.lee", "cli")]
    rc, out, err = run(capsys, "audit", "verify", *db)
    assert rc == 0 and "chain intact" in out, out + err


def test_intrinsics_errors_are_one_clear_line(station, views_dir, tmp_path, capsys):
    _, db = station
    rc, _, err = run(
        capsys, "calibrate", "intrinsics", "--images", str(views_dir), "--pattern", "checkerboard:9x6", *db
    )
    assert rc == 2 and "--pattern" in err and "expected the form" in err
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(views_dir.iterdir())[:3]:
        (few / p.name).write_bytes(p.read_bytes())
    rc, _, err = run(capsys, "calibrate", "intrinsics", "--images", str(few), "--pattern", "checkerboard:9x6:5mm", *db)
    assert rc == 2 and "too few usable views: 3 of 3 (need at least 8)" in err
    cv2.imwrite(str(few / "odd.png"), np.zeros((100, 100), np.uint8))
    rc, _, err = run(capsys, "calibrate", "intrinsics", "--images", str(few), "--pattern", "checkerboard:9x6:5mm", *db)
    assert rc == 2 and "mixed resolutions" in err and "100x100: odd.png" in err
    rc, _, err = run(capsys, "calibrate", "intrinsics", "--images", str(tmp_path / "nope"), "--pattern",
                     "checkerboard:9x6:5mm", *db)  # fmt: skip
    assert rc == 2 and "not a folder" in err


@pytest.mark.parametrize("command", ["intrinsics", "scale", "reference"])
def test_an_empty_or_cut_image_is_one_line_naming_it_in_every_subcommand(station, tmp_path, capsys, command):
    """A zero-byte image (a copy interrupted, a full card) ended every subcommand in an 18-line cv2.error traceback."""
    _, db = station
    folder = tmp_path / "imgs"
    folder.mkdir()
    empty = folder / "zz.png"
    empty.write_bytes(b"")
    args = {
        "intrinsics": ["--images", str(folder), "--pattern", "checkerboard:9x6:5mm"],
        "scale": ["--image", str(empty), "--pattern", "checkerboard:9x6:5mm", "--no-save"],
        "reference": ["--recipe", "demo", "--image", str(empty)],
    }[command]
    rc, _, err = run(capsys, "calibrate", command, *args, *db)
    assert rc == 2, err
    (line,) = err.strip().splitlines()
    assert "zz.png" in line and "empty" in line, line


@pytest.mark.parametrize("size", ["nanx80", "infx80", "100xinf"])
def test_scale_refuses_an_object_size_that_is_no_number(station, tmp_path, capsys, size):
    """float() reads "nan" and "inf": nan mm/px was printed, inf mm/px would have been stored (and switched off
    min_defect_mm on the line)."""
    _, db = station
    img = tmp_path / "obj.png"
    cv2.imwrite(str(img), np.full((120, 160), 128, np.uint8))
    rc, out, err = run(capsys, "calibrate", "scale", "--image", str(img), "--object", size, "--no-save", *db)
    assert rc == 2 and "--object" in err and "positive numbers" in err, out + err


def test_scale_reference_and_check(station, views_dir, capsys, checker, cam, board):
    tmp, db = station
    assert run(capsys, "calibrate", "intrinsics", "--images", str(views_dir), "--pattern",
               "checkerboard:9x6:5mm", *db)[0] == 0  # fmt: skip
    cv2.imwrite(str(tmp / "flat.png"), fronto_parallel_view(checker, cam, 120.0).image)
    # The synthetic camera sees 5 px/mm, a tenth of what the demo's model learnt (48): the station would refuse that
    # scale, so it is not stored. A station with the classical detector (no learnt resolution) takes it.
    rc, out, err = run(capsys, "calibrate", "scale", "--image", str(tmp / "flat.png"), "--pattern",
                       "checkerboard:9x6:5mm", *db)  # fmt: skip
    assert rc == 2 and "scale not stored" in err and "the 48 px/mm the model learnt" in err, out + err
    classical = tmp / "classical.toml"
    classical.write_text('[detector]\ntype = "classical"\n')
    db = [*db, "--config", str(classical)]
    rc, out, err = run(capsys, "calibrate", "scale", "--image", str(tmp / "flat.png"), "--pattern",
                       "checkerboard:9x6:5mm", "--json", *db)  # fmt: skip
    assert rc == 0, err
    scale = json.loads(out)
    assert scale["undistorted"] is True
    assert scale["mm_per_px"] == pytest.approx(120.0 / np.sqrt(cam.fx * cam.fy), rel=0.01)
    # In words, it also says what the model is told (it resamples frames to the resolution it learnt).
    rc, out, err = run(capsys, "calibrate", "scale", "--image", str(tmp / "flat.png"), "--pattern",
                       "checkerboard:9x6:5mm", "--no-save", *db)  # fmt: skip
    assert rc == 0, err
    assert f"[detector] camera_px_per_mm = {1 / scale['mm_per_px']:.2f}" in out

    cv2.imwrite(str(tmp / "golden.png"), board.reference)
    cv2.imwrite(str(tmp / "board.png"), board.image)
    cv2.imwrite(str(tmp / "blurred.png"), cv2.GaussianBlur(board.image, (0, 0), 2.5))
    cv2.imwrite(str(tmp / "dark.png"), (board.image * 0.6).astype(np.uint8))
    rc, out, err = run(capsys, "calibrate", "reference", "--recipe", "demo", "--image", str(tmp / "golden.png"),
                       "--no-undistort", *db)  # fmt: skip
    assert rc == 0, err
    assert "reference = " in out and "registration self-test error" in out
    rc, out, _ = run(capsys, "calibrate", "check", "--image", str(tmp / "board.png"), "--no-undistort", "--json", *db)
    rep = json.loads(out)
    assert rc == 0 and rep["ok"] and rep["images"][0]["registration"]["quality"] > 0.9
    rc, out, _ = run(capsys, "calibrate", "check", "--image", str(tmp / "blurred.png"), str(tmp / "dark.png"),
                     "--no-undistort", *db)  # fmt: skip
    assert rc == 1
    assert "blurred.png: DRIFT" in out and "focus" in out and "dark.png: DRIFT" in out and "darker" in out

    cfg = StationConfig.model_validate({"storage": {"database_url": db[1]}})
    with CalibrationStore.open(cfg) as store:
        assert store.mm_per_px() == pytest.approx(scale["mm_per_px"])
        assert store.undistorter().image_size == cam.size
        baseline, limits = store.baseline("demo")
        assert baseline.focus > 0 and not limits.drop_ready
        ref = store.reference("demo")
        assert ref.created_by == "eng.lee" and ref.results["reference"].endswith(".png")
    rc, _, err = run(capsys, "calibrate", "reference", "--recipe", "nosuch", "--image", str(tmp / "golden.png"), *db)
    assert rc == 2 and "no such recipe" in err


def test_check_without_reference_says_what_to_run(station, capsys, board):
    tmp, db = station
    cv2.imwrite(str(tmp / "board.png"), board.image)
    rc, _, err = run(capsys, "calibrate", "check", "--image", str(tmp / "board.png"), *db)
    assert rc == 2 and "calibrate reference --recipe demo" in err


def test_an_optics_baseline_from_several_good_boards_is_not_skewed_by_the_golden_one(station, capsys, board):
    """The golden capture came out sharper than the line's boards (it sat nearer the focal plane): against it alone,
    a board in the line's usual focus reads as a focus loss. With four more good boards the baseline is their median,
    so the usual focus passes and a lens that really lost focus still alarms. A good board of another size, or a file
    that is not there, is one clear error."""
    tmp, db = station
    usual = 1.7  # px: the line's boards
    cv2.imwrite(str(tmp / "golden.png"), board.reference)
    for k in range(4):
        cv2.imwrite(str(tmp / f"good{k}.png"), cv2.GaussianBlur(board.reference, (0, 0), usual + 0.05 * k))
    cv2.imwrite(str(tmp / "board.png"), cv2.GaussianBlur(board.image, (0, 0), usual))
    cv2.imwrite(str(tmp / "defocused.png"), cv2.GaussianBlur(board.image, (0, 0), float(np.hypot(usual, 2.5))))
    ref = ["calibrate", "reference", "--recipe", "demo", "--image", str(tmp / "golden.png"), "--no-undistort", *db]
    check = ["calibrate", "check", "--no-undistort", "--json", *db, "--image"]

    rc, out, err = run(capsys, *ref)
    assert rc == 0 and "the golden board alone (add --good-board" in out, err
    rc, out, _ = run(capsys, *check, str(tmp / "board.png"))
    assert rc == 1 and "focus" in " ".join(json.loads(out)["images"][0]["drift"])  # the usual focus alarms

    goods = [a for k in range(4) for a in ("--good-board", str(tmp / f"good{k}.png"))]
    rc, out, err = run(capsys, *ref, *goods)
    assert rc == 0 and "optics baseline: median of 5 boards" in out, err
    rc, out, _ = run(capsys, *check, str(tmp / "board.png"))
    assert rc == 0 and json.loads(out)["ok"]
    rc, out, _ = run(capsys, *check, str(tmp / "defocused.png"))
    assert rc == 1 and "focus" in " ".join(json.loads(out)["images"][0]["drift"])

    cv2.imwrite(str(tmp / "small.png"), cv2.resize(board.reference, (320, 320)))
    rc, _, err = run(capsys, *ref, "--good-board", str(tmp / "small.png"))
    assert rc == 2 and "small.png: 320x320, the golden image 640x640" in err
    rc, _, err = run(capsys, *ref, "--good-board", str(tmp / "nosuch.png"))
    assert rc == 2 and "nosuch.png: file not found" in err


def test_an_earlier_calibration_can_be_made_active_again_audited(station, capsys, tmp_path):
    """Roll back: the scale stored by mistake replaced a good one; `calibrate activate` brings the good one back (audited
    with who did it), refuses an id of no calibration of this station and a scale the station would refuse."""
    _, db = station
    classical = tmp_path / "classical.toml"
    classical.write_text('[detector]\ntype = "classical"\n')
    cfg = StationConfig.model_validate({"detector": {"type": "classical"}, "storage": {"database_url": db[1]}})
    with CalibrationStore.open(cfg) as store:
        good = store.save("scale", {"mm_per_px": 0.05, "method": "pattern"}, "eng.lee").id
        store.save("scale", {"mm_per_px": 0.5, "method": "pattern"}, "eng.b")
    rc, out, err = run(
        capsys, "calibrate", "activate", str(good), "--operator", "qe.ann", "--config", str(classical), *db
    )
    assert rc == 0, err
    assert f"calibration {good} (scale) active from the station's next start (was {good + 1})" in out
    with CalibrationStore.open(cfg) as store:
        assert store.mm_per_px() == 0.05
    rc, out, err = run(capsys, "audit", "list", "--json", "--action", "calibration.activate", *db)
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["who"] == "qe.ann" and event["source"] == "cli" and event["after"] == {"id": good}
    rc, _, err = run(capsys, "calibrate", "activate", "999", "--config", str(classical), *db)
    assert rc == 2 and "calibration 999 is not one of this station's" in err
    # The demo station's model learnt 48 px/mm: 2 px/mm (0.5 mm/px) is not a scale it can use.
    rc, _, err = run(capsys, "calibrate", "activate", str(good + 1), *db)
    assert rc == 2 and f"calibration {good + 1} not activated" in err and "48 px/mm" in err
    with CalibrationStore.open(cfg) as store:
        assert store.mm_per_px() == 0.05


def test_a_new_lens_calibration_names_what_was_measured_through_the_old_one(station, views_dir, capsys, tmp_path):
    """Golden board first, lens second (the usual bring-up order): the station then undistorts every frame and
    compares it with a golden image and a scale taken without: known-good boards were REJECTed, nothing said why."""
    _, db = station
    cfg = StationConfig.model_validate({"storage": {"database_url": db[1]}})
    with CalibrationStore.open(cfg) as store:
        store.save("scale", {"mm_per_px": 0.05, "method": "pattern"}, "eng.lee")
        store.save("reference:demo", {"sha256": "0" * 64, "undistorted": False}, "eng.lee")
    rc, out, err = run(capsys, "calibrate", "intrinsics", "--images", str(views_dir), "--pattern",
                       "checkerboard:9x6:5mm", *db)  # fmt: skip
    assert rc == 0, err
    (warning,) = [line for line in out.splitlines() if "previous lens calibration" in line]
    assert "reference:demo, scale" in warning and "calibrate reference / calibrate scale" in warning


def test_an_optics_limit_out_of_range_is_one_line_naming_the_option(station, capsys, board, tmp_path):
    _, db = station
    cv2.imwrite(str(tmp_path / "golden.png"), board.reference)
    rc, _, err = run(capsys, "calibrate", "reference", "--recipe", "demo", "--image", str(tmp_path / "golden.png"),
                     "--focus-drop", "5", "--no-save", "--no-undistort", *db)  # fmt: skip
    assert rc == 2 and err.strip() == "error: --focus-drop 5.0: Input should be less than 1", err


def test_a_mistyped_recipe_or_kind_is_named_as_such(station, capsys, board, tmp_path):
    _, db = station
    cv2.imwrite(str(tmp_path / "board.png"), board.image)
    rc, _, err = run(capsys, "calibrate", "check", "--recipe", "nosuch", "--image", str(tmp_path / "board.png"), *db)
    assert rc == 2 and "recipe 'nosuch' is not one of the station's recipes (demo)" in err, err
    rc, _, err = run(capsys, "calibrate", "history", "--kind", "bogus", *db)
    assert rc == 2 and "--kind 'bogus': one of intrinsics, scale, threshold or reference:<recipe>" in err, err
