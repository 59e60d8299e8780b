"""What CPU this process runs on, as far as it decides the INT8 model's speed.

Why: the same package, code and bench gave an INT8 invoke of 36 ms on one of this workplace's 2-core machines and
120-160 ms on another (docs/performance.md, *Which CPU*). What separates them is not the clock but whether the CPU
multiplies 8-bit integers four at a time into 32-bit sums (x86 VNNI or AMX, Arm's dot-product extension): XNNPACK's
INT8 kernels use those instructions where they exist and fall back to widening multiplies where they do not. A
latency figure that does not name the CPU it came from cannot be compared, nor used to choose an industrial PC, so
`pcb-inspector bench` prints this beside its figures.

Read from `/proc/cpuinfo` (Linux, which is what the station is packaged for): a few lines of text, where a
library (py-cpuinfo) would run a helper process for the same flags. Elsewhere the fields say "unknown".
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

#: Instruction-set flags (as Linux names them) that give INT8 dot products: x86 AVX-512 VNNI, AVX-VNNI and AMX;
#: Arm's dot-product (asimddp, SDOT/UDOT) and 8-bit matrix multiply (i8mm) extensions.
INT8_DOT_FLAGS: tuple[str, ...] = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")

#: The widest vector extension worth naming, widest first.
VECTOR_FLAGS: tuple[str, ...] = ("avx512f", "avx2", "avx", "sse4_2", "sve", "asimd")


@dataclass(frozen=True, slots=True)
class HostCpu:
    model: str
    """The CPU's name as the kernel reports it ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8481C ..."), else the
    architecture."""
    arch: str
    """`platform.machine()`: x86_64, aarch64, ..."""
    cores: int
    """Logical cores this process may run on (its affinity; a container's share), not the host's."""
    vector: str
    """The widest vector extension the CPU reports (`VECTOR_FLAGS`), or "unknown"."""
    int8_dot: tuple[str, ...]
    """The INT8 dot-product extensions it reports (`INT8_DOT_FLAGS`); empty where it has none."""

    def summary(self) -> str:
        """One line for a report: name, cores, vectors, and whether INT8 has its dot-product instructions."""
        dot = ", ".join(self.int8_dot) if self.int8_dot else "none"
        return f"{self.model} ({self.arch}), {self.cores} cores; vectors {self.vector}; INT8 dot product: {dot}"

    def to_json(self) -> dict:
        out = asdict(self)
        out["int8_dot"] = list(self.int8_dot)
        return out


def parse_cpuinfo(text: str, arch: str = "", cores: int = 0) -> HostCpu:
    """The CPU's name and the first processor's flags in a `/proc/cpuinfo` text (x86's `flags`, Arm's `Features`)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():  # the first processor's values: a station's cores are alike
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    # x86 names its CPU in "model name" ("model" is a number there); Arm boards often only in "Model" or "Hardware"
    board = fields.get("model", "")
    model = fields.get("model name") or (board if not board.isdigit() else "") or fields.get("hardware") or arch
    return HostCpu(
        model=" ".join(model.split()) or "unknown",
        arch=arch or "unknown",
        cores=cores,
        vector=next((f for f in VECTOR_FLAGS if f in flags), "unknown"),
        int8_dot=tuple(f for f in INT8_DOT_FLAGS if f in flags),
    )


def host_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> HostCpu:
    """This machine's CPU (`parse_cpuinfo` of the kernel's table; "unknown" fields where there is none)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 0
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, platform.machine(), cores)


__all__ = ["INT8_DOT_FLAGS", "VECTOR_FLAGS", "HostCpu", "host_cpu", "parse_cpuinfo"]
