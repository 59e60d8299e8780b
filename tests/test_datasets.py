from pathlib import Path

import pytest

from inspector.datasets.deeppcb import DatasetError, load_list, split_by_group
from inspector.datasets.voc import load_voc_folder, read_voc

DEEPPCB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "deeppcb"

VOC = """<annotation><filename>01_missing_hole_01.jpg</filename>
<size><width>3034</width><height>1586</height><depth>3</depth></size>
<object><name>missing_hole</name><bndbox><xmin>2459</xmin><ymin>1274</ymin><xmax>2530</xmax><ymax>1329</ymax></bndbox></object>
<object><name>Mouse_bite</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>40</xmax><ymax>60</ymax></bndbox></object>
</annotation>"""


def test_voc_maps_pku_names(tmp_path):
    (tmp_path / "a.xml").write_text(VOC)
    img = read_voc(tmp_path / "a.xml")
    assert img.width == 3034 and img.boxes.shape == (2, 4)
    assert img.classes.tolist() == [5, 2]  # pin-hole, mousebite
    assert len(load_voc_folder(tmp_path)) == 1


def test_voc_errors_name_the_problem(tmp_path):
    (tmp_path / "b.xml").write_text(VOC.replace("missing_hole", "scratch"))
    with pytest.raises(DatasetError, match="unknown class 'scratch'"):
        read_voc(tmp_path / "b.xml")
    (tmp_path / "c.xml").write_text("<annotation>")
    with pytest.raises(DatasetError, match="not a readable VOC"):
        read_voc(tmp_path / "c.xml")


@pytest.mark.skipif(not DEEPPCB.is_dir(), reason="DeepPCB is only on the development machine (../shared)")
def test_deeppcb_split_holds_out_whole_groups():
    pairs = load_list(DEEPPCB)
    train, val = split_by_group(pairs)
    assert len(pairs) == 1000 and len(val) == 161
    assert not {p.group for p in train} & {p.group for p in val}


def test_deeppcb_list_errors(tmp_path):
    (tmp_path / "l.txt").write_text("group1/1/1.jpg group1/1_not/1.txt\n")
    with pytest.raises(DatasetError, match="not found"):
        load_list(tmp_path, tmp_path / "l.txt")
