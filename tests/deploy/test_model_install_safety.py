"""`pcb-inspector model install/rollback` never leaves a station without a loadable model.

Real signed packages (the committed fixture .tflite, real Ed25519 keys), the real store and the real
CLI (`inspector.cli.main`). Three ways an install used to go wrong:

- a package whose model file has another name than the one the station loads (`detector.model =
  STORE/active/<file>`) was switched in, and the next start had no model;
- a power cut right after the switch could leave `active` naming a folder whose files never reached
  the disk (no fsync), and re-installing the active version deleted the live folder before the new
  one was renamed in; a power cut cannot be simulated, so the tests record every `os.fsync` (by
  inode, still calling the real one) and check the live package after every rename and delete;
- a truncated or damaged .tar.gz ended in a Python traceback instead of one error line.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.config import StationConfig
from inspector.detect.package import read_meta, write_sidecar
from inspector.model_store import ModelStore
from inspector.signing import SignatureError, generate_keypair, sign_model, verify_model
from inspector.station import build_station

from .conftest import wait_for
from .test_model_package_tar import tar_python  # noqa: F401  (fixture: with and without tar filters)
from .test_model_updates import FILE, FIXTURES, make_package

OTHER = "pcb-defect-det-v2.tflite"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    generate_keypair(d / "plant.key", d / "plant.pub")
    return d


def make_other_name(out: Path, key: Path, version: str = "2.0.0") -> Path:
    """A correctly signed release built with another model file name than the station's slot."""
    out.mkdir(parents=True)
    model = out / OTHER
    shutil.copy(FIXTURES / "synth-det-320.tflite", model)
    meta = json.loads((FIXTURES / "synth-det-320.json").read_text())
    meta.update(name="pcb-defect-det", version=version)
    write_sidecar(model, meta)
    sign_model(model, key)
    return model


def tar_of(folder: Path, tar: Path) -> Path:
    with tarfile.open(tar, "w:gz") as t:
        for p in sorted(folder.iterdir()):
            t.add(p, arcname=p.name)
    return tar


def station_file(tmp_path: Path, keys: Path, store: Path) -> Path:
    conf = tmp_path / "station.toml"
    conf.write_text(
        f"""
[camera]
type = "replay"
fps = 10.0
demo_boards = 3
[detector]
model = "{store}/active/{FILE}"
delegate = "cpu"
trusted_keys = ["{keys / "plant.pub"}"]
[plc]
mode = "off"
[storage]
archive_dir = "{tmp_path}/archive"
"""
    )
    return conf


def install(conf: Path, package: Path) -> int:
    return main(["model", "install", str(package), "--config", str(conf), "--wait", "0"])


def error_line(err: str) -> str:
    """The CLI's stderr must be one `error:` line (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------- model file name


def test_install_refuses_a_package_whose_model_file_is_not_the_one_the_station_loads(keys, tmp_path, capsys):
    store = tmp_path / "store"
    conf = station_file(tmp_path, keys, store)
    v1 = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    assert install(conf, v1) == 0
    s = ModelStore(store)
    active = s.active_dir()
    capsys.readouterr()
    other = make_other_name(tmp_path / "v2", keys / "plant.key")
    assert verify_model(other, [keys / "plant.pub"])  # correctly signed: only its name is wrong
    for package in (other, tar_of(other.parent, tmp_path / "v2.tar.gz")):
        assert install(conf, package) == 2
        line = error_line(capsys.readouterr().err)
        assert OTHER in line and FILE in line, line
        # Nothing switched, nothing left behind: the station still loads v1 from `active`.
        assert s.active_dir() == active and s.previous_dir() is None
        assert read_meta(store / "active" / FILE).version == "1.0.0"
        assert [p.name for p in s.versions.iterdir()] == [active.name]
        assert not list(store.glob(".staging-*"))
    audit = [json.loads(line)["action"] for line in (store / "audit.jsonl").read_text().splitlines()]
    assert audit == ["model.install"]


def test_rollback_refuses_a_previous_package_whose_model_file_is_not_the_one_the_station_loads(keys, tmp_path, capsys):
    store = tmp_path / "store"
    conf = station_file(tmp_path, keys, store)
    # A store that already holds a package with another name (put there through the library, as an
    # older release of the installer did): rolling back to it would leave the station without a model.
    ModelStore(store).install(make_other_name(tmp_path / "v2", keys / "plant.key"), trusted_keys=[keys / "plant.pub"])
    v1 = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    assert install(conf, v1) == 0
    s = ModelStore(store)
    active, previous = s.active_dir(), s.previous_dir()
    assert (previous / OTHER).is_file()
    capsys.readouterr()
    assert main(["model", "rollback", "--config", str(conf), "--wait", "0"]) == 2
    line = error_line(capsys.readouterr().err)
    assert OTHER in line and FILE in line, line
    assert (s.active_dir(), s.previous_dir()) == (active, previous)
    assert read_meta(store / "active" / FILE).version == "1.0.0"


def test_verify_names_a_missing_model_file_first(keys, tmp_path, capsys):
    folder = make_other_name(tmp_path / "v2", keys / "plant.key").parent
    missing = folder / FILE  # what the station loads; neither it nor its .sig is there
    with pytest.raises(SignatureError, match=rf"{FILE}: model file missing"):
        verify_model(missing, [keys / "plant.pub"])
    assert main(["model", "verify", str(missing), "--key", str(keys / "plant.pub")]) == 2
    line = error_line(capsys.readouterr().err)
    assert "model file missing" in line and "signature file missing" not in line, line
    # Signed, then the model file lost: still the model file, not "a signed file", is what is missing.
    model = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    model.unlink()
    with pytest.raises(SignatureError, match=rf"{FILE}: model file missing"):
        verify_model(model, [keys / "plant.pub"])


def test_station_without_its_model_file_says_model_file_missing(keys, tmp_path):
    """The symptom the other name led to: `active` without the configured file; the lamp says why."""
    store = tmp_path / "store"
    ModelStore(store).install(make_other_name(tmp_path / "v2", keys / "plant.key"), trusted_keys=[keys / "plant.pub"])
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "fps": 20.0, "demo_boards": 3},
            "detector": {
                "model": str(store / "active" / FILE),
                "delegate": "cpu",
                "trusted_keys": [str(keys / "plant.pub")],
            },
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
    assert not state.ok and "model file missing" in state.reason, state.reason
    assert all(r.verdict.value == "REJECT" and r.reason == "model not loaded" for r in results)


# ---------------------------------------------------------------------------------- power cut


class DiskLog:
    """Records fsyncs (by inode: a renamed folder keeps it) and checks the live package at each step."""

    def __init__(self, store: Path, pub: Path, monkeypatch: pytest.MonkeyPatch):
        self.store = store
        self.pub = pub
        self.events: list[tuple[str, object]] = []
        self.broken: list[str] = []
        real_fsync, real_replace, real_rename, real_rmtree = os.fsync, os.replace, os.rename, shutil.rmtree

        def fsync(fd: int) -> None:
            st = os.fstat(fd)
            self.events.append(("fsync", (st.st_dev, st.st_ino)))
            real_fsync(fd)

        def checked(name: str, real: Callable[..., object]) -> Callable[..., object]:
            def call(*args: object, **kw: object) -> object:
                self.check(f"before {name}{args[:2]}")
                out = real(*args, **kw)
                self.events.append((name, str(args[1]) if len(args) > 1 else str(args[0])))
                self.check(f"after {name}{args[:2]}")
                return out

            return call

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", checked("replace", real_replace))
        monkeypatch.setattr(os, "rename", checked("rename", real_rename))
        monkeypatch.setattr(shutil, "rmtree", checked("rmtree", real_rmtree))

    def check(self, when: str) -> None:
        """Once `active` exists it must always name a complete, verifiable package."""
        link = self.store / "active"
        if not link.is_symlink():
            return
        try:
            verify_model(link / FILE, [self.pub])
        except Exception as exc:
            self.broken.append(f"{when}: {exc}")

    def fsynced_before_switch(self) -> set[tuple[int, int]]:
        """The inodes fsynced before the last rename onto `STORE/active`."""
        switch = max(
            i for i, (kind, arg) in enumerate(self.events) if kind == "replace" and arg == str(self.store / "active")
        )
        return {arg for kind, arg in self.events[:switch] if kind == "fsync"}  # type: ignore[misc]


def _inode(p: Path) -> tuple[int, int]:
    st = p.stat()
    return (st.st_dev, st.st_ino)


def assert_durable_before_switch(log: DiskLog, store: Path) -> None:
    active = ModelStore(store).active_dir()
    synced = log.fsynced_before_switch()
    files = sorted(p for p in active.iterdir() if p.is_file())
    assert {p.name for p in files} >= {FILE, "pcb-defect-det.json", "pcb-defect-det.sig"}
    not_synced = [p.name for p in files if _inode(p) not in synced]
    assert not not_synced, f"package files not fsynced before `active` was switched: {not_synced}"
    assert _inode(active) in synced, "the package folder was not fsynced before `active` was switched"
    assert _inode(active.parent) in synced, "versions/ was not fsynced after the folder was renamed in"


@pytest.mark.usefixtures("tar_python")
def test_install_makes_every_package_file_durable_before_switching_active(keys, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    conf = station_file(tmp_path, keys, store)
    v1 = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    v2 = make_package("synth-det-640", "2.0.0", tmp_path / "v2", keys / "plant.key")
    log = DiskLog(store, keys / "plant.pub", monkeypatch)
    assert install(conf, v1) == 0  # copied from a folder
    assert_durable_before_switch(log, store)
    assert install(conf, tar_of(v2.parent, tmp_path / "v2.tar.gz")) == 0  # unpacked from a tarball
    assert_durable_before_switch(log, store)
    assert read_meta(store / "active" / FILE).version == "2.0.0"
    assert not log.broken, log.broken


def test_reinstalling_the_active_version_never_leaves_active_without_a_package(keys, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    conf = station_file(tmp_path, keys, store)
    v1 = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    v2 = make_package("synth-det-640", "2.0.0", tmp_path / "v2", keys / "plant.key")
    assert install(conf, v1) == 0 and install(conf, v2) == 0
    s = ModelStore(store)
    log = DiskLog(store, keys / "plant.pub", monkeypatch)
    # The same package again (an operator repeating the command): the live folder stays as it is.
    live = s.active_dir()
    files = {p.name: _inode(p) for p in live.iterdir()}
    assert install(conf, v2) == 0
    assert not log.broken, log.broken
    assert s.active_dir() == live and {p.name: _inode(p) for p in live.iterdir()} == files
    assert read_meta(s.previous_dir() / FILE).version == "1.0.0"
    # The same version re-released with another model card (same folder name): installed beside the
    # live folder, never over it; `previous` still holds the version before.
    card = v2.with_suffix(".md")
    card.write_text(card.read_text() + "Re-released with a corrected card.\n")
    sign_model(v2, keys / "plant.key")
    assert install(conf, tar_of(v2.parent, tmp_path / "v2b.tar.gz")) == 0
    assert not log.broken, log.broken
    assert_durable_before_switch(log, store)
    assert (store / "active" / "pcb-defect-det.md").read_text() == card.read_text()
    assert read_meta(s.previous_dir() / FILE).version == "1.0.0"
    assert sorted(p.resolve() for p in s.versions.iterdir()) == sorted([s.active_dir(), s.previous_dir()])
    assert main(["model", "rollback", "--config", str(conf), "--wait", "0"]) == 0
    assert read_meta(store / "active" / FILE).version == "1.0.0"
    assert not log.broken, log.broken


# ---------------------------------------------------------------------------------- damaged archive


def _damaged(tar: Path, out: Path) -> list[Path]:
    blob = tar.read_bytes()
    cuts = []
    for frac in (0.5, 0.9, 0.99):
        p = out / f"cut{int(frac * 100)}.tar.gz"
        p.write_bytes(blob[: int(len(blob) * frac)])
        cuts.append(p)
    flipped = bytearray(blob)
    flipped[len(flipped) // 2] ^= 0xFF  # a bit error in the compressed data
    (out / "flipped.tar.gz").write_bytes(bytes(flipped))
    return [*cuts, out / "flipped.tar.gz"]


@pytest.mark.usefixtures("tar_python")
def test_truncated_or_damaged_archive_is_one_error_line_and_installs_nothing(keys, tmp_path, capsys):
    store = tmp_path / "store"
    conf = station_file(tmp_path, keys, store)
    v1 = make_package("synth-det-320", "1.0.0", tmp_path / "v1", keys / "plant.key")
    for bad in _damaged(tar_of(v1.parent, tmp_path / "v1.tar.gz"), tmp_path):
        assert install(conf, bad) == 2, bad.name
        line = error_line(capsys.readouterr().err)
        assert f"{bad}: truncated or damaged archive" in line, line
        assert not (store / "active").is_symlink(), bad.name
        assert not list(store.glob(".staging-*")) and not list((store / "versions").iterdir()), bad.name
    # With a good package already active, a damaged one changes nothing.
    assert install(conf, v1) == 0
    active = ModelStore(store).active_dir()
    capsys.readouterr()
    assert install(conf, tmp_path / "cut90.tar.gz") == 2
    assert "truncated or damaged archive" in error_line(capsys.readouterr().err)
    assert ModelStore(store).active_dir() == active and ModelStore(store).previous_dir() is None
