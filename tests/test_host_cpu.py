"""`inspector.host_cpu`: which CPU a benchmark ran on, and whether it has INT8 dot-product instructions."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

from inspector.commands.bench import _cpu_line
from inspector.host_cpu import host_cpu, parse_cpuinfo

CPUINFO = Path(__file__).parent / "fixtures" / "cpuinfo"


def _parsed(name: str, arch: str):
    return parse_cpuinfo((CPUINFO / name).read_text(), arch, 2)


def test_an_avx2_cpu_without_vnni_has_no_int8_dot_product():
    cpu = _parsed("amd-epyc-avx2.txt", "x86_64")
    assert (cpu.model, cpu.vector, cpu.int8_dot) == ("AMD EPYC", "avx2", ())
    assert cpu.summary() == "AMD EPYC (x86_64), 2 cores; vectors avx2; INT8 dot product: none"
    # the bench says what that costs, and where to read about it
    assert "several times slower" in _cpu_line(cpu.to_json()) and "*Which CPU*" in _cpu_line(cpu.to_json())


def test_a_sapphire_rapids_xeon_has_vnni_and_amx():
    cpu = _parsed("xeon-sapphire-rapids.txt", "x86_64")
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"  # "model name", not the numeric "model"
    assert cpu.vector == "avx512f" and cpu.int8_dot == ("avx512_vnni", "avx_vnni", "amx_int8")
    assert "slower" not in _cpu_line(cpu.to_json())


@pytest.mark.parametrize(
    ("name", "model", "dot"),
    [
        ("rpi5-cortex-a76.txt", "Raspberry Pi 5 Model B Rev 1.0", ("asimddp",)),
        ("rpi-zero2-cortex-a53.txt", "Raspberry Pi Zero 2 W Rev 1.0", ()),
    ],
)
def test_arm_boards_are_named_by_their_model_line_and_features(name, model, dot):
    cpu = _parsed(name, "aarch64")
    assert (cpu.model, cpu.vector, cpu.int8_dot) == (model, "asimd", dot)


def test_a_machine_without_a_cpu_table_says_unknown(tmp_path):
    cpu = host_cpu(tmp_path / "no-cpuinfo")
    assert cpu.vector == "unknown" and cpu.int8_dot == () and cpu.model == (platform.machine() or "unknown")
    assert json.loads(json.dumps(cpu.to_json()))["int8_dot"] == []


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="no /proc/cpuinfo (not Linux)")
def test_this_machine_is_read_from_the_kernel():
    cpu = host_cpu()
    assert cpu.cores == len(os.sched_getaffinity(0))  # what this process may use, not the host's count
    assert cpu.model != "unknown" and cpu.vector != "unknown"
