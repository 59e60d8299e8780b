"""Shared test set-up: Qt offscreen, synthetic boards, a station config in a temp folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def demo_boards(tmp_path_factory) -> Path:
    """12 synthetic boards with references and truth.json (generated once per test session)."""
    from inspector.synth import write_boards

    return write_boards(tmp_path_factory.mktemp("boards"), 12, seed=3)


@pytest.fixture(scope="session")
def demo_truth(demo_boards) -> dict:
    return json.loads((demo_boards / "truth.json").read_text())


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd  # initdb refuses root, runs as any other user
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def postgres_server():
    """(host, port) of a real, throwaway PostgreSQL cluster (trust auth, user postgres).

    initdb + pg_ctl as the postgres user in a temp folder, listening on 127.0.0.1 on a free port
    only; stopped and deleted at the end of the session. Storage and plant-sync tests each make
    their own databases in it.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql (packaging/apt-test.txt)")
    base = Path(tempfile.mkdtemp(prefix="pcb-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mount_tmpfs():
    """Mounts real small filesystems (tmpfs) to fill up: `mount_tmpfs(path, "16m")`; unmounted at teardown.

    Skips the test where mounting is not allowed (it needs root).
    """
    mounted: list[Path] = []

    def mount(mnt: Path, size: str) -> Path:
        mnt.mkdir()
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True, capture_output=True
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {exc}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
