"""Signed model packages: sign, verify, refuse tampering, install/rollback through the store,
and a hot swap of a running station (real .tflite fixtures, real LiteRT)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.config import StationConfig
from inspector.detect.package import read_meta, write_sidecar
from inspector.model_store import ModelStore
from inspector.signing import SignatureError, generate_keypair, sign_model, verify_model
from inspector.station import build_station

from .conftest import wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
FILE = "pcb-defect-det.tflite"


def make_package(src: str, version: str, out: Path, key: Path | None, card: bool = True) -> Path:
    """A package named like the station's model, from a fixture model, with its own version."""
    out.mkdir(parents=True, exist_ok=True)
    model = out / FILE
    shutil.copy(FIXTURES / f"{src}.tflite", model)
    meta = json.loads((FIXTURES / f"{src}.json").read_text())
    meta.update(name="pcb-defect-det", version=version)
    write_sidecar(model, meta)
    if card:
        (out / "pcb-defect-det.md").write_text(f"# pcb-defect-det {version}\nTest fixture.\n")
    if key is not None:
        sign_model(model, key)
    return model


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    generate_keypair(d / "plant.key", d / "plant.pub")
    generate_keypair(d / "other.key", d / "other.pub")
    return d


def test_sign_verify_and_refuse_tampering(keys, tmp_path):
    model = make_package("synth-det-320", "1.0.0", tmp_path / "p", keys / "plant.key")
    info = verify_model(model, [keys / "plant.pub"])
    assert set(info.files) == {FILE, "pcb-defect-det.json", "pcb-defect-det.md"}
    with pytest.raises(SignatureError, match="does not verify with any trusted key"):
        verify_model(model, [keys / "other.pub"])  # signed by another plant
    # Tampered card, tampered weights, a new unsigned file, no signature at all:
    card = model.with_suffix(".md")
    card.write_text(card.read_text() + "edited\n")
    with pytest.raises(SignatureError, match="pcb-defect-det.md.*tampered"):
        verify_model(model, [keys / "plant.pub"])
    sign_model(model, keys / "plant.key")
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model.write_bytes(bytes(blob))
    with pytest.raises(SignatureError, match=f"{FILE}.*tampered"):
        verify_model(model, [keys / "plant.pub"])
    sig = json.loads(model.with_suffix(".sig").read_text())
    sig["files"][FILE] = "0" * 64  # editing the manifest breaks the signature itself
    model.with_suffix(".sig").write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_model(model, [keys / "plant.pub"])
    model.with_suffix(".sig").unlink()
    with pytest.raises(SignatureError, match="not signed"):
        verify_model(model, [keys / "plant.pub"])


def test_station_refuses_unsigned_model_and_rejects(keys, tmp_path):
    model = make_package("synth-det-320", "1.0.0", tmp_path / "p", key=None)
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "fps": 20.0, "demo_boards": 3},
            "detector": {"model": str(model), "delegate": "cpu", "trusted_keys": [str(keys / "plant.pub")]},
            "plc": {"mode": "off"},
            "storage": {"archive_dir": str(tmp_path / "a")},
        }
    )
    station = build_station(cfg, with_storage=False)
    results = []
    station.pipeline.on_result(results.append)
    station.start()
    try:
        assert wait_for(lambda: len(results) >= 2, 30)
    finally:
        station.stop()
    state = station.health.get("model")
    assert not state.ok and "not signed" in state.reason
    assert all(r.verdict.value == "REJECT" and r.reason == "model not loaded" for r in results)


def test_install_hot_swaps_running_station_and_rollback(keys, tmp_path, capsys):
    store = tmp_path / "models"
    v1 = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    v2 = make_package("synth-det-640", "2.0.0", tmp_path / "v2", keys / "plant.key")
    tar = tmp_path / "v2.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        for p in sorted((tmp_path / "v2").iterdir()):
            t.add(p, arcname=p.name)
    conf = tmp_path / "station.toml"
    conf.write_text(
        f"""
[camera]
type = "replay"
fps = 10.0
demo_boards = 4
[detector]
model = "{store}/active/{FILE}"
delegate = "cpu"
trusted_keys = ["{keys / "plant.pub"}"]
[plc]
mode = "off"
[storage]
database_url = "sqlite:///{tmp_path}/db.sqlite"
archive_dir = "{tmp_path}/archive"
"""
    )
    # First install (no station running yet): verified, warmed up, activated.
    assert main(["model", "install", str(v1), "--config", str(conf), "--wait", "0"]) == 0
    out = capsys.readouterr().out
    assert "installed pcb-defect-det@1.0.0" in out and "signature verified" in out
    id1 = read_meta(v1).model_id
    id2 = read_meta(v2).model_id

    from inspector.config import load_config

    cfg = load_config(conf)
    station = build_station(cfg, with_storage=False)
    watcher = next(p for p in station.parts if getattr(p, "name", "") == "model-watcher")
    watcher.interval_s = 0.1
    station.start()
    try:
        assert wait_for(lambda: station.pipeline.results_published >= 2, 60)
        assert station.pipeline.detector_info.model_id == id1
        before = station.pipeline.results_published
        # An unsigned package is refused by the installer and nothing changes.
        bad = make_package("synth-det-640", "3.0.0", tmp_path / "bad", key=None)
        assert main(["model", "install", str(bad), "--config", str(conf), "--wait", "0"]) == 2
        assert "not signed" in capsys.readouterr().err
        # The signed v2 (as a .tar.gz) is installed while the station runs: the watcher hot-swaps it.
        assert main(["model", "install", str(tar), "--config", str(conf), "--wait", "0"]) == 0
        assert wait_for(lambda: station.pipeline.detector_info.model_id == id2, 60), watcher.last_error
        assert wait_for(lambda: station.pipeline.results_published > before + 2, 30)
        assert main(["model", "rollback", "--config", str(conf), "--wait", "0"]) == 0
        assert wait_for(lambda: station.pipeline.detector_info.model_id == id1, 60), watcher.last_error
        assert station.health.get("model").ok
    finally:
        station.stop()
    s = ModelStore(store)
    assert s.active_dir().name.startswith("pcb-defect-det-1.0.0") and s.previous_dir().name.startswith(
        "pcb-defect-det-2.0.0"
    )
    audit = [json.loads(line) for line in (store / "audit.jsonl").read_text().splitlines()]
    actions = [a["action"] for a in audit]
    assert actions.count("model.install") == 2 and "model.rollback" in actions and actions.count("model.swap") == 2
    assert audit[-1]["action"] in {"model.swap", "model.rollback"}
    # The CLI's installs and the rollback are in the records database's signed audit chain too.
    from inspector import station_key
    from inspector.storage import audit as chain
    from inspector.storage.db import open_database

    db = open_database(f"sqlite:///{tmp_path}/db.sqlite", migrate=False)
    try:
        events = list(reversed(chain.list_events(db, chain.AuditFilter(action="model"), limit=None)))
        assert [(e.action, e.source) for e in events] == [
            ("model.install", "cli"),
            ("model.install", "cli"),
            ("model.rollback", "cli"),
        ]
        assert events[0].after["folder"].startswith("pcb-defect-det-1.0.0")
        assert chain.verify(db, station_key.load(tmp_path / "station.key").verifier()).ok
    finally:
        db.close()


def test_keygen_and_sign_commands(tmp_path, capsys):
    assert main(["model", "keygen", str(tmp_path / "k.key"), str(tmp_path / "k.pub")]) == 0
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert main(["model", "keygen", str(tmp_path / "k.key"), str(tmp_path / "k2.pub")]) == 2  # never overwrite
    model = make_package("synth-det-320", "1.0.0", tmp_path / "p", key=None)
    assert main(["model", "sign", str(model), "--key", str(tmp_path / "k.key"), "--tar", str(tmp_path / "p.tgz")]) == 0
    assert main(["model", "verify", str(model), "--key", str(tmp_path / "k.pub")]) == 0
    with tarfile.open(tmp_path / "p.tgz") as t:
        assert sorted(t.getnames()) == sorted([FILE, "pcb-defect-det.json", "pcb-defect-det.md", "pcb-defect-det.sig"])
