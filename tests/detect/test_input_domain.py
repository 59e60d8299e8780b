"""The model's image domain (sidecar `input_domain`): camera frames and the golden image are brought into
the binarised copper domain the shipped network learnt; binary input passes untouched; other frames are
converted or refused. Runs the real shipped model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.config import DetectorSection, Recipe
from inspector.decision import RecipeRules
from inspector.detect import prepare as prepare_module
from inspector.detect.base import ModelError
from inspector.detect.factory import create_detector
from inspector.detect.package import read_meta
from inspector.detect.prepare import ImageDomainError, is_binary, prepare, to_gray8
from inspector.domain import Verdict
from inspector.evaluation.camera_domain import capture_pair

from .conftest import package_with

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "pcb-defect-det.tflite"
PAIR = ROOT / "tests" / "fixtures" / "deeppcb"


def _pair():
    """A DeepPCB validation pair (binarised test board, its template) and its annotated boxes."""
    test_path = sorted(PAIR.glob("*_test.jpg"))[0]
    test = cv2.imread(str(test_path), cv2.IMREAD_GRAYSCALE)
    temp = cv2.imread(str(test_path).replace("_test", "_temp"), cv2.IMREAD_GRAYSCALE)
    rows = [
        line.replace(",", " ").split()
        for line in test_path.with_name(test_path.stem[:8] + ".txt").read_text().splitlines()
    ]
    boxes = np.array([[float(v) for v in r[:4]] for r in rows if r], np.float32)
    return test, temp, boxes


def _detector(model: Path = SHIPPED):
    det = create_detector(DetectorSection(model=model, delegate="cpu", threads=2))
    det.load()
    return det


@pytest.fixture(scope="module")
def shipped():
    det = _detector()
    yield det
    det.close()


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_shipped_sidecar_declares_binary_copper():
    dom = read_meta(SHIPPED).input_domain
    assert dom is not None and dom.kind == "binary_copper" and dom.copper_level == 0


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"kind": "normalised_gray"}, "input_domain.kind"),
        ({"kind": "binary_copper", "method": "sauvola"}, "input_domain.method"),
        ({"kind": "binary_copper", "smooth_px": 4}, "input_domain.smooth_px"),
        ({"kind": "binary_copper", "copper_level": 128}, "input_domain.copper_level"),
        ({"kind": "binary_copper", "treshold": 3}, "input_domain.treshold"),
        ({"kind": "binary_copper", "same_band": 1.0}, "input_domain.same_band"),
        ({"kind": "binary_copper", "same_contrast": -1.4}, "input_domain.same_contrast"),
        ({"kind": "binary_copper", "same_material": "board"}, "input_domain.same_material"),
    ],
)
def test_bad_input_domain_is_refused_naming_the_key(tmp_path, bad, key):
    pkg = package_with(SHIPPED, tmp_path, input_domain=bad)
    with pytest.raises(ModelError, match=key.replace(".", r"\.")):
        read_meta(pkg)


def test_binary_input_passes_untouched_and_detections_are_identical(tmp_path, shipped):
    test, temp, _ = _pair()
    dom = read_meta(SHIPPED).input_domain
    assert prepare(test, dom) is test and prepare(temp, dom) is temp
    plain = _detector(package_with(SHIPPED, tmp_path, input_domain=None))
    assert plain.meta.input_domain is None
    a, b = shipped.detect(test, temp), plain.detect(test, temp)
    assert a and a == b  # same boxes, classes and scores to the last bit
    plain.close()


def test_camera_board_defects_found_and_known_good_second_capture_passes(shipped):
    """The real model on camera renderings (no residual misregistration: registration is not this test's part)."""
    test, temp, boxes = _pair()
    rules = RecipeRules(Recipe())
    f = capture_pair(test, temp, 21)
    golden = f["golden"][0]
    found = shipped.detect(f["board"][0], golden)
    assert rules.decide(found, shipped.info.default_thresholds).verdict is Verdict.REJECT
    hit = sum(any(_iou(t, d.box) > 0.3 for d in found) for t in boxes)
    assert hit >= len(boxes) - 1, (hit, len(boxes))  # at most one of the board's defects missed
    good = shipped.detect(f["good"][0], golden)
    assert rules.decide(good, shipped.info.default_thresholds).verdict is Verdict.PASS, good


def test_colour_and_16_bit_frames_are_converted(shipped):
    test, temp, _ = _pair()
    f = capture_pair(test, temp, 3, mode="colour")
    colour, golden = f["board"][0], f["golden"][0]
    assert read_meta(SHIPPED).input_domain.colour == "red"  # the plane with the most copper/laminate contrast
    red = np.ascontiguousarray(colour[:, :, 2])
    assert shipped.detect(colour, golden) == shipped.detect(red, np.ascontiguousarray(golden[:, :, 2]))
    # 16 bit: full-scale 16-bit gives the same 8-bit frame, so the same answer; against an 8-bit reference too
    wide = test.astype(np.uint16) * 257
    assert np.array_equal(to_gray8(wide), test)
    assert shipped.detect(wide, temp) == shipped.detect(test, temp)
    bgra = cv2.cvtColor(cv2.cvtColor(test, cv2.COLOR_GRAY2BGR), cv2.COLOR_BGR2BGRA)
    assert shipped.detect(bgra, temp) == shipped.detect(test, temp)


def test_16_bit_camera_frame_is_binarised_at_its_own_range():
    """A 12-bit sensor in a 16-bit container (values up to 4095) keeps its precision."""
    test, temp, _ = _pair()
    frame = capture_pair(test, temp, 8)["golden"][0]
    dom = read_meta(SHIPPED).input_domain
    twelve = frame.astype(np.uint16) * 16
    a, b = prepare(twelve, dom) < 128, prepare(frame, dom) < 128
    assert (a & b).sum() / (a | b).sum() > 0.99


@pytest.mark.parametrize(
    "frame, words",
    [
        (np.zeros((64, 64), np.float32), "float32"),
        (np.zeros((64, 64, 2), np.uint8), "2-channel"),
        (np.zeros((64, 64), np.int16), "int16"),
        (np.zeros((4, 64, 64, 3), np.uint8), "shape"),
    ],
)
def test_frames_of_another_domain_are_refused(shipped, frame, words):
    with pytest.raises(ImageDomainError, match=words):
        shipped.detect(frame, frame)


def test_reference_of_the_wrong_kind_is_refused_naming_it(shipped):
    test, _, _ = _pair()
    with pytest.raises(ImageDomainError, match="reference image"):
        shipped.detect(test, np.zeros(test.shape, np.float64))


def test_timings_carry_a_prepare_row(shipped):
    test, temp, _ = _pair()
    f = capture_pair(test, temp, 2)
    shipped.detect(f["board"][0], f["golden"][0])
    t = shipped.last_timings
    assert "prepare" in t and 0 < t["prepare"] <= t["pre"]


def test_export_writes_the_input_domain():
    from inspector.training.export import default_meta, parse_input_domain

    dom = parse_input_domain("binary_copper")
    assert dom["kind"] == "binary_copper" and "speck_px" in dom  # every field written out
    meta = default_meta("m", "1.0.0", 640, "uint8", 0.3, 180, input_domain=dom)
    assert meta["input_domain"] == dom
    assert parse_input_domain("none") is None
    assert (
        json.loads(json.dumps(parse_input_domain('{"kind": "binary_copper", "method": "adaptive"}')))["method"]
        == "adaptive"
    )
    with pytest.raises(SystemExit, match="input_domain|method"):
        parse_input_domain('{"kind": "binary_copper", "method": "x"}')


def test_a_registered_binary_board_is_still_taken_as_binary():
    """Registration warps the board with interpolation: its edges get in-between values, and it must
    still pass untouched (binarising it as a camera frame would invert copper and laminate)."""
    test, _, _ = _pair()
    m = cv2.getRotationMatrix2D((320, 320), 0.4, 1.0)
    m[:, 2] += (1.5, -2.3)
    warped = cv2.warpAffine(test, m, (640, 640), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert prepare(warped, read_meta(SHIPPED).input_domain) is warped


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_view_of_open_laminate_is_not_split_into_its_weave(shipped, mode):
    """A view that is almost all laminate (a pad corner and one trace, 1 % copper, as DeepPCB crops of group
    20085 are) used to be split into laminate and 'copper' along the weave (47 % copper on 20085060), and a
    second capture of the same board was then a field of false calls. Its two levels are now too close to be
    two materials (`_MIN_CONTRAST`): the view is one material with the other where it really is."""
    from inspector.decision import to_gray8 as by_colour_rule  # colour -> gray by the model's rule, as the station

    binary = np.full((640, 640), 255, np.uint8)
    cv2.circle(binary, (600, 610), 26, 0, -1)  # a pad in the corner
    cv2.line(binary, (600, 610), (470, 640), 0, 9)  # and its trace leaving the view
    copper = binary == 0
    f = capture_pair(binary, binary, 21, mode=mode)
    spec = read_meta(SHIPPED).input_domain
    golden = by_colour_rule(f["golden"][0], "golden", spec.colour)
    golden_in = prepare(golden, spec, "golden")
    assert abs(float((golden_in == 0).mean()) - float(copper.mean())) < 0.005
    assert ((golden_in == 0) != copper).mean() < 0.003  # the pad and trace where they are, no speckle
    good = by_colour_rule(f["good"][0], "good", spec.colour)  # the same board again, square: no warp needed
    assert ((prepare(good, spec, "good", reference=(golden, golden_in)) == 0) != copper).mean() < 0.003
    verdict = RecipeRules(Recipe()).decide(shipped.detect(good, golden), shipped.info.default_thresholds).verdict
    assert verdict is Verdict.PASS


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_bare_board_stays_one_material_and_shows_only_a_real_blob(shipped, mode):
    """A view of bare laminate (DeepPCB group 20085 has whole boards of it) has nothing to split: its weave and
    tarnish used to become the 'other material' in specks that differed between captures, and a known-good
    second capture came back as a field of pin-holes. The board now keeps the golden image's material but where
    it is the other one at the full assumed contrast: a real blob of copper is shown, the weave is not."""
    from inspector.decision import to_gray8 as by_colour_rule

    bare = np.full((640, 640), 255, np.uint8)
    spec = read_meta(SHIPPED).input_domain
    rules = RecipeRules(Recipe())
    blob = np.zeros_like(bare, bool)
    cv2.circle(blob.view(np.uint8), (300, 260), 9, 1, -1)
    with_blob = bare.copy()
    with_blob[blob] = 0  # spurious copper on the bare board
    for seed in (3, 4, 5):
        f = capture_pair(with_blob, bare, seed, mode=mode)
        golden = by_colour_rule(f["golden"][0], "golden", spec.colour)
        golden_in = prepare(golden, spec, "golden")
        assert (golden_in == golden_in.flat[0]).all()  # one material, no specks
        good = by_colour_rule(f["good"][0], "good", spec.colour)
        assert np.array_equal(prepare(good, spec, "good", reference=(golden, golden_in)), golden_in)
        decide = rules.decide(shipped.detect(good, golden), shipped.info.default_thresholds)
        assert decide.verdict is Verdict.PASS
        board = by_colour_rule(f["board"][0], "board", spec.colour)
        shown = prepare(board, spec, "board", reference=(golden, golden_in)) != golden_in
        assert shown[blob].mean() > 0.7 and shown[~blob].mean() < 0.0005
        assert rules.decide(shipped.detect(board, golden), shipped.info.default_thresholds).verdict is Verdict.REJECT


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_sparse_view_under_dark_field_light_is_laminate_with_its_pad(mode):
    """With `camera_copper: dark` (copper darker than the laminate), a view of one material was taken for the darker
    one as under bright-field light, where that is the laminate: under dark-field light it is the copper, and every
    bare or sparse view (DeepPCB group 20085) came out all copper (100 % where 0-1.5 % is). Such a view is laminate
    by default whichever material is brighter: the pad where it is, the bare board bare."""
    from inspector.decision import to_gray8 as by_colour_rule

    spec = read_meta(SHIPPED).input_domain.model_copy(update={"camera_copper": "dark"})
    sparse = np.full((640, 640), 255, np.uint8)
    cv2.circle(sparse, (600, 610), 26, 0, -1)  # a pad in the corner
    cv2.line(sparse, (600, 610), (470, 640), 0, 9)  # and its trace leaving the view
    bare = np.full((640, 640), 255, np.uint8)
    for binary in (sparse, bare):
        copper = binary == 0
        f = capture_pair(binary, binary, 21, mode=mode, copper_look="dark")
        golden = by_colour_rule(f["golden"][0], "golden", spec.colour)
        golden_in = prepare(golden, spec, "golden")
        assert ((golden_in == 0) != copper).mean() < 0.003, (golden_in == 0).mean()
        good = by_colour_rule(f["good"][0], "good", spec.colour)
        assert ((prepare(good, spec, "good", reference=(golden, golden_in)) == 0) != copper).mean() < 0.003


def _golden_with_two_copper_spots():
    """The fixture's golden board captured square twice (gray): the shipped preparation with both
    golden-following rules off, the golden capture and its mask, a copy of the second capture to paint
    on, and two points deep inside copper pours, a quarter and three quarters of the way through them."""
    _, temp, _ = _pair()
    spec = read_meta(SHIPPED).input_domain.model_copy(update={"same_band": 0.0, "same_contrast": 0.0})
    f = capture_pair(temp, temp, 11, mode="gray")
    golden = f["golden"][0]
    golden_in = prepare(golden, spec, "golden")
    inner = cv2.erode((golden_in == 0).view(np.uint8), np.ones((31, 31), np.uint8)).view(bool)  # deep in copper
    ys, xs = np.nonzero(inner)
    assert len(ys) > 2, "the fixture board has no copper pour wide enough"
    spots = [(int(ys[i]), int(xs[i])) for i in (len(ys) // 4, 3 * len(ys) // 4)]
    return spec, golden, golden_in, f["good"][0].copy(), spots


def test_a_weak_spot_keeps_the_golden_material_and_a_hole_keeps_its_full_extent():
    """`same_band`: on a registered board, a spot that only just crosses the midpoint of the two levels (tarnish,
    noise) keeps the golden image's material, while a hole at the laminate's level is shown with its rim (the
    unsure pixels joined to it), as large as without the band."""
    spec, golden, golden_in, good, spots_at = _golden_with_two_copper_spots()
    banded = spec.model_copy(update={"same_band": 0.5})
    copper = golden_in == 0
    spots = []
    for (y, x), level in zip(spots_at, (0.25, 1.0)):  # a weak spot a quarter of the way past the midpoint; a hole
        win = (slice(max(0, y - 40), y + 40), slice(max(0, x - 40), x + 40))
        cu = float(np.median(good[win][copper[win]]))
        lam = float(np.median(good[win][~copper[win]])) if (~copper[win]).any() else float(np.median(good[~copper]))
        disc = np.zeros_like(copper)
        cv2.circle(disc.view(np.uint8), (x, y), 6, 1, -1)
        good[disc] = np.uint8(round((cu + lam) / 2 - level * (cu - lam) / 2))
        spots.append(disc)
    weak, hole = spots
    assert not cv2.dilate(weak.view(np.uint8), np.ones((9, 9), np.uint8)).view(bool)[hole].any()  # apart
    plain = prepare(good, spec, "good", reference=(golden, golden_in)) != golden_in
    band = prepare(good, banded, "good", reference=(golden, golden_in)) != golden_in
    assert plain[weak].mean() > 0.8  # without the band the weak spot is a hole too
    assert band[weak].mean() == 0.0
    assert band[hole].mean() > 0.8 and band[hole].sum() >= plain[hole].sum()
    assert band[~(weak | hole)].sum() <= plain[~(weak | hole)].sum()


def test_where_the_two_captures_agree_a_differing_mask_follows_the_golden_one():
    """`same_contrast`: a piece of copper the golden image's own split lost (a faint trace in a dark corner, as on
    DeepPCB 20085027) is copper in both captures, so the board follows the golden mask there instead of showing
    "extra copper"; a hole painted into the board's capture differs from the golden capture and is shown whole."""
    spec, golden, golden_in, good, ((ly, lx), (y, x)) = _golden_with_two_copper_spots()
    gated = spec.model_copy(update={"same_contrast": 1.4})
    copper = golden_in == 0
    assert abs(ly - y) + abs(lx - x) > 40, "the two spots overlap"
    lost = np.zeros_like(copper)
    lost[ly - 10 : ly + 10, lx - 10 : lx + 10] = True  # the golden split "lost" this piece of copper
    wrong_mask = golden_in.copy()
    wrong_mask[lost] = 255
    hole = np.zeros_like(copper)
    cv2.circle(hole.view(np.uint8), (x, y), 6, 1, -1)
    good[hole] = np.uint8(np.median(good[~copper]))  # bare laminate where the golden board has copper
    plain = prepare(good, spec, "good", reference=(golden, wrong_mask)) != wrong_mask
    gate = prepare(good, gated, "good", reference=(golden, wrong_mask)) != wrong_mask
    assert plain[lost].mean() > 0.8  # its own split finds the copper the golden mask lacks: a false difference
    assert gate[lost].mean() == 0.0
    assert gate[hole].mean() > 0.8 and gate[hole].sum() >= plain[hole].sum()


def test_specks_of_either_level_are_flipped_and_larger_islands_kept():
    """`remove_specks` by area, both levels, 8-connected: a 3x5 copper speck (15 px) and a 4x3 laminate hole
    (12 px) go; a 4x4 pad (16 px), a diagonal 1-px line of 20 px (a thin spur, 8-connected) and the frame stay."""
    from inspector.detect.prepare import remove_specks

    mask = np.full((64, 64), 255, np.uint8)
    mask[5:8, 5:10] = 0  # speck: 15 px
    mask[20:24, 20:24] = 0  # pad: 16 px, kept
    for i in range(20):  # diagonal line: one island under 8-connectivity, twenty under 4
        mask[30 + i, 40 + i] = 0
    mask[50:60, 50:60] = 0
    mask[54:57, 54:58] = 255  # a 12 px hole in that pour
    want = mask.copy()
    want[5:8, 5:10] = 255
    want[54:57, 54:58] = 0
    out = remove_specks(mask, 16)
    assert np.array_equal(out, want)
    assert np.array_equal(mask[5:8, 5:10], np.zeros((3, 5), np.uint8))  # the input is not changed


def test_a_frame_of_more_specks_than_16_bit_labels_hold_is_still_cleaned():
    """Pure noise: 102,400 isolated copper pixels (more islands than 16-bit labels hold, where OpenCV refuses
    rather than wraps). The speck removal labels it again in 32 bits and removes every one; a 5x5 pad among them,
    which touches none of them diagonally, stays."""
    from inspector.detect.prepare import remove_specks

    mask = np.full((640, 640), 255, np.uint8)
    mask[::2, ::2] = 0
    mask[100:107, 100:107] = 255
    mask[101:106, 101:106] = 0  # 25 px, kept
    out = remove_specks(mask, 16)
    want = np.full_like(mask, 255)
    want[101:106, 101:106] = 0
    assert np.array_equal(out, want)


def test_where_the_golden_capture_is_unclear_either_material_may_agree(monkeypatch):
    """`same_material: either`: a tarnished spot of a copper pour sits between the two levels in the golden capture,
    and the golden split took its middle for laminate. The board's capture shows copper twice as far above its laminate
    (another exposure), so there the spot stays copper. Judged against the golden label (laminate) the spot differs by the contrast ratio and came
    back as extra copper; where the golden capture is unclear, either material may agree, and it follows the golden
    mask. A hole punched through clear copper still shows whole.

    The light's local correction (`_local_light`) is off here: it follows a spot this smooth on its own (the 'golden'
    rule's false difference drops from 31 % to 5 % of the spot), which would hide what this rule does."""
    monkeypatch.setattr(prepare_module, "_LOCAL_LIGHT_PX", 0)
    spec, golden, golden_in, good, ((ly, lx), (y, x)) = _golden_with_two_copper_spots()
    spec = spec.model_copy(update={"same_contrast": 1.4, "same_material": "golden"})  # 1.9.1's rule
    copper = golden_in == 0
    disc = np.zeros(copper.shape, np.float32)
    cv2.circle(disc, (lx, ly), 10, 1.0, -1)
    g_lam, g_cu = float(np.median(golden[~copper])), float(np.median(golden[disc > 0]))
    tarnish = math.exp(math.log(g_lam) + 0.4 * (math.log(g_cu) - math.log(g_lam))) / g_cu  # 40 % of the way up, in log
    disc = cv2.GaussianBlur(disc, (0, 0), 2.0)  # a smooth spot, as tarnish is
    factor = 1.0 - (1.0 - tarnish) * disc
    golden = np.clip(golden * factor, 0, 255).astype(np.uint8)
    lost = (disc > 0.05) & (cv2.medianBlur(golden, 3) < (g_lam + g_cu) / 2)  # what a split at the midpoint loses
    wrong_mask = golden_in.copy()
    wrong_mask[lost] = 255
    lam = float(np.median(good[~copper]))
    board = good.astype(np.float32)
    board[copper] = lam + (board[copper] - lam) * 2.0  # the board capture's copper/laminate step twice as large
    good = np.clip(board * factor, 0, 255).astype(np.uint8)  # the same spot on the same board
    hole = np.zeros_like(copper)
    cv2.circle(hole.view(np.uint8), (x, y), 6, 1, -1)
    good[hole] = np.uint8(lam)
    by_label = prepare(good, spec, "good", reference=(golden, wrong_mask)) != wrong_mask
    either = spec.model_copy(update={"same_material": "either"})
    by_either = prepare(good, either, "good", reference=(golden, wrong_mask)) != wrong_mask
    assert by_label[lost].mean() > 0.2  # a false difference: the board capture sees copper there
    assert by_either[lost].mean() == 0.0
    assert by_either[hole].mean() > 0.8 and by_either[hole].sum() == by_label[hole].sum()


@pytest.mark.parametrize("margin", [0, 1, 40, 126, 127])
def test_the_binary_test_counts_the_bands_edges_exactly(margin):
    """Levels `margin` and `255 - margin` are binary, one step inside is not, at exactly the fraction asked."""
    inside = [margin, 255 - margin]
    outside = [level for level in (margin + 1, 254 - margin) if margin + 1 <= level <= 254 - margin]
    frame = np.full((10, 100), inside[0], np.uint8)
    frame[:, 50:] = inside[1]
    if outside:
        frame[9, :10] = outside[0]  # ten pixels just inside the bands' edges ...
        frame[9, 10] = outside[-1]  # ... and one more: 989 of 1,000 binary, so 0.989 holds and 0.99 does not
        assert is_binary(frame, margin, 0.989)
        assert not is_binary(frame, margin, 0.99)
    else:  # every 8-bit level is within 127 of black or white
        assert is_binary(frame, margin, 1.0)
    frame[0, 0] = inside[1]
    assert is_binary(frame[:1], margin, 1.0)  # a row of only the two bands' edge levels


def test_16_bit_goes_onto_8_bit_by_its_significant_bits():
    """Not by its top 8 bits: a 12-bit frame in a 16-bit container would be 0..15, near black."""
    from inspector.detect.prepare import to_8bit

    v = np.arange(256, dtype=np.uint16).reshape(16, 16)
    twelve = (v << 4) | (v >> 4)  # 0..4095, as a 12-bit sensor fills it
    assert np.array_equal(to_8bit(twelve), v.astype(np.uint8))
    assert np.array_equal(to_8bit(v * 257), v.astype(np.uint8))  # full 16-bit range: the top 8 bits
    assert np.array_equal(to_8bit(v), v.astype(np.uint8))  # values that fit in 8 bits stay as they are
    eight = v.astype(np.uint8)
    assert to_8bit(eight) is eight


def test_a_board_compared_with_a_camera_golden_image_is_a_camera_frame_however_binary_it_looks(shipped):
    """Hard contrast (copper clipped white, laminate crushed black) makes a capture pass the binary test. Judged
    alone, it went to the network in the camera's polarity (copper white) against the golden mask in DeepPCB's
    (copper black): the masks disagreed almost everywhere, and on DeepPCB renderings defective boards PASSED."""
    test, temp, boxes = _pair()
    f = capture_pair(test, temp, 5)
    golden = f["golden"][0]
    hard = np.clip((f["board"][0].astype(np.float32) - 90) * 10, 0, 255).astype(np.uint8)
    dom = read_meta(SHIPPED).input_domain
    assert is_binary(hard, dom.binary_margin, dom.binary_fraction) and not is_binary(golden, 40, 0.9)
    golden_mask = prepare(golden, dom)
    board_mask = prepare(hard, dom, reference=(golden, golden_mask))
    assert (board_mask == golden_mask).mean() > 0.95  # same polarity: they differ only at the defects and edges
    rules = RecipeRules(Recipe())
    found = shipped.detect(hard, golden)
    assert rules.decide(found, shipped.info.default_thresholds).verdict is Verdict.REJECT
    hit = sum(any(_iou(t, d.box) > 0.3 for d in found) for t in boxes)
    assert hit >= len(boxes) - 1, (hit, len(boxes), found)


@pytest.mark.parametrize("centre", [(200, 420), (450, 200)])
def test_a_soft_shadow_the_light_polynomial_cannot_follow_is_followed(centre):
    """A soft shadow (40 % deep, about 90 px wide; a fixture's or an arm's, or one weak segment of a ring light) on a
    2:1 board, on the golden image or on a board compared with an evenly lit golden image: every pixel 2 px or more
    from a copper edge comes out as the board's copper or laminate. One polynomial light field over the frame
    cannot bend that far; the preparation follows it cell by cell (`_local_light`). Before, 721-1,901 pixels of the
    golden mask and 494-1,215 of the board's were the wrong material there: false calls on a good board."""
    _, temp, _ = _pair()
    spec = read_meta(SHIPPED).input_domain
    copper = temp < 128
    h, w = temp.shape
    judged = cv2.erode(copper.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    judged |= cv2.erode((~copper).view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shadow = 1.0 - 0.4 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 90.0**2))

    def capture(light: np.ndarray, seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed).normal(0.0, 3.0, (h, w))
        return np.clip(np.rint(np.where(copper, 180.0, 90.0) * light + noise), 0, 255).astype(np.uint8)

    def wrong(mask: np.ndarray) -> int:
        return int((((mask == spec.copper_level) != copper) & judged).sum())

    assert wrong(prepare(capture(shadow, 1), spec, "golden")) == 0
    golden = capture(np.ones((h, w), np.float32), 1)
    golden_mask = prepare(golden, spec, "golden")
    assert wrong(golden_mask) == 0
    assert wrong(prepare(capture(shadow, 2), spec, "board", reference=(golden, golden_mask))) == 0


@pytest.mark.parametrize("size", [(640, 640), (500, 641), (900, 1200), (9, 20), (300, 127)])
def test_the_light_field_is_the_polynomial_at_every_pixel_to_a_fifth_of_an_8_bit_step(size):
    """The fitted light field (`_poly_field`, in log) is evaluated at the centres of 8 px cells and interpolated, not
    at every pixel (a millisecond a board less). Against the polynomial at every pixel, on fields far steeper than a
    lens and a light give (every coefficient drawn with a spread of 0.3): within 1e-3 everywhere, the frame's edges and
    corners included (a fifth of the 0.0055 an 8-bit step is at the copper's level), and exact on a frame too small
    for cells."""
    h, w = size
    pairs = prepare_module._terms(3)
    rng = np.random.default_rng(5)
    x = np.linspace(-1.0, 1.0, w)[None, :]
    y = np.linspace(-1.0, 1.0, h)[:, None]
    for _ in range(10):
        coef = rng.normal(0.0, 0.3, len(pairs))
        coef[0] = 4.5
        exact = sum(v * x**i * y**j for v, (i, j) in zip(coef, pairs, strict=True))
        field = prepare_module._poly_field(pairs, coef, w, h, 3)
        assert field.shape == (h, w) and field.dtype == np.float32
        tol = 1e-3 if min(h, w) >= 128 else 1e-5
        assert np.abs(field - exact).max() < tol


@pytest.mark.parametrize("size", [(640, 640), (500, 641), (9, 20)])
def test_the_light_at_the_differing_pixels_is_the_polynomial_there(size):
    """The two captures' light ratio is evaluated only at the pixels where the masks differ, now column by column
    (`_poly_at`) instead of as ten products of powers per pixel: the same values (to rounding), at any frame size,
    degree and pixel order, the frame's corners included."""
    h, w = size
    rng = np.random.default_rng(11)
    for deg in (0, 1, 3):
        pairs = prepare_module._terms(deg)
        coef = rng.normal(0.0, 0.5, len(pairs))
        xs = np.concatenate([[0, w - 1, 0, w - 1], rng.integers(0, w, 500)])
        ys = np.concatenate([[0, 0, h - 1, h - 1], rng.integers(0, h, 500)])
        px = xs * (2.0 / max(w - 1, 1)) - 1.0
        py = ys * (2.0 / max(h - 1, 1)) - 1.0
        direct = sum(v * px**i * py**j for v, (i, j) in zip(coef, pairs, strict=True))
        at = prepare_module._poly_at(pairs, coef, xs, ys, w, h, deg)
        assert at.shape == (len(xs),) and at.dtype == np.float64
        assert np.abs(at - direct).max() < 1e-12
