import numpy as np
import pytest

from inspector.config import Recipe
from inspector.decision import RecipeError, RecipeRules
from inspector.domain import CLASS_NAMES, Detection, Verdict
from inspector.synth import make_board


def test_boards_have_defects_only_where_the_truth_says():
    kinds = set()
    for seed in range(40):
        b = make_board(seed)
        diff = b.image != b.reference
        if not b.defects:
            assert not diff.any(), f"seed {seed}: a clean board differs from its reference"
            continue
        covered = np.zeros_like(diff)
        for x1, y1, x2, y2, c in b.defects:
            covered[y1 : y2 + 1, x1 : x2 + 1] = True
            kinds.add(c)
            assert diff[y1 : y2 + 1, x1 : x2 + 1].any(), f"seed {seed}: box {x1, y1, x2, y2} holds no change"
        assert not (diff & ~covered).any(), f"seed {seed}: a change lies outside every box"
    assert kinds == set(range(1, len(CLASS_NAMES) + 1))


def test_same_seed_same_board():
    a, b = make_board(5), make_board(5)
    assert np.array_equal(a.image, b.image) and a.defects == b.defects


def test_boards_of_one_design_share_the_reference_and_differ_by_their_defects(tmp_path):
    import cv2

    from inspector.synth import write_boards

    a, b = make_board(1, design=99), make_board(2, design=99)
    assert np.array_equal(a.reference, b.reference) and a.defects != b.defects
    assert not np.array_equal(make_board(1).reference, make_board(2).reference)  # no design: one product each
    folder = write_boards(tmp_path, 6, seed=3, designs=2)
    refs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(folder.glob("*_temp.png"))]
    assert all(np.array_equal(refs[i], refs[i % 2]) for i in range(6))
    assert not np.array_equal(refs[0], refs[1])
    with pytest.raises(ValueError, match="at least one board design"):
        write_boards(tmp_path / "x", 2, designs=0)


def _det(x, y, cls=1, score=0.9, size=20):
    return Detection((x, y, x + size, y + size), cls, score)


def test_thresholds_size_and_roi():
    rules = RecipeRules(
        Recipe(thresholds={"open": 0.8}, min_defect_px=15, roi=[(0, 0), (300, 0), (300, 300), (0, 300)])
    )
    defaults = {c: 0.5 for c in range(1, 7)}
    d = rules.decide([_det(10, 10, 1, 0.7)], defaults)
    assert d.verdict is Verdict.PASS and d.ignored == 1  # below the recipe's open threshold
    assert rules.decide([_det(10, 10, 2, 0.6)], defaults).verdict is Verdict.REJECT  # short uses the default 0.5
    assert rules.decide([_det(10, 10, 2, 0.6, size=10)], defaults).verdict is Verdict.PASS  # too small
    assert rules.decide([_det(400, 400, 2, 0.9)], defaults).verdict is Verdict.PASS  # outside the ROI
    assert rules.decide([], defaults).verdict is Verdict.PASS


def test_recipe_errors_name_the_file(tmp_path):
    with pytest.raises(RecipeError, match="reference image .*missing.png does not exist"):
        RecipeRules(Recipe(reference=tmp_path / "missing.png"))
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(RecipeError, match="not a readable image"):
        RecipeRules(Recipe(reference=tmp_path / "junk.png"))
    with pytest.raises(RecipeError, match="no scale calibration"):
        RecipeRules(Recipe(min_defect_mm=0.2))


def test_a_reference_of_an_unsupported_pixel_type_is_refused_naming_the_file(tmp_path):
    import cv2

    f32 = tmp_path / "golden-float.tiff"
    assert cv2.imwrite(str(f32), np.full((64, 64), 0.5, np.float32))  # a 32-bit float TIFF, as some tools export
    with pytest.raises(RecipeError, match=r"reference image .*golden-float.tiff: unsupported pixel type float32"):
        RecipeRules(Recipe(reference=f32))
    colour16 = tmp_path / "golden-16bit.png"
    assert cv2.imwrite(str(colour16), np.full((64, 64, 3), 40000, np.uint16))
    rules = RecipeRules(Recipe(reference=colour16))  # 16-bit colour is converted, by the model's colour rule
    assert rules.reference.dtype == np.uint8 and rules.reference_for("luma").dtype == np.uint8
    assert int(rules.reference[0, 0]) == 40000 >> 8
