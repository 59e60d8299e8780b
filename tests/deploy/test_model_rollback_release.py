"""Earlier releases stay installable: 1.9.2 and 1.8.0 (their own INT8 files, kept in models/releases) and 1.6.0
(1.8.0's file, its own sidecar) can be put back with `pcb-inspector model rollback` after the shipped release
is installed, and they run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.detect.package import read_meta
from inspector.model_store import ModelStore
from inspector.signing import generate_keypair, sign_model

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
FILE = "pcb-defect-det.tflite"
SHIPPED = read_meta(MODELS / FILE).version  # the release in models/ (1.7.0 when this test was written)
RELEASES = MODELS / "releases"
OLD_FILE = RELEASES / "pcb-defect-det-1.8.0.tflite"  # the file of releases 1.4.0 to 1.8.0


def _package(dest: Path, sidecar: Path, key: Path, model: Path = MODELS / FILE) -> Path:
    """A release as the plant ships it: the file, its sidecar and card, signed with the release key."""
    dest.mkdir(parents=True)
    shutil.copy(model, dest / FILE)
    shutil.copy(sidecar, dest / "pcb-defect-det.json")
    shutil.copy(MODELS / "MODEL_CARD.md", dest / "pcb-defect-det.md")
    sign_model(dest / FILE, key)
    return dest / FILE


def test_kept_releases_match_their_file():
    """Every sidecar kept in models/releases names the file kept beside it (its sha256), so each one installs."""
    from inspector.detect.package import sha256_file

    digest = sha256_file(OLD_FILE)
    for version in ("1.6.0", "1.7.0", "1.8.0"):
        meta = read_meta(RELEASES / f"pcb-defect-det-{version}.json")
        assert meta.version == version and meta.sha256 == digest, version
    # 1.9.0, 1.9.1 and 1.9.2 share one file, kept beside their sidecars (1.9.1 and 1.9.2 changed only the
    # preparation: `same_contrast`, then `same_material`); 1.10.0 is that recipe trained on every pair
    file_192 = RELEASES / "pcb-defect-det-1.9.2.tflite"
    for version, contrast, material in (("1.9.0", 0.0, "golden"), ("1.9.1", 1.4, "golden"), ("1.9.2", 1.4, "either")):
        meta = read_meta(RELEASES / f"pcb-defect-det-{version}.json")
        assert meta.version == version and meta.sha256 == sha256_file(file_192), version
        assert meta.input_domain.same_contrast == contrast and meta.input_domain.same_material == material, version
    shipped = read_meta(MODELS / FILE)
    assert shipped.sha256 != sha256_file(file_192)
    assert shipped.input_domain.same_contrast == 1.4 and shipped.input_domain.same_material == "either"


@pytest.mark.parametrize(
    ("version", "old_file"),
    [("1.6.0", OLD_FILE), ("1.9.2", RELEASES / "pcb-defect-det-1.9.2.tflite")],
)
def test_shipped_release_rolls_back_to_an_earlier_one_and_runs(tmp_path, capsys, version, old_file):
    """1.6.0: the seed's release (no cross-class suppression); 1.9.2: the release before the shipped one."""
    generate_keypair(tmp_path / "plant.key", tmp_path / "plant.pub")
    old = _package(tmp_path / "old", RELEASES / f"pcb-defect-det-{version}.json", tmp_path / "plant.key", old_file)
    new = _package(tmp_path / "new", MODELS / "pcb-defect-det.json", tmp_path / "plant.key")
    assert read_meta(old).version == version and read_meta(new).version == SHIPPED != version
    assert (read_meta(old).cross_class is None) == (version == "1.6.0") and read_meta(new).cross_class is not None
    store = tmp_path / "store"
    conf = tmp_path / "station.toml"
    conf.write_text(
        f"""
[detector]
model = "{store}/active/{FILE}"
delegate = "cpu"
trusted_keys = ["{tmp_path / "plant.pub"}"]
[plc]
mode = "off"
[storage]
database_url = "sqlite:///{tmp_path}/db.sqlite"
archive_dir = "{tmp_path}/archive"
"""
    )
    assert main(["model", "install", str(old), "--config", str(conf), "--wait", "0"]) == 0
    assert main(["model", "install", str(new), "--config", str(conf), "--wait", "0"]) == 0
    s = ModelStore(store)
    assert read_meta(s.active_dir() / FILE).version == SHIPPED
    assert main(["model", "rollback", "--config", str(conf), "--wait", "0"]) == 0
    active = s.active_dir() / FILE
    assert read_meta(active).version == version
    assert read_meta(s.previous_dir() / FILE).version == SHIPPED
    capsys.readouterr()
    # The rolled-back package runs: `inspect` on a synthetic board with its reference.
    import cv2

    from inspector.synth import make_board

    board = make_board(3, defect_rate=1.0)
    cv2.imwrite(str(tmp_path / "b.png"), board.image)
    cv2.imwrite(str(tmp_path / "r.png"), board.reference)
    rc = main(
        ["inspect", str(tmp_path / "b.png"), "--reference", str(tmp_path / "r.png"), "--model", str(active), "--json"]
    )
    out = capsys.readouterr().out
    assert rc in (0, 1) and f"pcb-defect-det@{version}" in out
