"""A golden reference taught from several good boards (`inspector.teach_reference`, `pcb-inspector reference teach`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.detect.package import InputDomain
from inspector.detect.prepare import prepare
from inspector.evaluation.camera_domain import render
from inspector.teach_reference import TeachError, teach_reference

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "deeppcb"


def _template() -> np.ndarray:
    return cv2.imread(str(FIXTURES / "92000010_temp.jpg"), cv2.IMREAD_GRAYSCALE)


def _boards(n: int, mode: str = "gray") -> list[np.ndarray]:
    """The first square in the fixture, the others other physical boards, each up to 3 px / 0.5 deg off."""
    temp = _template()
    first = render(temp, 1, board_seed=10, mode=mode)[0]
    return [first] + [
        render(temp, 2 + k, board_seed=20 + k, mode=mode, max_shift=3, max_rot_deg=0.5)[0] for k in range(n - 1)
    ]


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_blemish_on_one_teaching_board_is_outvoted_and_the_copper_stays(mode):
    boards = _boards(3, mode)
    spec = InputDomain(kind="binary_copper")
    clean = teach_reference(boards).image
    # A copper-bright blot on the bare laminate of the second board (a splash of solder, a stray piece of copper):
    # the median of three drops it (a mean would keep a third of it, enough to flip the mask there).
    blotted = [b.copy() for b in boards]
    mask = prepare(boards[1], spec)
    ys, xs = np.nonzero(mask[100:-100, 100:-100] != spec.copper_level)
    y, x = int(ys[len(ys) // 2]) + 100, int(xs[len(xs) // 2]) + 100
    cv2.circle(blotted[1], (x, y), 6, (255, 255, 255) if mode == "colour" else 255, -1)
    taught = teach_reference(blotted)
    assert taught.image.shape == boards[0].shape and taught.image.dtype == np.uint8
    assert taught.registrations[0] is None and all(r.quality > 0.8 for r in taught.registrations[1:])
    assert np.array_equal(prepare(taught.image, spec)[y - 12 : y + 13, x - 12 : x + 13],
                          prepare(clean, spec)[y - 12 : y + 13, x - 12 : x + 13])  # fmt: skip
    # The copper stays where the first board has it: the taught mask is the first board's but for edge pixels.
    assert float((prepare(taught.image, spec) != prepare(boards[0], spec)).mean()) < 0.01


def test_what_cannot_teach_a_reference_is_refused_by_name():
    boards = _boards(2)
    with pytest.raises(TeachError, match="at least 2 good boards, got 1"):
        teach_reference(boards[:1])
    with pytest.raises(
        TeachError, match=r"b\.png: \(320, 320\) uint8 differs from the first board \(\(640, 640\) uint8\)"
    ):
        teach_reference([boards[0], boards[1][:320, :320]], ["a.png", "b.png"])
    with pytest.raises(TeachError, match="a.png: blank image"):
        teach_reference([np.full_like(boards[0], 90), boards[1]], ["a.png", "b.png"])
    noise = np.random.default_rng(3).integers(0, 256, boards[0].shape, dtype=np.uint8)
    with pytest.raises(TeachError, match="b.png: not registered to a.png"):
        teach_reference([boards[0], noise], ["a.png", "b.png"])
    with pytest.raises(TeachError, match="pixel type float32"):
        teach_reference([boards[0].astype(np.float32), boards[1].astype(np.float32)])


def test_the_command_writes_a_lossless_reference_and_keeps_an_existing_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stored reference goes under ./data/references
    paths = []
    for i, b in enumerate(_boards(3)):
        paths.append(tmp_path / f"good{i}.png")
        cv2.imwrite(str(paths[-1]), b)
    out = tmp_path / "recipe" / "golden.png"
    assert main(["reference", "teach", "--out", str(out), *map(str, paths)]) == 0
    printed = capsys.readouterr().out
    assert f"golden reference of 3 boards written to {out}" in printed and "good1.png: shift" in printed
    # The command it names stores the golden image with an optics baseline over the same boards (median of 4).
    line = next(x for x in printed.splitlines() if x.startswith("store it with its optics baseline"))
    command = line.split(": pcb-inspector ", 1)[1].replace("--recipe NAME", "--recipe demo").split()
    db = ["--db", f"sqlite:///{tmp_path}/records.db"]
    assert main([*command, "--no-undistort", *db]) == 0
    assert "optics baseline: median of 4 boards" in capsys.readouterr().out
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.shape == (640, 640) and written.dtype == np.uint8
    # no temporary file left beside it; the copper preview is (see the next test)
    assert sorted(p.name for p in out.parent.iterdir()) == ["golden.copper.png", "golden.png"]
    before = out.read_bytes()
    assert main(["reference", "teach", "--out", str(out), *map(str, paths[:2])]) == 2
    assert "exists: recipes may point at it; add --force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["reference", "teach", "--out", str(out), "--force", *map(str, paths[:2])]) == 0
    assert out.read_bytes() != before
    assert main(["reference", "teach", "--out", str(tmp_path / "g.jpg"), *map(str, paths)]) == 2
    assert "stored losslessly" in capsys.readouterr().err
    assert (
        main(["reference", "teach", "--out", str(tmp_path / "g2.png"), str(paths[0]), str(tmp_path / "nope.png")]) == 2
    )
    assert "nope.png does not exist" in capsys.readouterr().err
    assert not (tmp_path / "g2.png").exists()


def test_teaching_shows_which_material_the_model_will_read_as_copper(tmp_path, capsys):
    """Nothing in a camera image says which material is copper: the station takes `detector.camera_copper` (the
    model's 'bright' unless set) on trust, and set the wrong way round it reports every defect as its opposite.
    Teaching writes the golden image as the model will read it, copper black, and says what to check. A camera that
    shows copper dark (dark-field light): without the setting the preview draws the laminate black, with
    `camera_copper = "dark"` the copper."""
    temp = _template()
    paths = []
    for k in range(2):
        frame, cap = render(temp, 40 + k, board_seed=50 + k, copper_look="dark", max_shift=2 * k, max_rot_deg=0.3 * k)
        if k == 0:
            copper = cv2.warpAffine((temp < 128).astype(np.uint8), cap.matrix[:2], temp.shape[::-1]) > 0
            assert frame[copper].mean() + 40 < frame[~copper].mean()
        paths.append(tmp_path / f"dark{k}.png")
        cv2.imwrite(str(paths[-1]), frame)
    drawn = {}
    for look in ("model", "dark"):
        cfg = tmp_path / f"{look}.toml"
        cfg.write_text('[detector]\ncamera_copper = "dark"\n' if look == "dark" else "[detector]\n")
        out = tmp_path / f"golden-{look}.png"
        assert main(["reference", "teach", "--out", str(out), "--config", str(cfg), *map(str, paths)]) == 0
        printed = capsys.readouterr().out
        preview = tmp_path / f"golden-{look}.copper.png"
        assert f"{preview}, copper drawn black. Check it: the traces and pads must be black" in printed
        drawn[look] = cv2.imread(str(preview), cv2.IMREAD_GRAYSCALE) == 0
        if look == "model":
            assert "camera_copper bright" in printed and 'set [detector] camera_copper = "dark"' in printed
    inner = cv2.erode(np.ones_like(temp), np.ones((9, 9), np.uint8)) > 0  # the frame's border is not judged
    assert (drawn["dark"] == copper)[inner].mean() > 0.97
    assert (drawn["model"] != copper)[inner].mean() > 0.97


def test_golden_boards_the_model_cannot_read_are_refused_and_nothing_is_written(tmp_path, capsys):
    """Captures taken with the camera's gamma on (0.45): copper and laminate too close for the model's preparation, so
    every board compared with such a golden image would be a REJECT. Teaching refuses them with the remedy and writes
    neither the golden image nor its preview; told the camera's gamma (`[detector] camera_gamma`), it teaches."""
    temp = _template()
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** 0.45), 0, 255).astype(np.uint8)
    paths = []
    for k in range(2):  # copper/laminate 2.29:1 for the first capture, 1.45:1 through the gamma
        frame = render(temp, 4, board_seed=60 + k, max_shift=2 * k, max_rot_deg=0.3 * k)[0]
        paths.append(tmp_path / f"g{k}.png")
        cv2.imwrite(str(paths[-1]), cv2.LUT(frame, lut))
    out = tmp_path / "recipe" / "golden.png"
    cfg = tmp_path / "station.toml"
    cfg.write_text("[detector]\n")
    assert main(["reference", "teach", "--out", str(out), "--config", str(cfg), *map(str, paths)]) == 2
    err = capsys.readouterr().err
    assert "the model cannot read this golden image, nothing written" in err and "camera gamma to 1" in err
    assert not out.exists() and not out.with_name("golden.copper.png").exists()
    cfg.write_text("[detector]\ncamera_gamma = 0.45\n")
    assert main(["reference", "teach", "--out", str(out), "--config", str(cfg), *map(str, paths)]) == 0
    assert out.exists() and out.with_name("golden.copper.png").exists()
