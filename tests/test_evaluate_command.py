"""`pcb-inspector evaluate` end to end on a dataset in the DeepPCB layout, with the shipped model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from inspector.cli import main
from inspector.domain import CLASS_NAMES
from inspector.synth import make_board

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "pcb-defect-det.tflite"
# The shipped model was trained on every pair, so its sidecar refuses figures of its own (its recipe's stand in).
# The tests that write figures into a sidecar use 1.9.2, the same recipe trained on the split.
SPLIT = REPO / "models" / "releases" / "pcb-defect-det-1.9.2.tflite"


def _split_package(dest: Path) -> Path:
    """1.9.2 under the file name its sidecar describes."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SPLIT, dest / MODEL.name)
    shutil.copy(SPLIT.with_suffix(".json"), dest / MODEL.with_suffix(".json").name)
    return dest / MODEL.name


def _deeppcb_layout(root: Path, n: int) -> tuple[list[str], int]:
    """n synthetic boards written exactly as DeepPCB stores them (jpg pairs, x1,y1,x2,y2,type notes)."""
    (root / "group90000" / "90000").mkdir(parents=True)
    (root / "group90000" / "90000_not").mkdir()
    lines, ids, defective = [], [], 0
    for i in range(n):
        b = make_board(500 + i)
        stem = f"9000{i:04d}"
        cv2.imwrite(str(root / "group90000" / "90000" / f"{stem}_test.jpg"), b.image, [cv2.IMWRITE_JPEG_QUALITY, 100])
        cv2.imwrite(
            str(root / "group90000" / "90000" / f"{stem}_temp.jpg"), b.reference, [cv2.IMWRITE_JPEG_QUALITY, 100]
        )
        (root / "group90000" / "90000_not" / f"{stem}.txt").write_text(
            "".join(f"{x1},{y1},{x2},{y2},{c}\n" for x1, y1, x2, y2, c in b.defects)
        )
        lines.append(f"group90000/90000/{stem}.jpg group90000/90000_not/{stem}.txt")
        ids.append(stem)
        defective += bool(b.defects)
    (root / "test.txt").write_text("\n".join(lines) + "\n")
    return ids, defective


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_evaluate_writes_deeppcb_results_metrics_and_sidecar(tmp_path, capsys):
    ids, defective = _deeppcb_layout(tmp_path / "data", 4)
    assert 0 < defective
    model = _split_package(tmp_path / "pkg")
    side_path = model.with_suffix(".json")
    doc = json.loads(side_path.read_text())
    doc["thresholds"]["spur"] = 0.2  # a package whose classes differ: the verdict figures say what they were counted at
    side_path.write_text(json.dumps(doc))
    out = tmp_path / "out"
    rc = main(
        ["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
         "--out", str(out), "--model", str(model), "--write-sidecar"]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "COCO mAP@0.5" in printed and "DeepPCB protocol" in printed
    assert "board escapes at the package's thresholds (open 0.3, short 0.3, mousebite 0.3, spur 0.2," in printed
    # One DeepPCB result file per image: x1,y1,x2,y2,confidence,type with a DeepPCB type name.
    for stem in ids:
        rows = [r.split(",") for r in (out / f"{stem}.txt").read_text().splitlines()]
        assert all(len(r) == 6 and r[5] in CLASS_NAMES and 0.0 < float(r[4]) <= 1.0 for r in rows)
    m = json.loads((out / "metrics.json").read_text())["main"]
    assert m["boards"] == 4 and 0.0 <= m["map50"] <= 1.0 and m["defective_boards"] == defective
    # Which known-good boards were rejected, not only how many (the board to look at first).
    assert len(m["false_rejected_templates"]) == m["false_rejects_on_templates"]
    assert set(m["false_rejected_templates"]) <= set(ids)
    # ...and what was called on each, for review: a box or the reason it was not inspected.
    rejects = [json.loads(r) for r in (out / "known_good_rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejects] == m["false_rejected_templates"]
    assert all(r["board"] == "golden board, second capture" and (r["detections"] or r["reason"]) for r in rejects)
    # The figures went into the copy's sidecar, where the model card reads them.
    side = json.loads(model.with_suffix(".json").read_text())
    assert side["metrics"]["val_int8"]["map50"] == m["map50"] and "model" not in side["metrics"]["val_int8"]
    assert side["metrics"]["val_int8"]["thresholds"] == m["thresholds"] == side["thresholds"]
    # A signed sidecar is not rewritten (it would break the signature).
    before = model.with_suffix(".json").read_text()
    model.with_suffix(".sig").write_text("{}")
    rc = main(["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
               "--out", str(out), "--model", str(model), "--write-sidecar"])  # fmt: skip
    assert rc != 0
    assert "signed" in capsys.readouterr().err
    assert model.with_suffix(".json").read_text() == before


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_evaluate_runs_the_onnx_package_on_the_runtime_its_sidecar_names(tmp_path, capsys):
    """`--model X.onnx --compare-model Y.tflite`: each package on its own runtime, in one run."""
    pytest.importorskip("onnxruntime")
    _deeppcb_layout(tmp_path / "data", 2)
    onnx = REPO / "models" / "pcb-defect-det-onnx.onnx"
    rc = main(
        ["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
         "--out", str(tmp_path / "out"), "--model", str(onnx), "--compare-model", str(MODEL), "--threads", "1"]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "== model: pcb-defect-det-onnx@" in printed and "on CPU (ONNX Runtime x1), 2 boards" in printed
    assert "== compared model: pcb-defect-det@" in printed and "on CPU XNNPACK x1, 2 boards" in printed


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_camera_figures_of_each_profile_go_beside_the_binarised_ones(tmp_path, capsys):
    """`--camera gray` and `--camera gray --camera-profile harsh` write their own sidecar blocks, each with the
    command that re-makes it, and never touch `val_int8`."""
    _deeppcb_layout(tmp_path / "data", 2)
    model = _split_package(tmp_path / "pkg")
    before = json.loads(model.with_suffix(".json").read_text())["metrics"]["val_int8"]
    common = ["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
              "--model", str(model), "--write-sidecar", "--camera", "gray", "--camera-shift", "3"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "line")]) == 0
    assert main([*common, "--out", str(tmp_path / "harsh"), "--camera-profile", "harsh"]) == 0
    capsys.readouterr()
    metrics = json.loads(model.with_suffix(".json").read_text())["metrics"]
    assert metrics["val_int8"] == before
    line, harsh = metrics["val_int8_camera_gray"], metrics["val_int8_camera_gray_harsh"]
    assert line["boards"] == harsh["boards"] == 2
    assert "--camera-profile" not in line["command"] and line["command"].endswith("--camera-seed 0")
    # Beside the golden board's second capture, a good board that is another physical board (what a line sees).
    assert line["other_boards_checked"] == 2 and 0 <= line["false_rejects_on_other_boards"] <= 2
    rejects = [json.loads(r) for r in (tmp_path / "line" / "known_good_rejects.jsonl").read_text().splitlines()]
    others = [r["id"] for r in rejects if r["board"] == "other physical board"]
    assert others == json.loads((tmp_path / "line" / "metrics.json").read_text())["main"]["false_rejected_other_boards"]
    assert all(r["detections"] or r["reason"] for r in rejects)
    assert harsh["command"].endswith("--camera-seed 0 --camera-profile harsh")

    # Beside each result, the labels where that capture put the defects (3 px off here), for the breakdown.
    import subprocess
    import sys

    import numpy as np

    from inspector.datasets.deeppcb import load_list

    pairs = load_list(tmp_path / "data", tmp_path / "data" / "test.txt")
    for p in pairs:
        rows = [r.split(",") for r in (tmp_path / "line" / f"{p.id}.truth.txt").read_text().splitlines()]
        moved = np.array([[float(v) for v in r[:4]] for r in rows]).reshape(-1, 4)
        assert [r[4] for r in rows] == [CLASS_NAMES[c] for c in p.classes]
        assert np.abs(moved - p.boxes).max() <= 5 and (len(rows) == 0 or np.abs(moved - p.boxes).max() > 0.5)
    shutil.copy(tmp_path / "data" / "test.txt", tmp_path / "data" / "trainval.txt")
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "error_breakdown.py"), "--root", str(tmp_path / "data"),
         "--results", str(tmp_path / "line")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0 and "labels as each camera capture placed them" in r.stdout, r.stderr


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_golden_image_taught_from_several_boards_is_scored_and_never_written_as_the_cards(tmp_path, capsys):
    """`--camera-golden-boards N`: the golden reference is taught from the golden capture and N-1 other good boards
    (`inspector.teach_reference`), as `pcb-inspector reference teach` does at set-up."""
    _deeppcb_layout(tmp_path / "data", 2)
    common = ["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
              "--model", str(_split_package(tmp_path / "pkg")), "--out", str(tmp_path / "out")]  # fmt: skip
    assert main([*common, "--camera", "gray", "--camera-shift", "3", "--camera-golden-boards", "3", "--json"]) == 0
    taught = json.loads(capsys.readouterr().out)["main"]
    assert taught["boards"] == 2 and taught["templates_checked"] == 2 and taught["unregistered"] == 0
    for bad, why in (
        (["--camera", "gray", "--camera-golden-boards", "0"], "at least 1 (the golden capture)"),
        (["--camera-golden-boards", "3"], "needs --camera"),
        (["--camera", "gray", "--camera-golden-boards", "3", "--write-sidecar"], "golden image of one board"),
    ):
        assert main([*common, *bad]) == 2
        assert why in capsys.readouterr().err


def _camera_figures(tmp_path: Path, *camera: str) -> tuple[list[str], dict]:
    """Two synthetic boards in the DeepPCB layout scored by 1.9.2 on a gray camera rendering with `camera`'s options,
    figures written into the package's sidecar: the command's common arguments and the sidecar's metrics."""
    _deeppcb_layout(tmp_path / "data", 2)
    model = _split_package(tmp_path / "pkg")
    common = ["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
              "--model", str(model), "--out", str(tmp_path / "out")]  # fmt: skip
    assert main([*common, "--camera", "gray", "--camera-shift", "3", *camera, "--write-sidecar"]) == 0
    return common, json.loads(model.with_suffix(".json").read_text())["metrics"]


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_camera_that_shows_copper_dark_is_scored_on_a_station_set_up_for_it(tmp_path, capsys):
    """`--camera-copper dark` renders copper darker than the laminate (dark-field light) and sets the station up for
    it (`detector.camera_copper = "dark"`); its figures go to their own sidecar block, and the option means nothing
    without a camera."""
    common, metrics = _camera_figures(tmp_path, "--camera-copper", "dark")
    capsys.readouterr()
    dark = metrics["val_int8_camera_gray_dark"]
    assert dark["command"].endswith("--camera-seed 0 --camera-copper dark")
    assert dark["boards"] == 2 and dark["escapes"] == 0 and dark["map50"] > 0.8, dark
    assert main([*common, "--camera-copper", "dark"]) == 2
    assert "--camera-copper needs --camera" in capsys.readouterr().err


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_camera_with_its_gamma_on_is_scored_on_a_station_told_its_gamma(tmp_path, capsys):
    """`--camera-gamma 0.45` renders a camera whose output gamma is on (copper/laminate 2.5:1 arrives as about 1.5:1,
    which the preparation refuses as low contrast) and tells the station (`detector.camera_gamma`), which makes the
    frames linear again: the boards are inspected, not refused. Its figures go to their own sidecar block; the option
    means nothing without a camera, and a gamma no camera has is refused."""
    common, metrics = _camera_figures(tmp_path, "--camera-gamma", "0.45")
    capsys.readouterr()
    curved = metrics["val_int8_camera_gray_gamma045"]
    assert curved["command"].endswith("--camera-seed 0 --camera-gamma 0.45")
    # Two boards: one defect moves mAP by about 0.08; a station that refused the frames would score 0.
    assert curved["boards"] == 2 and curved["escapes"] == 0 and curved["map50"] > 0.6, curved
    assert curved["false_rejects_on_templates"] == 0, curved
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert not any("not inspectable" in (v["reason"] or "") for v in verdicts), verdicts
    assert main([*common, "--camera-gamma", "0.45"]) == 2
    assert "--camera-gamma needs --camera" in capsys.readouterr().err
    assert main([*common, "--camera", "gray", "--camera-gamma", "0.1"]) == 2
    assert "0.25..4" in capsys.readouterr().err


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_moving_board_nearer_the_lens_is_scored_in_its_own_sidecar_block(tmp_path, capsys):
    """`--camera-motion 3 --camera-scale 1.01`: every capture smeared over a 3 px travel along its rows, the boards
    1 % larger than the golden capture; the station registers them and inspects them (nothing refused, no defective
    board passes). The figures go to their own sidecar block with the command that made them; either option means
    nothing without a camera, and values no fixed camera on a line gives are refused."""
    common, metrics = _camera_figures(tmp_path, "--camera-motion", "3", "--camera-scale", "1.01")
    capsys.readouterr()
    moved = metrics["val_int8_camera_gray_scale1010_motion3"]
    assert moved["command"].endswith("--camera-seed 0 --camera-scale 1.01 --camera-motion 3")
    assert moved["boards"] == 2 and moved["escapes"] == 0 and moved["map50"] > 0.6, moved
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert not any("not inspectable" in (v["reason"] or "") for v in verdicts), verdicts
    for option, value in (("--camera-motion", "3"), ("--camera-scale", "1.01")):
        assert main([*common, option, value]) == 2
        assert "need --camera" in capsys.readouterr().err
    assert main([*common, "--camera", "gray", "--camera-scale", "1.5"]) == 2
    assert "0.8..1.25" in capsys.readouterr().err
    assert main([*common, "--camera", "gray", "--camera-motion", "40"]) == 2
    assert "0..32 px" in capsys.readouterr().err


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_second_camera_model_that_no_training_saw_is_scored_in_its_own_sidecar_block(tmp_path, capsys):
    """`--camera-renderer optics`: the captures drawn by `camera_optics` (another surface, light, lens and sensor
    model than the one the model was fine-tuned on) are registered and inspected like any camera's; the figures go to
    their own sidecar block with the command that made them; options that renderer does not model are refused by
    name, as is the option without a camera."""
    common, metrics = _camera_figures(tmp_path, "--camera-renderer", "optics")
    capsys.readouterr()
    optics = metrics["val_int8_camera_gray_optics"]
    assert optics["command"].endswith("--camera-seed 0 --camera-renderer optics")
    assert optics["boards"] == 2 and optics["escapes"] == 0 and optics["map50"] > 0.6, optics
    assert optics["false_rejects_on_templates"] == 0, optics
    verdicts = [json.loads(line) for line in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert not any("not inspectable" in (v["reason"] or "") for v in verdicts), verdicts
    assert main([*common, "--camera-renderer", "optics"]) == 2
    assert "--camera-renderer needs --camera" in capsys.readouterr().err
    for option, value in (("--camera-profile", "harsh"), ("--camera-gamma", "0.45"), ("--camera-copper", "dark")):
        assert main([*common, "--camera", "gray", "--camera-renderer", "optics", option, value]) == 2
        err = capsys.readouterr().err
        assert "draws a line camera only" in err and option in err, err


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_camera_that_shows_copper_narrower_is_scored_in_its_own_sidecar_block(tmp_path, capsys):
    """`--camera-width -0.5`: every capture, the golden one too, shows copper edges half a pixel further in than
    DeepPCB's binarisation (the trace's top under coaxial light); inspected like any camera's, figures in their own
    block; the option needs a camera and a width no camera shows is refused."""
    common, metrics = _camera_figures(tmp_path, "--camera-width", "-0.5")
    capsys.readouterr()
    narrow = metrics["val_int8_camera_gray_width-0p5"]
    assert narrow["command"].endswith("--camera-seed 0 --camera-width -0.5")
    assert narrow["boards"] == 2 and narrow["escapes"] == 0 and narrow["map50"] > 0.6, narrow
    assert main([*common, "--camera-width", "-0.5"]) == 2
    assert "need --camera" in capsys.readouterr().err
    assert main([*common, "--camera", "gray", "--camera-width", "3"]) == 2
    assert "within -2..2 px" in capsys.readouterr().err


def _fixture_layout(root: Path) -> Path:
    """The real DeepPCB pair of tests/fixtures (92000010, a held-out board) in the dataset's layout; its list file."""
    src = REPO / "tests" / "fixtures" / "deeppcb"
    (root / "group92000" / "92000").mkdir(parents=True)
    (root / "group92000" / "92000_not").mkdir()
    for suffix in ("_test.jpg", "_temp.jpg"):
        shutil.copy(src / f"92000010{suffix}", root / "group92000" / "92000" / f"92000010{suffix}")
    shutil.copy(src / "92000010.txt", root / "group92000" / "92000_not" / "92000010.txt")
    (root / "test.txt").write_text("group92000/92000/92000010.jpg group92000/92000_not/92000010.txt\n")
    return root / "test.txt"


def test_a_one_defect_board_is_the_board_with_its_other_defects_taken_away():
    """`one_defect_board`: in every other labelled defect's box the board's differing pixels are the template's; the
    defect itself and everything outside the other boxes are the board's, so of its labelled defects one is left."""
    from inspector.commands.evaluate import ONE_DEFECT_MARGIN_PX, one_defect_board
    from inspector.datasets.deeppcb import read_annotation, read_gray

    src = REPO / "tests" / "fixtures" / "deeppcb"
    test, temp = read_gray(src / "92000010_test.jpg"), read_gray(src / "92000010_temp.jpg")
    boxes, _ = read_annotation(src / "92000010.txt")
    assert len(boxes) >= 3
    m = ONE_DEFECT_MARGIN_PX

    def area(box):
        x1, y1, x2, y2 = (int(v) for v in box)
        return slice(max(y1 - m, 0), y2 + m + 1), slice(max(x1 - m, 0), x2 + m + 1)

    for k, box in enumerate(boxes):
        board = one_defect_board(test, temp, boxes, k)
        assert (board[area(box)] == test[area(box)]).all()  # the defect, whole
        assert (cv2.absdiff(board[area(box)], temp[area(box)]) > 127).sum() > 10, k
        changed = board != test
        for j, other in enumerate(boxes):
            if j != k:
                # the other defects are gone: nothing in their boxes differs from the template any more
                assert (cv2.absdiff(board[area(other)], temp[area(other)]) <= 127).all(), (k, j)
                changed[area(other)] = False
        assert not changed.any()  # and nothing else was touched


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_one_defect_boards_are_inspected_one_by_one_and_their_escapes_counted(tmp_path, capsys):
    """`--one-defect`: every labelled defect of the real held-out board 92000010 on a board of its own, inspected
    through the station's path (registered, on a gray camera rendering here) by 1.9.2; each is a board, each must be
    rejected (a line's defective board mostly carries one defect); the count is printed and kept in metrics.json."""
    listing = _fixture_layout(tmp_path / "data")
    n = len((tmp_path / "data" / "group92000" / "92000_not" / "92000010.txt").read_text().splitlines())
    model = _split_package(tmp_path / "pkg")
    out = tmp_path / "out"
    args = ["evaluate", "--root", str(tmp_path / "data"), "--list", str(listing), "--model", str(model),
            "--out", str(out), "--one-defect", "--camera", "gray", "--camera-shift", "3", "--camera-rotate", "0.5"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())["main"]
    assert m["one_defect_boards"] == n and sum(v[0] for v in m["one_defect_by_class"].values()) == n
    assert m["one_defect_escapes"] == 0 and m["one_defect_not_inspected"] == 0, m["one_defect_escaped"]
    assert f"one-defect boards (each labelled defect alone on its board): 0 of {n} PASSED" in printed
    # Every box above the floor on each one-defect and good board, for scripts/choose_thresholds.py: each defect has
    # a box on it at the shipped threshold (it was rejected for it), and the two good boards are there too.
    records = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    one = [r for r in records if r["board"] == "one defect"]
    assert len(one) == n and all(any(b[2] and b[1] >= 0.3 for b in r["boxes"]) for r in one)
    assert sorted(r["board"] for r in records if r["board"] != "one defect") == [
        "golden board, second capture",
        "other physical board",
    ]


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model is not in models/")
def test_a_station_calibrated_on_golden_boards_is_scored_in_its_own_sidecar_block(tmp_path, capsys):
    """`--camera-calibrate-threshold LIST`: the station's threshold position is set as `calibrate threshold` would set
    it, from the golden captures of the listed pairs against their templates, before any board is scored; the position
    and what it was fitted on are in the figures, which go to their own block; the option needs a camera."""
    data = tmp_path / "data"
    listed = str(data / "test.txt")
    common, metrics = _camera_figures(tmp_path, "--camera-renderer", "optics", "--camera-calibrate-threshold", listed)
    assert "threshold position calibrated on 2 golden captures" in capsys.readouterr().err
    block = metrics["val_int8_camera_gray_optics_calibrated"]
    assert block["command"].endswith(f"--camera-renderer optics --camera-calibrate-threshold {listed}")
    cal = block["threshold_calibration"]
    assert cal["boards"] == 2 and 0.1 <= cal["threshold_position"] < 0.5, cal
    assert cal["offset_at_midpoint_px"] < 0, cal
    assert block["boards"] == 2 and block["escapes"] == 0, block
    assert main([*common, "--camera-calibrate-threshold", listed]) == 2
    assert "--camera-calibrate-threshold needs --camera" in capsys.readouterr().err
    assert main([*common, "--camera", "gray", "--camera-calibrate-threshold", str(data / "nothing.txt")]) == 2
    assert "--camera-calibrate-threshold" in capsys.readouterr().err


def test_a_station_set_to_fewer_passes_is_scored_and_never_written_as_the_packages(tmp_path, capsys):
    """`--passes single`: the station's verdicts with one pass, said in the figures; refused with --write-sidecar."""
    _deeppcb_layout(tmp_path / "data", 3)
    model = _split_package(tmp_path / "pkg")
    args = ["evaluate", "--root", str(tmp_path / "data"), "--list", str(tmp_path / "data" / "test.txt"),
            "--model", str(model), "--passes", "single"]  # fmt: skip
    before = model.with_suffix(".json").read_text()
    assert main([*args, "--out", str(tmp_path / "w"), "--write-sidecar"]) == 2
    assert "--passes single with --write-sidecar" in capsys.readouterr().err
    assert model.with_suffix(".json").read_text() == before
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert ", detector.passes = single, 3 boards" in capsys.readouterr().out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["main"]
    assert m["passes"] == "single" and m["boards"] == 3
