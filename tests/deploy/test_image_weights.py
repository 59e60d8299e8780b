"""The container image ships no float training weights: checked on the real .dockerignore and Dockerfile.

The build context is computed the way Docker does (last matching .dockerignore pattern wins) over the
repository's real models/ folder, and the Dockerfile's own weights check is run as the build runs it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOAT_NAMES = ("pcb-defect-det.weights.h5", "pcb-defect-det.keras", "pcb-defect-det-float.tflite")


def _pattern(p: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif p.startswith("**", i):
            out, i = out + ".*", i + 2
        elif p[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif p[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(p[i]), i + 1
    return re.compile(out + "(?:/.*)?$")  # a pattern naming a folder covers everything in it


def in_context(path: str, lines: list[str]) -> bool:
    """Whether Docker sends `path` (relative to the context) to the builder, per .dockerignore."""
    sent = True
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:] if negate else line
        if _pattern(pat.strip("/")).match(path):
            sent = negate
    return sent


def test_build_context_holds_the_int8_package_but_no_float_weights(tmp_path):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert in_context("models/pcb-defect-det.tflite", lines) and in_context("models/pcb-defect-det.json", lines)
    assert in_context("inspector/pipeline.py", lines) and not in_context("tests/conftest.py", lines)
    for name in FLOAT_NAMES:
        assert not in_context(f"models/{name}", lines), name
        assert not in_context(f"models/plant-a/{name}", lines), name
    # The plant-signed package of docs/deployment.md section 4 (MODEL_DIR=release) reaches the builder, floats not.
    for name in ("pcb-defect-det.tflite", "pcb-defect-det.json", "pcb-defect-det.md", "pcb-defect-det.sig"):
        assert in_context(f"release/{name}", lines), name
    for name in FLOAT_NAMES:
        assert not in_context(f"release/{name}", lines), name
    shipped = [p.relative_to(ROOT).as_posix() for p in (ROOT / "models").rglob("*") if p.is_file()]
    assert any(p.endswith(".weights.h5") for p in shipped)  # the repository does keep them (training)
    assert not [p for p in shipped if p.endswith((".h5", ".keras", "-float.tflite")) and in_context(p, lines)]


def test_dockerfile_refuses_a_model_dir_with_float_weights(tmp_path):
    text = (ROOT / "packaging" / "Dockerfile").read_text()
    build = text.split("AS runtime", 1)[0]
    runs = re.findall(r"^RUN (.*?(?:\\\n.*?)*)$", build, re.M)
    check = next(r for r in runs if "/stage/models" in r and "float" in r)
    script = check.replace("\\\n", "\n").replace("/stage/models", str(tmp_path / "stage"))
    stage = tmp_path / "stage"
    stage.mkdir()
    for name in ("pcb-defect-det.tflite", "pcb-defect-det.json", "pcb-defect-det.md"):
        (stage / name).write_bytes(b"x")
    ok = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for name in FLOAT_NAMES:
        (stage / name).write_bytes(b"x")
        bad = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert bad.returncode != 0 and name in bad.stderr, name
        (stage / name).unlink()
    # and the COPY itself only takes the package files (no .h5 pattern)
    copy = re.search(r"^COPY \$\{MODEL_DIR\}.*$", build, re.M).group(0)
    assert ".h5" not in copy and "*.tflite" in copy
