"""Installed model versions on a station: `active`, `previous`, and a watcher that hot-swaps.

Layout under the store folder (`/var/lib/pcb-inspector/models` on a station):

    versions/<name>-<version>-<sha12>/   one folder per installed package (.tflite .json .md .sig)
    active   -> versions/...             the model the station runs (`detector.model = STORE/active/<file>`)
    previous -> versions/...             the one before, for `pcb-inspector model rollback`
    audit.jsonl                          every install / rollback / swap, also sent to the records audit log

Why symlinks: switching a model means switching three or four files together. Renaming one
symlink over another is atomic, so a station (or a watcher polling it) never sees a new `.tflite`
with an old sidecar. The running station notices the switch, verifies, loads and warms up the new
package beside the old one and swaps between two boards; if anything fails it keeps the old model.

Why every package file is fsynced before the switch, and a folder a link names is never written:
the link is what survives a power cut. If it reached the disk before the files it names (ext4
writes data late), or named a folder being replaced, the station would start with no model; so at
every instant `active` names a complete package, on disk.
"""

from __future__ import annotations

import errno
import filecmp
import getpass
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .detect.base import Detector, ModelError
from .detect.package import read_meta
from .signing import SIG_SUFFIX, SignatureError, package_files, signature_path, verify_model

log = logging.getLogger(__name__)


class StoreError(ModelError):
    """The model store cannot do what was asked; the message names the folder or package."""


_PACKAGE_SUFFIXES = (".tflite", ".onnx", ".json", ".md", SIG_SUFFIX)
#: Model files a package may carry; which one is the model is what its sidecar's `file` says.
_MODEL_SUFFIXES = (".tflite", ".onnx")


def _tar_has_data_filter() -> bool:
    """Whether this Python's tarfile has extraction filters (3.11.4+, 3.12+; not Debian 12's 3.11.2)."""
    return hasattr(tarfile, "data_filter")


def _flat_name(name: str) -> str:
    """A member name without a leading "./" (tar -C dir . writes those)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"a symlink to {m.linkname!r}"
    if m.islnk():
        return f"a hard link to {m.linkname!r}"
    if m.ischr() or m.isblk():
        return "a device"
    if m.isfifo():
        return "a FIFO"
    if m.isdir():
        return "a folder"
    return f"tar type {m.type!r}"


def _package_members(package: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The regular files of a flat model package; anything else is refused, naming the member.

    Checked by hand on every Python, not left to `filter="data"`: older Pythons have no filter, and a
    package with a link, a device or a path outside the folder is not a package we built.
    """
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    for m in tar.getmembers():
        name = m.name
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise StoreError(
                f"{package}: member {name!r} has an absolute path; a package is flat: .tflite .json .md .sig"
            )
        if ".." in parts:
            raise StoreError(f"{package}: member {name!r} points outside the package folder (..)")
        if m.isdir() and _flat_name(name.rstrip("/") + "/") in ("", "."):
            continue  # the archive's own top folder ("./"), written by `tar -C dir .`
        if not m.isreg():
            raise StoreError(f"{package}: member {name!r} is {_kind(m)}; a package holds regular files only")
        flat = _flat_name(name)
        if not flat or "/" in flat or "\\" in flat or Path(flat).suffix not in _PACKAGE_SUFFIXES:
            raise StoreError(f"{package}: unexpected member {name!r} (a package is flat: .tflite .json .md .sig)")
        if flat in seen:
            raise StoreError(f"{package}: member {name!r} appears twice")
        seen.add(flat)
        members.append(m)
    return members


#: What a truncated or damaged archive raises while it is read (gzip: EOFError, zlib.error, BadGzipFile;
#: bzip2: OSError, EOFError; xz: LZMAError).
_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, OSError)
try:  # .tar.xz: a Python built without lzma cannot open one anyway
    from lzma import LZMAError

    _ARCHIVE_ERRORS += (LZMAError,)
except ImportError:  # pragma: no cover
    pass


def _read_to_end(tar: tarfile.TarFile) -> None:
    """Read what is left of the archive, so gzip checks its CRC and length trailer.

    Why: extraction stops after the last member, before the trailer, so a bit error in the
    compressed data would otherwise surface later as a "tampered" signature instead of a damaged archive.
    """
    rest = tar.fileobj
    if rest is not None:
        while rest.read(1 << 20):
            pass


def _extract_plain(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Write one checked regular member to `dest` with plain 0644 permissions (never following a link)."""
    src = tar.extractfile(member)
    if src is None:
        raise StoreError(f"{tar.name}: member {member.name!r} has no file data")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with src, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out)


@dataclass(frozen=True)
class InstalledModel:
    model_id: str
    path: Path
    """The model file (the one its sidecar names) inside versions/."""


def _who() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:
        return "unknown"


class ModelStore:
    def __init__(
        self,
        root: Path,
        *,
        database_url: str | None = None,
        station_id: str | None = None,
        station_key: Path | None = None,
    ):
        self.root = Path(root)
        self.database_url = database_url
        """Records database for the audit log (the CLI sets it; the running station uses `audit_sink`)."""
        self.station_id = station_id
        self.station_key = station_key
        """Station key file that signs the audit events this store writes to the database."""
        self.audit_sink: Callable[..., None] | None = None
        """In the running station: the recorder's `audit` (its writer thread owns the database)."""

    @classmethod
    def for_model_path(cls, model: Path) -> ModelStore | None:
        """The store a configured `detector.model` lives in (`STORE/active/<file>`), if it does."""
        model = Path(model)
        return cls(model.parent.parent) if model.parent.name == "active" else None

    # ------------------------------------------------------------------ layout
    @property
    def versions(self) -> Path:
        return self.root / "versions"

    def _link(self, name: str) -> Path | None:
        link = self.root / name
        if not link.is_symlink():
            return None
        target = (self.root / os.readlink(link)).resolve()
        return target if target.is_dir() else None

    def active_dir(self) -> Path | None:
        return self._link("active")

    def previous_dir(self) -> Path | None:
        return self._link("previous")

    @staticmethod
    def model_in(folder: Path) -> Path:
        """The model file of the package in `folder`: the one its sidecar names (`file`: .tflite, .onnx)."""
        sides = sorted(folder.glob("*.json"))
        if len(sides) != 1:
            found = sorted(p.name for s in _MODEL_SUFFIXES for p in folder.glob(f"*{s}"))
            raise StoreError(
                f"{folder}: expected exactly one model sidecar (.json), found {[p.name for p in sides]} beside {found}"
            )
        try:
            name = json.loads(sides[0].read_text())["file"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{sides[0]}: no readable 'file' key in the sidecar ({exc})") from None
        model = folder / str(name)
        if Path(str(name)).name != name or not model.is_file():
            raise StoreError(f"{sides[0]}: its 'file' {name!r} is not a file in the package")
        return model

    @staticmethod
    def _check_model_name(model: Path, model_name: str | None, what: str) -> None:
        """Refuse a package whose model file is not the file the station loads (`STORE/active/<file>`).

        Why: the station opens `detector.model` by name; a package signed under another name would
        verify and warm up here, yet after the switch the station would find no model at all.
        """
        if model_name is not None and model.name != model_name:
            raise StoreError(
                f"{what}: its model file is {model.name!r}, but the station loads {model_name!r} "
                f"(detector.model = STORE/active/{model_name}); nothing changed: build and sign the package "
                f"with the model file named {model_name!r}"
            )

    def _place(self, staging: Path, name: str) -> Path:
        """Make the verified `staging` folder `versions/<name>` on disk; returns the folder to activate.

        Every file and the folder are fsynced before the rename, versions/ after it, so the links set
        next never name data that is still only in the page cache. A folder that `active` or
        `previous` names is never deleted or written: the same package again is used as it is, a
        different one with the same name goes into a new folder beside it.
        """
        _fsync_tree(staging)
        dest = self.versions / name
        if dest.exists():
            live = {p for p in (self.active_dir(), self.previous_dir()) if p is not None}
            if dest.resolve() not in live:
                shutil.rmtree(dest)  # a leftover (an install cut short): nothing points at it
            elif _same_files(staging, dest):
                _fsync_tree(dest)  # it may come from an installer that did not fsync
                return dest
            else:
                n = 2
                while (self.versions / f"{name}.{n}").exists():
                    n += 1
                dest = self.versions / f"{name}.{n}"
        os.replace(staging, dest)
        _fsync_dir(self.versions)
        return dest

    def _set_link(self, name: str, target: Path | None) -> None:
        link = self.root / name
        if target is None:
            if link.is_symlink():
                link.unlink()
            return
        tmp = self.root / f".{name}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.path.relpath(target, self.root), tmp)
        os.replace(tmp, link)  # atomic: readers see the old or the new target, never neither
        _fsync_dir(self.root)

    # ------------------------------------------------------------------ package intake
    @staticmethod
    def _is_tar(package: Path) -> bool:
        """Whether `package` is a tar archive; one whose start cannot even be read is a damaged archive."""
        try:
            return tarfile.is_tarfile(package)
        except _ARCHIVE_ERRORS as exc:
            raise StoreError(f"{package}: truncated or damaged archive: {exc}") from None

    def unpack(self, package: Path, into: Path) -> Path:
        """Copy a package (a .tflite with its siblings, or a .tar[.gz] of them) into `into`; returns the .tflite."""
        package = Path(package)
        if not package.exists():
            raise StoreError(f"{package}: package not found")
        if package.suffix in _MODEL_SUFFIXES:
            for p in [*package_files(package), signature_path(package)]:
                if p.is_file():
                    shutil.copy2(p, into / p.name)
        elif self._is_tar(package):
            try:
                with tarfile.open(package) as tar:
                    members = _package_members(package, tar)
                    if _tar_has_data_filter():
                        tar.extractall(into, members=members, filter="data")
                    else:
                        # Python < 3.11.4 (Debian 12 ships 3.11.2): no extraction filters. The members were
                        # checked above; write each one ourselves under its bare name, so nothing in the
                        # archive (path, mode, owner, link) decides where or what lands on disk.
                        for m in members:
                            _extract_plain(tar, m, into / _flat_name(m.name))
                    _read_to_end(tar)
            except _ARCHIVE_ERRORS as exc:
                if _writing_into(exc, into):
                    raise  # the store's disk (full, read-only): not the archive's fault; the CLI names the file
                # A download cut short or a bit error: one line for the operator, not a traceback.
                raise StoreError(f"{package}: truncated or damaged archive: {exc}") from None
        else:
            raise StoreError(
                f"{package}: not a model file ({', '.join(_MODEL_SUFFIXES)}) or a tar archive of a package"
            )
        return self.model_in(into)

    def install(
        self,
        package: Path,
        *,
        trusted_keys: list[Path],
        warm_up: Callable[[Path], str] | None = None,
        require_signature: bool = True,
        who: str | None = None,
        model_name: str | None = None,
    ) -> InstalledModel:
        """Verify, warm up (`warm_up(model) -> model_id`), then make the package `active`.

        The previous active becomes `previous`; older versions are removed. Nothing changes unless
        every check passed. `model_name`: the model file name the station loads from `active` (the
        CLI passes `detector.model`'s); a package whose model file is named otherwise is refused.
        """
        self.versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            model = self.unpack(package, staging)
            self._check_model_name(model, model_name, str(package))
            if trusted_keys:
                verify_model(model, trusted_keys)
            elif require_signature:
                raise SignatureError(
                    "no trusted keys configured (detector.trusted_keys): refusing to install an unverifiable package; "
                    "pass --allow-unsigned for a development station"
                )
            meta = read_meta(model)
            model_id = warm_up(model) if warm_up else meta.model_id
            name = f"{meta.name}-{meta.version}-{meta.computed_identity[:12]}"
            dest = self._place(staging, name)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        old = self.active_dir()
        # The same version again (re-released beside the live folder) keeps `previous`: the version before.
        if old is not None and old != dest.resolve() and old.name != name and not old.name.startswith(f"{name}."):
            self._set_link("previous", old)
        self._set_link("active", dest)
        self._prune()
        installed = InstalledModel(model_id, self.model_in(dest))
        self.audit("model.install", who, before=_describe(old), after=_describe(dest))
        return installed

    def rollback(
        self, *, trusted_keys: list[Path], who: str | None = None, model_name: str | None = None
    ) -> InstalledModel:
        """Swap `active` and `previous` (the previous package is verified again first).

        `model_name` as for `install`: a previous package whose model file the station would not
        find under that name is refused, and both links stay as they are.
        """
        prev, cur = self.previous_dir(), self.active_dir()
        if prev is None:
            raise StoreError(f"{self.root}: no previous model to roll back to")
        model = self.model_in(prev)
        self._check_model_name(model, model_name, f"{self.root / 'previous'} ({prev.name})")
        if trusted_keys:
            verify_model(model, trusted_keys)
        self._set_link("active", prev)
        self._set_link("previous", cur)
        self.audit("model.rollback", who, before=_describe(cur), after=_describe(prev))
        return InstalledModel(read_meta(model).model_id, model)

    def _prune(self) -> None:
        keep = {p for p in (self.active_dir(), self.previous_dir()) if p is not None}
        for d in self.versions.iterdir():
            if d.is_dir() and d.resolve() not in keep:
                shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ audit
    def audit(self, action: str, who: str | None, before: Any, after: Any, station_id: str | None = None) -> None:
        """Append to `audit.jsonl` and, when the records database is reachable, to its audit log."""
        event = {
            "at": datetime.now(UTC).isoformat(),
            "who": who or _who(),
            "action": action,
            "target": "detector.model",
            "before": before,
            "after": after,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "audit.jsonl", "a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.audit_sink is not None:
            self.audit_sink(event["who"], action, event["target"], before, after, source="station")
        elif self.database_url:
            record_audit_db(self.database_url, station_id or self.station_id, event, station_key=self.station_key)


def record_audit_db(
    url: str, station_id: str | None, event: dict[str, Any], *, station_key: Path | None = None
) -> bool:
    """Write one audit event (signed with the station key when given) to the records database's chain;
    False (and a warning) when it cannot."""
    try:
        from .storage.audit import append
        from .storage.db import open_database
    except ImportError as exc:
        log.warning("audit event not written to the database (%s); it is in audit.jsonl", exc)
        return False
    try:
        key = None
        if station_key is not None:
            from .station_key import load_or_create

            key = load_or_create(station_key)
        db = open_database(url, station_id=station_id or "station-1", station_key=key)
        try:
            append(db, event["who"], event["action"], event["target"], event["before"], event["after"], source="cli")
        finally:
            db.close()
        return True
    except Exception as exc:
        log.warning("audit event not written to %s (%s); it is in audit.jsonl", url.split("@")[-1], exc)
        return False


def _describe(folder: Path | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        meta = read_meta(ModelStore.model_in(folder))
        return {"model_id": meta.model_id, "folder": folder.name}
    except ModelError:
        return {"folder": folder.name}


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """fsync every file of a (flat) package folder, then the folder: its data and its names on disk."""
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.is_symlink():
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _same_files(a: Path, b: Path) -> bool:
    """Whether two package folders hold the same file names with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def _writing_into(exc: BaseException, into: Path) -> bool:
    """Whether an OSError came from writing under `into` (the store) rather than reading the archive."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return True  # a full or read-only store disk; a write error carries no file name
    filename = exc.filename
    if not filename:
        return False
    try:
        return Path(os.fsdecode(filename)).resolve().is_relative_to(into.resolve())
    except (TypeError, ValueError):
        return False


class ModelWatcher:
    """Station part: when `detector.model` starts pointing at other files, hot-swap to them.

    Polls the resolved path and the package files' mtimes (a few stat calls every `interval_s`).
    A package that fails to verify or load is logged, audited and remembered, and the station keeps
    its current model; it is tried again only when the files change again.
    """

    name = "model-watcher"

    def __init__(
        self,
        model: Path,
        make_detector: Callable[[Path], Detector],
        swap: Callable[[Detector], Any],
        *,
        interval_s: float = 2.0,
        store: ModelStore | None = None,
    ):
        self.model = Path(model)
        self.make_detector = make_detector
        self.swap = swap
        self.interval_s = interval_s
        self.store = store
        self.swaps = 0
        self.failures = 0
        self.last_error: str | None = None
        self._seen = self.fingerprint()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fingerprint(self) -> tuple:
        real = self.model.resolve()
        stats = []
        for p in [*package_files(real), signature_path(real)]:
            try:
                st = p.stat()
                stats.append((p.name, st.st_mtime_ns, st.st_size))
            except OSError:
                pass
        return (str(real), tuple(stats))

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5.0)

    def poll(self) -> bool:
        """One check; True when a new model was swapped in."""
        fp = self.fingerprint()
        if fp == self._seen:
            return False
        self._seen = fp
        real = self.model.resolve()
        try:
            detector = self.make_detector(real)
            info = self.swap(detector)
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{real}: {exc}"
            log.error("model change not applied, keeping the current model: %s", self.last_error)
            if self.store:
                self.store.audit(
                    "model.swap_refused", "station", before=None, after={"path": str(real), "error": str(exc)}
                )
            return False
        self.swaps += 1
        self.last_error = None
        log.warning("model hot-swapped to %s", getattr(info, "model_id", real))
        if self.store:
            self.store.audit("model.swap", "station", before=None, after={"model_id": getattr(info, "model_id", "")})
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:
                log.exception("model watcher poll failed")


def attach_model_watcher(station: Any) -> ModelWatcher | None:
    """Station hook: watch `detector.model` and hot-swap verified packages into the running pipeline."""
    from .detect.factory import create_detector, hot_swap
    from .detect.settings import PackagedModelSettings
    from .signing import guard_detector

    cfg = station.cfg
    if not isinstance(cfg.detector, PackagedModelSettings):
        return None

    def make(real: Path) -> Detector:
        section = cfg.detector.model_copy(update={"model": real})
        return guard_detector(section, create_detector(section))

    # No database_url here: the storage writer thread owns the records database in this process.
    store = ModelStore.for_model_path(cfg.detector.model)
    if store is not None and getattr(station, "recorder", None) is not None:
        store.audit_sink = station.recorder.audit  # swaps land in the signed audit trail too
    watcher = ModelWatcher(cfg.detector.model, make, lambda det: hot_swap(station.pipeline, det), store=store)
    station.add_part(watcher)
    return watcher
