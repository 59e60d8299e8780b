"""Unpacking a model package tarball is safe on every supported Python.

Python 3.11.2 (Debian 12) has no `filter=` for `TarFile.extractall`; 3.11.4+ has. Every test runs
both ways: with this Python's tarfile as it is, and with the filter taken away the way 3.11.2 lacks
it (no `tarfile.data_filter`, `extractall(filter=...)` is a TypeError). The tarballs are real,
including the malicious ones, and the signed package installs through the real store.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from inspector.detect.package import read_meta, write_sidecar
from inspector.model_store import ModelStore, StoreError
from inspector.signing import generate_keypair, sign_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
FILE = "pcb-defect-det.tflite"


@pytest.fixture(params=["filter", "no-filter"])
def tar_python(request, monkeypatch) -> str:
    """'no-filter' makes tarfile look like Python 3.11.2's: no extraction filters at all."""
    if request.param == "no-filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        real = tarfile.TarFile.extractall

        def extractall_3_11_2(self, path=".", members=None, *, numeric_owner=False, **kw):
            if kw:
                raise TypeError(f"extractall() got an unexpected keyword argument {next(iter(kw))!r}")
            return real(self, path, members, numeric_owner=numeric_owner)

        monkeypatch.setattr(tarfile.TarFile, "extractall", extractall_3_11_2)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile extraction filters")
    return request.param


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A signed package folder (.tflite .json .md .sig) built from a real fixture model."""
    d = tmp_path_factory.mktemp("pkg")
    generate_keypair(d / "plant.key", d / "plant.pub")
    out = d / "pkg"
    out.mkdir()
    model = out / FILE
    shutil.copy(FIXTURES / "synth-det-320.tflite", model)
    meta = json.loads((FIXTURES / "synth-det-320.json").read_text())
    meta.update(name="pcb-defect-det", version="3.0.0")
    write_sidecar(model, meta)
    (out / "pcb-defect-det.md").write_text("# pcb-defect-det 3.0.0\n")
    sign_model(model, d / "plant.key")
    return out


def _tar(path: Path, package: Path, *, prefix: str = "", extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as t:
        if prefix:
            t.add(package, arcname=".", recursive=False)
        for p in sorted(package.iterdir()):
            t.add(p, arcname=prefix + p.name)
        for info in extra:
            data = b"evil\n" if info.isreg() else None
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


@pytest.mark.parametrize("prefix", ["", "./"])
def test_good_package_unpacks_and_installs(tar_python, package, tmp_path, prefix):
    tar = _tar(tmp_path / "p.tar.gz", package, prefix=prefix)
    into = tmp_path / "into"
    into.mkdir()
    model = ModelStore(tmp_path / "store").unpack(tar, into)
    assert model == into / FILE
    assert sorted(p.name for p in into.iterdir()) == sorted(p.name for p in package.iterdir())
    for p in package.iterdir():
        assert (into / p.name).read_bytes() == p.read_bytes()

    store = ModelStore(tmp_path / "store")
    installed = store.install(tar, trusted_keys=[package.parent / "plant.pub"])
    assert installed.model_id == read_meta(package / FILE).model_id
    assert store.active_dir() is not None and (store.active_dir() / FILE).is_file()


MALICIOUS = {
    "absolute": (_info("/tmp/pcb-evil-abs.tflite"), "absolute path"),
    "dotdot": (_info("../evil.tflite"), "outside the package"),
    "dotdot-deep": (_info("./x/../../evil.json"), "outside the package"),
    "symlink": (_info("pcb-defect-det.json", tarfile.SYMTYPE, "/etc/passwd"), "symlink to '/etc/passwd'"),
    "symlink-extra": (_info("evil.md", tarfile.SYMTYPE, "../../outside.md"), "symlink"),
    "hardlink": (_info("evil.md", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
    "chardev": (_info("evil.json", tarfile.CHRTYPE), "a device"),
    "blockdev": (_info("evil.json", tarfile.BLKTYPE), "a device"),
    "fifo": (_info("evil.json", tarfile.FIFOTYPE), "a FIFO"),
    "nested": (_info("sub/evil.tflite"), "a package is flat"),
    "folder": (_info("sub", tarfile.DIRTYPE), "a folder"),
    "other-suffix": (_info("run.sh"), "a package is flat"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_member_is_refused_naming_it(tar_python, package, tmp_path, case):
    info, why = MALICIOUS[case]
    tar = _tar(tmp_path / "evil.tar.gz", package, extra=[info])
    into = tmp_path / "a" / "b" / "into"
    into.mkdir(parents=True)
    with pytest.raises(StoreError) as err:
        ModelStore(tmp_path / "store").unpack(tar, into)
    assert repr(info.name) in str(err.value) and why in str(err.value), str(err.value)
    assert str(tar) in str(err.value)
    # Nothing was written: not the good members, not the bad one, not outside.
    assert list(into.iterdir()) == []
    assert not (tmp_path / "a" / "b" / "evil.tflite").exists()
    assert not (tmp_path / "a" / "evil.json").exists()
    assert not Path("/tmp/pcb-evil-abs.tflite").exists()


def test_malicious_package_leaves_store_unchanged(tar_python, package, tmp_path):
    good = _tar(tmp_path / "good.tar.gz", package)
    evil = _tar(
        tmp_path / "evil.tar.gz",
        package,
        extra=[_info("pcb-defect-det.md", tarfile.SYMTYPE, "/etc/shadow")],
    )
    store = ModelStore(tmp_path / "store")
    store.install(good, trusted_keys=[package.parent / "plant.pub"])
    before = store.active_dir()
    with pytest.raises(StoreError, match="symlink"):
        store.install(evil, trusted_keys=[package.parent / "plant.pub"])
    assert store.active_dir() == before
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".staging-")] == []


def test_duplicate_member_is_refused(tar_python, package, tmp_path):
    tar = _tar(tmp_path / "dup.tar.gz", package, extra=[_info("./pcb-defect-det.md")])
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(StoreError, match="appears twice"):
        ModelStore(tmp_path / "store").unpack(tar, into)
