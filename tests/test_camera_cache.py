"""Camera-prepared training boards (`inspector.training.camera_cache`) and how the trainer mixes them in.

The cache must hold what the station feeds the network for a camera board (rendered, registered,
binarised by the package's `input_domain`), in DeepPCB's coordinates so the DeepPCB boxes still fit;
and the trainer must draw from it only when asked, so the earlier stages of the shipped recipe draw
exactly the same crops as before.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.datasets.deeppcb import load_list
from inspector.detect.package import InputDomain
from inspector.detect.prepare import is_binary

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "deeppcb"
SIDECAR = ROOT / "models" / "pcb-defect-det.json"


def _dataset(tmp_path: Path) -> Path:
    """The fixture pair in DeepPCB's layout (group 92000)."""
    root = tmp_path / "data"
    img = root / "group92000" / "92000"
    ann = root / "group92000" / "92000_not"
    img.mkdir(parents=True)
    ann.mkdir(parents=True)
    for suffix in ("_test.jpg", "_temp.jpg"):
        shutil.copy(FIXTURE / f"92000010{suffix}", img / f"92000010{suffix}")
    shutil.copy(FIXTURE / "92000010.txt", ann / "92000010.txt")
    (root / "trainval.txt").write_text("group92000/92000/92000010.jpg group92000/92000_not/92000010.txt\n")
    return root


def _spec() -> InputDomain:
    return InputDomain(**json.loads(SIDECAR.read_text())["input_domain"])


@pytest.mark.parametrize("k", [0, 1], ids=["gray", "colour"])
def test_entry_is_the_station_view_of_the_deeppcb_board(tmp_path, k):
    from inspector.training.camera_cache import render_entry

    (pair,) = load_list(_dataset(tmp_path))
    e = render_entry(pair, k, _spec(), shift=3.0, rotate=0.5)
    assert e is not None, "the fixture board registers in both camera modes"
    test = cv2.imread(str(pair.test_path), cv2.IMREAD_GRAYSCALE)
    temp = cv2.imread(str(pair.template_path), cv2.IMREAD_GRAYSCALE)
    for name in ("board", "template", "good"):
        assert e[name].shape == test.shape and e[name].dtype == np.uint8
        assert is_binary(e[name], 40, 0.99), name
    # Registered back into DeepPCB's pixels: away from the copper's outlines the masks agree with DeepPCB's
    # own, so its boxes mark the same defects; the outlines themselves are the camera's (that is the point).
    outline = cv2.morphologyEx((test < 128).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
    off = ((test < 128) != (e["board"] < 128)) & ~outline
    assert off.mean() < 0.003, off.mean()
    assert ((test < 128) != (e["board"] < 128)).mean() > 0, "a camera board is not DeepPCB's mask pixel for pixel"
    assert ((temp < 128) != (e["good"] < 128)).mean() < 0.02
    assert np.array_equal(e["boxes"], pair.boxes) and np.array_equal(e["classes"], pair.classes)


def test_a_rendering_may_show_the_copper_wider_or_narrower_on_board_and_golden_alike(tmp_path):
    """`--width-px W`: each rendering draws its own copper width in [-W, W] (a stream of its own) for all its
    captures; W 0 builds the cache as before, byte for byte."""
    from inspector.training.camera_cache import render_entry

    (pair,) = load_list(_dataset(tmp_path))
    plain = render_entry(pair, 0, _spec(), shift=3.0, rotate=0.5)
    zero = render_entry(pair, 0, _spec(), shift=3.0, rotate=0.5, width=0.0)
    for name in ("board", "template", "good"):
        assert np.array_equal(plain[name], zero[name])
    changed = []
    for k in (0, 2, 4):  # three gray renderings: each draws its own width
        a = render_entry(pair, k, _spec(), shift=3.0, rotate=0.5)
        b = render_entry(pair, k, _spec(), shift=3.0, rotate=0.5, width=1.0)
        assert np.array_equal(b["template"], render_entry(pair, k, _spec(), 3.0, 0.5, 1.0)["template"])  # repeatable
        cu = [(e[name] == 0).mean() for e in (a, b) for name in ("template", "board", "good")]
        # the golden mask and both boards move the same way (narrower or wider copper everywhere)
        signs = {np.sign(round(cu[3 + i] - cu[i], 4)) for i in range(3)}
        assert len(signs) == 1, cu
        changed.append(signs.pop())
    assert 0 not in changed


def test_sampler_draws_camera_boards_only_when_asked(tmp_path):
    from inspector.training.camera_cache import render_entry
    from inspector.training.train import Sampler

    pairs = load_list(_dataset(tmp_path))
    entry = render_entry(pairs[0], 0, _spec(), shift=3.0, rotate=0.5)
    plain = Sampler(pairs, 320, seed=4)
    off = Sampler(pairs, 320, seed=4, camera=[entry], camera_mix=0.0)
    for _ in range(6):  # mix 0: the very same crops as a sampler without a cache (earlier stages reproduce)
        for a, b in zip(plain.sample(), off.sample(), strict=True):
            assert np.array_equal(a, b)
    always = Sampler(pairs, 320, seed=4, camera=[entry], camera_mix=1.0)
    board, temp, good, boxes, _ = always._pick()
    assert board is entry["board"] and temp is entry["template"] and good is entry["good"] and boxes is entry["boxes"]
    never = Sampler(pairs, 320, seed=4, camera=[entry], camera_mix=0.0)
    board, temp, good, _, _ = never._pick()
    assert board is never.boards[0] and temp is never.temps[0] and good is never.temps[0]


def test_sampler_etches_boards_otherwise_than_their_template_only_when_asked(tmp_path):
    """`--etch-px 1`: half of the boards, the known-good negatives among them, have every copper edge a pixel further
    out or in than their template (a line's boards are etched each a little otherwise; every DeepPCB board has its
    template's traces exactly). The template, the labels and every other draw stay those of a run without it."""
    from inspector.training.train import Sampler, etch_mask

    trace = np.full((20, 20), 255, np.uint8)
    trace[5:15, 8:12] = 0  # a dark (copper) trace 4 px wide
    assert (etch_mask(trace, 1)[10] == 0).sum() == 6 and (etch_mask(trace, -1)[10] == 0).sum() == 2
    pairs = load_list(_dataset(tmp_path))
    plain = Sampler(pairs, 320, seed=4)
    etched = Sampler(pairs, 320, seed=4, etch_px=1, etch_p=1.0)
    moved = 0
    for _ in range(12):
        (x0, hm0, reg0, m0), (x1, hm1, reg1, m1) = plain.sample(), etched.sample()
        assert np.array_equal(x0[..., 1], x1[..., 1])  # the template channel: the same crop
        assert np.array_equal(hm0, hm1) and np.array_equal(reg0, reg1) and np.array_equal(m0, m1)
        # Copper as each board shows it (the photometric jitter after the etch never crosses mid-gray).
        differ = (x0[..., 0] < 128) != (x1[..., 0] < 128)
        if differ.any():
            moved += 1
            # Only along the copper's outline (within a pixel of an edge of the board drawn without the etch), and
            # the difference channel follows the board.
            edge = cv2.morphologyEx((x0[..., 0] < 128).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            assert not (differ & (edge == 0)).any()
            assert np.array_equal(x1[..., 2], cv2.absdiff(x1[..., 0], x1[..., 1]))
    assert moved >= 10  # every board etched (etch_p 1), a crop of bare laminate aside


@pytest.mark.slow
def test_cache_command_writes_entries_that_load_back(tmp_path):
    from inspector.training.camera_cache import load_cache

    data = _dataset(tmp_path)
    out = tmp_path / "cache"
    cmd = [
        sys.executable, "-m", "inspector.training.camera_cache", "--data", str(data), "--out", str(out),
        "--renders", "2", "--workers", "1", "--val-groups", "none", "--sidecar", str(SIDECAR),
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.npz")) == ["92000_92000010_0.npz", "92000_92000010_1.npz"]
    entries = load_cache(out)
    assert len(entries) == 2 and not np.array_equal(entries[0]["board"], entries[1]["board"])
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)  # resumes: nothing redone
    assert r.returncode == 0 and {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == before
    with pytest.raises(SystemExit, match="no camera cache entries"):
        load_cache(tmp_path)
    # The pair's group held out: rendered only for a model trained on every pair.
    for train_on, expected in (("split", []), ("all", ["92000_92000010_0.npz"])):
        held = tmp_path / f"held-{train_on}"
        held_cmd = [*cmd[:5], "--out", str(held), "--renders", "1", "--workers", "1", "--val-groups", "92000",
                    "--sidecar", str(SIDECAR), "--train-on", train_on]  # fmt: skip
        r = subprocess.run(held_cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert sorted(p.name for p in held.glob("*.npz")) == expected
