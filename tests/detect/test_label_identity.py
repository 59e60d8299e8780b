"""The labels are part of a model package's identity, signed or not.

Before: a sidecar with two labels swapped loaded under the same model id, and the station reported
every `open` as a `short` with nothing in the records to tell the two packages apart.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.config import DEFAULT_MODEL
from inspector.detect.base import ModelError
from inspector.detect.litert import LiteRTDetector
from inspector.detect.package import read_meta, sha256_file, write_sidecar
from inspector.domain import CLASS_NAMES

from .conftest import M320, copy_package


def swap_labels(model: Path, keep_identity: bool = True) -> list[str]:
    side = model.with_suffix(".json")
    meta = json.loads(side.read_text())
    labels = list(meta["labels"])
    labels[0], labels[1] = labels[1], labels[0]
    meta["labels"] = labels
    if not keep_identity:
        meta.pop("identity", None)
    side.write_text(json.dumps(meta, indent=2))
    return labels


def test_shipped_package_with_reordered_labels_is_refused(tmp_path, capsys):
    model = copy_package(DEFAULT_MODEL, tmp_path / "pkg")
    original = read_meta(model)
    assert original.identity is not None and original.model_id.endswith(original.identity[:12])
    labels = swap_labels(model)
    with pytest.raises(ModelError) as ei:
        LiteRTDetector(model, delegate="cpu", threads=1).load()
    msg = str(ei.value)
    assert "pcb-defect-det.json" in msg and str(labels) in msg and "re-export" in msg, msg
    # The same through `config check`, naming the key.
    toml = tmp_path / "station.toml"
    toml.write_text(f'[detector]\nmodel = "{model}"\n[plc]\nmode = "off"\n')
    rc = main(["config", "check", str(toml)])
    err = capsys.readouterr().err
    assert rc == 1 and "detector.model:" in err and "re-export" in err, err


def test_sidecar_without_identity_gets_another_model_id_when_labels_change(tmp_path):
    model = copy_package(M320, tmp_path / "pkg")
    assert read_meta(model).identity is None  # an older sidecar: identity computed, not stored
    first = LiteRTDetector(model, delegate="cpu", threads=1).load()
    swap_labels(model, keep_identity=False)
    second = LiteRTDetector(model, delegate="cpu", threads=1).load()
    assert first.model_id != second.model_id
    assert first.model_id.split("+")[0] == second.model_id.split("+")[0] == "synth-det@1.0.0"
    assert second.labels[:2] == (CLASS_NAMES[1], CLASS_NAMES[0])


def test_written_sidecar_carries_the_identity_and_the_model_id_follows_it(tmp_path):
    out = tmp_path / "pkg"
    out.mkdir()
    model = out / "m.tflite"
    shutil.copy(M320, model)
    meta = json.loads(M320.with_suffix(".json").read_text())
    write_sidecar(model, meta)
    written = read_meta(model)
    assert written.sha256 == sha256_file(model)
    assert written.identity == written.computed_identity
    assert written.model_id == f"synth-det@1.0.0+{written.identity[:12]}"
    swap_labels(model)
    with pytest.raises(ModelError, match=r"m\.json: labels .* are not the ones this package was written with"):
        read_meta(model)


def test_model_store_refuses_a_package_with_reordered_labels(tmp_path):
    """`pcb-inspector model install --allow-unsigned` of a relabelled copy: refused, nothing changes."""
    from inspector.model_store import ModelStore

    store = ModelStore(tmp_path / "store")
    good = store.install(copy_package(DEFAULT_MODEL, tmp_path / "good"), trusted_keys=[], require_signature=False)
    bad = copy_package(DEFAULT_MODEL, tmp_path / "bad")
    swap_labels(bad)
    with pytest.raises(ModelError, match="re-export the model instead of editing its labels"):
        store.install(bad, trusted_keys=[], require_signature=False)
    assert store.model_in(store.active_dir()) == good.path and store.previous_dir() is None
