"""Durable spool: where results go when the database cannot take them (down, locked, corrupt) or
when the writer's queue is full.

Why files and not memory: a result is acknowledged to the PLC only once it is durable, either
committed in the database or fsynced here; the writer replays the spool into the database at start
and whenever the database comes back. Each file is one batch of JSON lines, written to `*.tmp`,
fsynced, renamed and the folder fsynced, so a crash leaves whole files or nothing. Replay is
idempotent: rows are keyed by the result's uid.
Images of results spilled straight from `submit` (queue full) are kept as `.npy` beside the batch
until the writer has archived them.

Why a reserve: when the disk is full the spool cannot create a file either, and a record the PLC
is waiting for would only be held in memory, lost by a SIGKILL. So the spool keeps a preallocated
`reserve.journal` (zeros written for real, so its blocks exist): when a batch file cannot be written,
the batch is written *into* that file in place (`pwrite` + fsync, no new blocks needed on ext4, xfs
or tmpfs), which works on a full disk. Replay treats it like any batch and zeroes it afterwards, so
the space stays reserved. Its images are not kept (the row's `archive_error` says so).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_seq = itertools.count()
_seq_lock = threading.Lock()


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


RESERVE = "reserve.journal"


class Spool:
    def __init__(self, folder: Path, reserve_bytes: int = 0):
        """`reserve_bytes`: size of the preallocated journal for a full disk (0: none)."""
        self.folder = Path(folder)
        self.reserve_bytes = int(reserve_bytes)
        self._journal_lock = threading.Lock()
        self._journal_used: int | None = None
        """Bytes of records in the journal; None until first looked at."""
        self._reserve_retry_at = 0.0
        self._journal_read: int | None = None
        """Bytes of the journal the last `read` returned: `remove` clears it only if nothing came after."""

    @property
    def journal(self) -> Path:
        return self.folder / RESERVE

    def ensure_reserve(self) -> bool:
        """Create the reserve journal (zeros, fsynced) if it is missing; False when there is no room for it."""
        if self.reserve_bytes <= 0:
            return False
        with self._journal_lock:
            try:
                if self.journal.stat().st_size >= self.reserve_bytes:
                    return True
            except FileNotFoundError:
                pass
            if time.monotonic() < self._reserve_retry_at:
                return False
            if self._used_locked():
                return True  # records waiting in a short journal: replay first
            tmp = self.journal.with_name(RESERVE + ".tmp")
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    chunk = bytes(min(self.reserve_bytes, 1 << 20))
                    left = self.reserve_bytes
                    while left > 0:
                        left -= os.write(fd, chunk[:left])
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.journal)
                fsync_dir(self.folder)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                self._reserve_retry_at = time.monotonic() + 60.0
                log.warning(
                    "no room for the spool reserve %s (%d kB): %s; on a full disk, records would then be held "
                    "in memory only",
                    self.journal,
                    self.reserve_bytes // 1024,
                    exc.strerror or exc,
                )
                return False
            self._journal_used = 0
            return True

    def _used_locked(self) -> int:
        if self._journal_used is None:
            try:
                data = self.journal.read_bytes()
            except FileNotFoundError:
                data = b""
            end = data.find(b"\0")
            self._journal_used = len(data) if end < 0 else end
            if end >= 0 and data[end:].strip(b"\0"):
                # Bytes past the first zero were never acknowledged (a write torn by a power cut):
                # zero them, so a later append cannot run into them.
                self._zero(end, len(data))
        return self._journal_used

    def _zero(self, start: int, stop: int) -> None:
        fd = os.open(self.journal, os.O_WRONLY)
        try:
            zeros, off = bytes(min(stop - start, 1 << 20)), start
            while off < stop:
                off += os.pwrite(fd, zeros[: stop - off], off)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_journal(self, records: list[dict[str, Any]], why: OSError) -> Path:
        """Append one batch in place into the reserve; re-raises `why` when there is no reserve or no room."""
        for r in records:
            for key in ("pending_image", "pending_reference"):
                if r.pop(key, None):
                    r["archive_error"] = r.get("archive_error") or f"image not kept: {why.strerror or why}"
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        with self._journal_lock:
            used = self._used_locked()
            try:
                size = self.journal.stat().st_size
            except FileNotFoundError:
                raise why from None
            if used + len(data) > size:
                raise OSError(
                    errno.ENOSPC, f"spool reserve full ({used // 1024} of {size // 1024} kB used)", str(self.journal)
                ) from why
            fd = os.open(self.journal, os.O_WRONLY)
            try:
                view, off = memoryview(data), used
                while view:
                    n = os.pwrite(fd, view, off)
                    view, off = view[n:], off + n
                os.fsync(fd)
            finally:
                os.close(fd)
            self._journal_used = used + len(data)
        log.warning(
            "spool: %d record(s) written into the reserve journal (%s: %s)", len(records), why.strerror, self.folder
        )
        return self.journal

    def _name(self) -> str:
        with _seq_lock:
            n = next(_seq)
        return f"{time.time_ns():020d}-{os.getpid()}-{n:06d}"

    def write(self, records: list[dict[str, Any]], images: dict[str, np.ndarray] | None = None) -> Path:
        """Write one batch durably (raises OSError, e.g. ENOSPC, if it cannot).

        `images` ("image"/"reference" -> array) belong to a single-record spill from `submit`.
        """
        name = self._name()
        path = self.folder / f"{name}.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for key, arr in (images or {}).items():
                itmp = self.folder / f"{name}.{key}.npy.tmp"
                try:
                    with open(itmp, "wb") as f:
                        np.save(f, arr, allow_pickle=False)
                        f.flush()
                        os.fsync(f.fileno())
                except OSError:
                    itmp.unlink(missing_ok=True)
                    raise
                os.replace(itmp, self.folder / f"{name}.{key}.npy")
                records[0][f"pending_{key}"] = f"{name}.{key}.npy"
            data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            fsync_dir(self.folder)
        except OSError as exc:
            for p in (tmp, *self.folder.glob(f"{name}.*.npy")):
                try:
                    p.unlink()
                except OSError:
                    pass
            if self.reserve_bytes <= 0:
                raise
            return self._write_journal(records, exc)
        return path

    def batches(self) -> list[Path]:
        """Batch files oldest first, then the reserve journal when it holds records."""
        if not self.folder.is_dir():
            return []
        out = sorted(self.folder.glob("*.jsonl"))
        with self._journal_lock:
            if self._used_locked():
                out.append(self.journal)
        return out

    def read(self, path: Path) -> list[dict[str, Any]]:
        out = []
        if path.name == RESERVE:
            with self._journal_lock:
                text = path.read_bytes()[: self._used_locked()].decode()
                if not text.endswith("\n"):  # a write torn by a crash was never fsynced, so never acknowledged
                    text = text[: text.rfind("\n") + 1]
                self._journal_read = len(text.encode())
        else:
            text = path.read_text()
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not a spool record ({exc.msg})") from None
        return out

    def load_array(self, name: str) -> np.ndarray | None:
        try:
            return np.load(self.folder / name, allow_pickle=False)
        except (OSError, ValueError):
            log.error("spooled image %s is unreadable; the record is kept without it", self.folder / name)
            return None

    def remove(self, path: Path, records: list[dict[str, Any]]) -> None:
        for r in records:
            for key in ("pending_image", "pending_reference"):
                if r.get(key):
                    try:
                        (self.folder / r[key]).unlink()
                    except FileNotFoundError:
                        pass
        if path.name == RESERVE:
            self._clear_journal()
            return
        path.unlink(missing_ok=True)

    def _clear_journal(self) -> None:
        """Zero the used part in place (the blocks stay allocated: the reserve is ready again).

        Only when the journal holds what `read` returned and nothing more: on a full disk the inference thread
        may append a spilled record (already acknowledged as durable) between the writer's `read` and this
        call, and zeroing up to the end would erase it. Then the journal is kept whole; the next replay reads
        it again, skips the records already in the database (by uid) and clears it.
        """
        with self._journal_lock:
            used = self._used_locked()
            whole = self.journal.read_bytes()[:used].rfind(b"\n") + 1 if used else 0  # a torn tail is not a record
            if self._journal_read is not None and whole > self._journal_read:
                log.info(
                    "spool: %d bytes came into the reserve journal during its replay; kept for the next replay",
                    whole - self._journal_read,
                )
                self._journal_read = None
                return
            if used:
                self._zero(0, used)
            self._journal_used = 0
            self._journal_read = None

    def quarantine(self, path: Path) -> Path:
        bad = self.folder / "bad"
        bad.mkdir(exist_ok=True)
        dest = bad / path.name
        os.replace(path, dest)
        if path.name == RESERVE:
            with self._journal_lock:
                self._journal_used = None  # gone: ensure_reserve makes a new one when there is room
        return dest

    def clean_tmp(self) -> int:
        """Remove half-written files a crash left (never acknowledged, so nothing is lost)."""
        n = 0
        if self.folder.is_dir():
            for p in self.folder.glob("*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def __len__(self) -> int:
        return len(self.batches())
