"""Model weights at rest: packages encrypted for one station or the fleet, decrypted in memory only.

Real parts: the committed fixture .tflite, real LiteRT, the real model store and `pcb-inspector model`
commands, real Ed25519 station keys (inspector.station_key), AES-GCM from `cryptography`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from inspector import station_key
from inspector.cli import main
from inspector.config import load_config
from inspector.detect.base import ModelError
from inspector.detect.factory import create_detector
from inspector.detect.litert import LiteRTDetector
from inspector.detect.package import write_sidecar
from inspector.model_crypt import ModelKeys, decrypt, device_binding, encrypt, is_encrypted, new_plant_key
from inspector.signing import generate_keypair
from inspector.station import build_station
from inspector.synth import make_board

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
FILE = "pcb-defect-det.tflite"


def plant_package(out: Path) -> Path:
    """The plant's plaintext package (a fixture model named like the station's)."""
    out.mkdir(parents=True, exist_ok=True)
    model = out / FILE
    shutil.copy(FIXTURES / "synth-det-320.tflite", model)
    meta = json.loads((FIXTURES / "synth-det-320.json").read_text())
    meta.update(name="pcb-defect-det", version="1.0.0")
    write_sidecar(model, meta)
    (out / "pcb-defect-det.md").write_text("# pcb-defect-det 1.0.0\nTest fixture.\n")
    return model


@pytest.fixture()
def plant(tmp_path):
    """Plant side: the plaintext package, the plant model key, the release signing key."""
    d = tmp_path / "plant"
    model = plant_package(d / "pkg")
    new_plant_key(d / "plant-model.key")
    generate_keypair(d / "release.key", d / "release.pub")
    return d, model


def make_station(root: Path, machine_id: str, plant_dir: Path, plant_key: Path | None = None) -> Path:
    """A station folder: its machine id, its station key, and a station.toml using them."""
    root.mkdir(parents=True)
    (root / "machine-id").write_text(machine_id + "\n")
    station_key.create(root / "station.key")
    conf = root / "station.toml"
    conf.write_text(
        f"""
[detector]
model = "{root}/models/active/{FILE}"
delegate = "cpu"
threads = 1
trusted_keys = ["{plant_dir / "release.pub"}"]
model_key = "{plant_key or plant_dir / "plant-model.key"}"
machine_id_file = "{root / "machine-id"}"
[plc]
mode = "off"
[storage]
database_url = "sqlite:///{root}/db.sqlite"
station_key = "{root / "station.key"}"
"""
    )
    return conf


def test_envelope_opens_only_with_the_keys_it_was_made_for(tmp_path):
    plain = os.urandom(4096)
    k1, k2 = os.urandom(32), os.urandom(32)
    station_key.create(tmp_path / "a.key")
    station_key.create(tmp_path / "b.key")
    bind_a = device_binding(tmp_path / "a.key", "machine-a")
    fleet = encrypt(plain, k1)
    only_a = encrypt(plain, k1, bind_a)
    assert is_encrypted(fleet) and plain not in fleet and plain not in only_a
    assert decrypt(fleet, ModelKeys(k1), "m") == plain
    assert decrypt(fleet, ModelKeys(k1, bind_a), "m") == plain  # a bound station also runs fleet packages
    assert decrypt(only_a, ModelKeys(k1, bind_a), "m") == plain
    with pytest.raises(ModelError, match="another plant"):
        decrypt(fleet, ModelKeys(k2), "m")
    with pytest.raises(ModelError, match="made for another station"):  # same station key, other machine
        decrypt(only_a, ModelKeys(k1, device_binding(tmp_path / "a.key", "machine-b")), "m")
    with pytest.raises(ModelError, match="made for another station"):  # same machine, other station key
        decrypt(only_a, ModelKeys(k1, device_binding(tmp_path / "b.key", "machine-a")), "m")
    with pytest.raises(ModelError, match="no device binding"):
        decrypt(only_a, ModelKeys(k1), "m")
    with pytest.raises(ModelError, match="no model key"):
        decrypt(only_a, None, "m")
    tampered = bytearray(only_a)
    tampered[-40] ^= 1
    with pytest.raises(ModelError, match="altered or truncated"):
        decrypt(bytes(tampered), ModelKeys(k1, bind_a), "m")


def _files_holding(roots: list[Path], needle: bytes, since: float | None = None) -> list[Path]:
    found = []
    for root in roots:
        if root.is_file():
            paths = [root]
        else:
            paths = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for p in paths:
            try:
                if since is not None and p.stat().st_mtime < since:
                    continue
                if p.stat().st_size < 100_000_000 and needle in p.read_bytes():
                    found.append(p)
            except OSError:
                continue
    return found


def test_encrypted_package_installs_and_runs_on_its_station_only(plant, tmp_path, capsys):
    plant_dir, model = plant
    plain = model.read_bytes()
    needle = plain[len(plain) // 2 : len(plain) // 2 + 64]  # a slice of the weights
    good = make_station(tmp_path / "station-a", "a1b2c3d4e5f60718293a4b5c6d7e8f90", plant_dir)
    enc_dir = tmp_path / "to-station-a"
    rc = main(
        [
            "model",
            "encrypt",
            str(model),
            "--key-file",
            str(plant_dir / "plant-model.key"),
            "--machine-id",
            "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "--station-key",
            str(tmp_path / "station-a" / "station.key"),
            "--out",
            str(enc_dir),
            "--sign-key",
            str(plant_dir / "release.key"),
        ]
    )
    assert rc == 0
    assert "this station only" in capsys.readouterr().out
    assert is_encrypted((enc_dir / FILE).read_bytes()) and not _files_holding([enc_dir], needle)

    started = time.time()
    scratch = tmp_path / "scratch-tmp"
    scratch.mkdir()
    old_tempdir, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        # The station it was made for: install (verify + warm-up through the real decrypting loader) and run.
        assert main(["model", "install", str(enc_dir / FILE), "--config", str(good), "--wait", "0"]) == 0
        assert "installed pcb-defect-det@1.0.0" in capsys.readouterr().out
        cfg = load_config(good)
        det = create_detector(cfg.detector)
        info = det.load()
        ref = LiteRTDetector(model, delegate="cpu", threads=1)
        ref.load()
        board = make_board(11, 320)
        got = det.detect(board.image, board.reference, None)
        want = ref.detect(board.image, board.reference, None)
        assert info.model_id == ref.info.model_id
        assert [(d.class_id, d.box) for d in got] == [(d.class_id, d.box) for d in want]
        assert np.isclose([d.score for d in got], [d.score for d in want]).all()
        det.close()
        ref.close()
        # The whole station runs on it (its own detector built from station.toml, boards through the pipeline).
        station = build_station(cfg, with_storage=False)
        station.start()
        try:
            deadline = time.monotonic() + 60
            while station.pipeline.results_published < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert station.pipeline.results_published >= 3
            assert station.health.get("model").ok and station.pipeline.detector_info.model_id == info.model_id
        finally:
            station.stop()
    finally:
        tempfile.tempdir = old_tempdir
    # The decrypted weights never touched the disk: not in the store, the station folder, the scratch
    # temp dir, nor any file written in /tmp or /dev/shm since the install began.
    installed = tmp_path / "station-a" / "models"
    assert is_encrypted((installed / "active" / FILE).read_bytes())
    leaks = _files_holding([tmp_path / "station-a", scratch, enc_dir], needle)
    leaks += [p for p in _files_holding([Path("/dev/shm")], needle, since=started)]
    leaks += [
        p
        for p in Path(tempfile.gettempdir()).iterdir()
        if p.is_file() and p.stat().st_mtime >= started and _files_holding([p], needle)
    ]
    assert not leaks, leaks

    # Another station (other machine id, its own station key) refuses it with a clear error.
    other = make_station(tmp_path / "station-b", "ffffffffffffffffffffffffffffffff", plant_dir)
    assert main(["model", "install", str(enc_dir / FILE), "--config", str(other), "--wait", "0"]) == 2
    err = capsys.readouterr().err
    assert "made for another station" in err and FILE in err
    assert not (tmp_path / "station-b" / "models" / "active").exists()
    # A station of another plant (other plant key) too.
    new_plant_key(tmp_path / "other-plant.key")
    stranger = make_station(
        tmp_path / "station-c", "a1b2c3d4e5f60718293a4b5c6d7e8f90", plant_dir, plant_key=tmp_path / "other-plant.key"
    )
    assert main(["model", "install", str(enc_dir / FILE), "--config", str(stranger), "--wait", "0"]) == 2
    assert "another plant" in capsys.readouterr().err


def test_fleet_package_and_binding_file(plant, tmp_path, capsys):
    plant_dir, model = plant
    a = make_station(tmp_path / "station-a", "1111", plant_dir)
    b = make_station(tmp_path / "station-b", "2222", plant_dir)
    # Fleet: every station with the plant key runs it.
    assert (
        main(
            [
                "model",
                "encrypt",
                str(model),
                "--key-file",
                str(plant_dir / "plant-model.key"),
                "--fleet",
                "--out",
                str(tmp_path / "fleet"),
                "--sign-key",
                str(plant_dir / "release.key"),
            ]
        )
        == 0
    )
    for conf in (a, b):
        assert main(["model", "install", str(tmp_path / "fleet" / FILE), "--config", str(conf), "--wait", "0"]) == 0
    # Station-bound through the binding file the station exports: b's binding runs on b, not on a.
    assert main(["model", "binding", "--config", str(b), "--out", str(tmp_path / "b.binding")]) == 0
    assert (tmp_path / "b.binding").stat().st_mode & 0o777 == 0o600
    assert (
        main(
            [
                "model",
                "encrypt",
                str(model),
                "--key-file",
                str(plant_dir / "plant-model.key"),
                "--binding",
                str(tmp_path / "b.binding"),
                "--out",
                str(tmp_path / "for-b"),
                "--sign-key",
                str(plant_dir / "release.key"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["model", "install", str(tmp_path / "for-b" / FILE), "--config", str(b), "--wait", "0"]) == 0
    assert main(["model", "install", str(tmp_path / "for-b" / FILE), "--config", str(a), "--wait", "0"]) == 2
    assert "made for another station" in capsys.readouterr().err
    # Without a model key configured the station says what is missing.
    det = LiteRTDetector(tmp_path / "for-b" / FILE, delegate="cpu", threads=1)
    with pytest.raises(ModelError, match="detector.model_key"):
        det.load()
    # Wrong usage of encrypt is a clear error, not a traceback.
    assert (
        main(
            [
                "model",
                "encrypt",
                str(model),
                "--key-file",
                str(plant_dir / "plant-model.key"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "exactly one of --fleet" in capsys.readouterr().err
