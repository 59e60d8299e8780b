"""scripts/setup-env.sh on a machine where an earlier set-up stopped half-way.

On Debian without python3-venv, `python3 -m venv .venv` creates .venv/bin/python and then fails in
ensurepip. The next run (after installing python3-venv) must not take that .venv for a finished one.
The script runs for real here on a throwaway copy of the project layout: real venv, real pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _apt_lists() -> dict[str, list[str]]:
    lists = {}
    for name in ("apt-test.txt", "apt-demo.txt"):
        pkgs = []
        for line in (ROOT / "packaging" / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                pkgs.append(line)
        lists[name] = pkgs
    return lists


def test_apt_lists_name_what_a_minbase_machine_lacks():
    for name, pkgs in _apt_lists().items():
        assert "python3-venv" in pkgs, f"packaging/{name}: python3 -m venv needs python3-venv on Debian"
        assert "python3-dev" in pkgs, f"packaging/{name}: building wheels from source needs python3-dev"


def test_apt_packages_are_installed_before_the_venv_is_created():
    text = (ROOT / "scripts" / "setup-env.sh").read_text()
    assert text.index("apt-get install") < text.index("-m venv")


@pytest.mark.slow
def test_half_created_venv_is_recreated(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup-env.sh", tmp_path / "scripts" / "setup-env.sh")
    (tmp_path / "packaging").mkdir()
    (tmp_path / "packaging" / "apt.txt").write_text("# nothing to install\n")
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "halfvenv-probe"\nversion = "0.1"\n'
        "[project.optional-dependencies]\nx = []\n"
        '[tool.setuptools]\npy-modules = ["probe"]\n'
    )
    (tmp_path / "probe.py").write_text("VALUE = 42\n")
    # What a failed `python3 -m venv` leaves: an interpreter, no pip.
    venv.EnvBuilder(with_pip=False).create(tmp_path / ".venv")
    assert (tmp_path / ".venv" / "bin" / "python").exists()
    assert not (tmp_path / ".venv" / "bin" / "pip").exists()

    base_python = getattr(sys, "_base_executable", sys.executable)
    run = subprocess.run(
        [
            "bash",
            "-c",
            "source scripts/setup-env.sh packaging/apt.txt x && cd / && python -c 'import probe; print(probe.VALUE)'",
        ],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PYTHON": base_python,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "incomplete" in run.stdout
    assert run.stdout.strip().endswith("42")
    assert (tmp_path / ".venv" / "bin" / "pip").exists()
