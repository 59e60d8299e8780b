"""Durable spool: where results go when the database cannot take them (down, locked, corrupt) or
when the writer's queue is full.

Why files and not memory: a result is acknowledged to the PLC only once it is durable, either
committed in the database or fsynced here; the writer replays the spool into the database at start
and whenever the database comes back. Each file is one batch of JSON lines, written to `*.tmp`,
fsynced, renamed and the folder fsynced, so a crash leaves whole files or nothing. Replay is
idempotent: rows are keyed by the result's uid.
Images of results spilled straight from `submit` (queue full) are kept as `.npy` beside the batch
until the writer has archived them.
"""

from __future__ import annotations

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


class Spool:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _name(self) -> str:
        with _seq_lock:
            n = next(_seq)
        return f"{time.time_ns():020d}-{os.getpid()}-{n:06d}"

    def write(self, records: list[dict[str, Any]], images: dict[str, np.ndarray] | None = None) -> Path:
        """Write one batch durably (raises OSError, e.g. ENOSPC, if it cannot).

        `images` ("image"/"reference" -> array) belong to a single-record spill from `submit`.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        name = self._name()
        for key, arr in (images or {}).items():
            tmp = self.folder / f"{name}.{key}.npy.tmp"
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / f"{name}.{key}.npy")
            records[0][f"pending_{key}"] = f"{name}.{key}.npy"
        path = self.folder / f"{name}.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        try:
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
        except OSError:
            for p in (tmp, *self.folder.glob(f"{name}.*.npy")):
                try:
                    p.unlink()
                except OSError:
                    pass
            raise
        return path

    def batches(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.jsonl"))

    def read(self, path: Path) -> list[dict[str, Any]]:
        out = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
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
        path.unlink(missing_ok=True)

    def quarantine(self, path: Path) -> Path:
        bad = self.folder / "bad"
        bad.mkdir(exist_ok=True)
        dest = bad / path.name
        os.replace(path, dest)
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
