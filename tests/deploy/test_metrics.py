"""/metrics and /health of a real station (replay camera, classical detector, PLC off), over HTTP."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from inspector.config import StationConfig
from inspector.domain import Detection, InspectionResult, Verdict
from inspector.health import Health
from inspector.metrics import StationMetrics, parse_listen, percentile, read_thermal_zones
from inspector.station import build_station

from .conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def running_station(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    port = free_port()
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "fps": 20.0, "demo_boards": 6},
            "detector": {"type": "classical"},
            "plc": {"mode": "off"},
            "storage": {"archive_dir": str(tmp / "archive"), "database_url": f"sqlite:///{tmp / 'db.sqlite'}"},
            "metrics": {"listen": f"127.0.0.1:{port}", "latency_budget_ms": 48.0},
        }
    )
    station = build_station(cfg, with_storage=False)
    station.start()
    assert wait_for(lambda: station.pipeline.results_published >= 8, 60)
    yield station, f"http://127.0.0.1:{port}"
    station.stop()


def samples(text: str) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)$", line)
        assert m, line
        out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return out


def test_metrics_endpoint_reports_boards_latency_and_state(running_station):
    station, base = running_station
    code, text = get(base + "/metrics")
    assert code == 200
    s = samples(text)
    published = station.pipeline.results_published
    boards = sum(v for _, v in s["pcb_boards_total"])
    assert 8 <= boards <= published  # scraped after >= 8 boards, never more than published
    rejects = sum(v for lbl, v in s["pcb_boards_total"] if 'verdict="REJECT"' in lbl)
    assert sum(v for _, v in s["pcb_rejects_total"]) == rejects  # rejects by class add up
    for path in ("inference", "capture_to_verdict"):
        q = {lbl: v for lbl, v in s["pcb_latency_ms"] if f'path="{path}"' in lbl}
        p50 = next(v for lbl, v in q.items() if 'quantile="0.50"' in lbl)
        p99 = next(v for lbl, v in q.items() if 'quantile="0.99"' in lbl)
        assert 0 < p50 <= p99
    assert any('backend="CPU OpenCV (classical)"' in lbl for lbl, _ in s["pcb_model_info"])
    (cpu, one), *more = s["pcb_host_cpu_info"]  # what the alert's text points to when a CPU-run model is slow
    assert not more and one == 1 and 'vector="' in cpu and 'int8_dot="' in cpu and 'cores="' in cpu
    assert s["pcb_model_load_seconds"][0][1] >= 0
    assert s["pcb_camera_fps"][0][1] > 0
    assert s["pcb_camera_up"][0][1] == 1 and s["pcb_plc_up"][0][1] == 1
    assert s["pcb_process_rss_bytes"][0][1] > 10e6
    assert s["pcb_disk_free_bytes"][0][1] > 0
    assert 0 < s["pcb_memory_used_ratio"][0][1] < 1


def test_health_endpoints(running_station):
    station, base = running_station
    code, body = get(base + "/health")
    doc = json.loads(body)
    assert code == (200 if station.health.ready else 503)
    assert doc["ready"] is True and doc["model_id"].startswith("classical-diff")
    assert doc["components"]["camera"]["ok"] is True
    code, body = get(base + "/health/live")
    assert code == 200 and json.loads(body)["live"] is True
    # NOT READY (here: the PLC lamp drops) -> readiness 503, liveness still 200: no restart loop for a PLC fault.
    station.health.fail("plc", "no heartbeat for 3.0 s")
    try:
        code, body = get(base + "/health")
        assert code == 503 and "plc: no heartbeat" in json.loads(body)["summary"]
        assert get(base + "/health/live")[0] == 200
        assert samples(get(base + "/metrics")[1])["pcb_plc_up"][0][1] == 0
    finally:
        station.health.ok("plc", "off (free-run)")
    assert get(base + "/nope")[0] == 404


ALERTS = ROOT / "packaging" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "packaging" / "prometheus" / "alerts_test.yml"
#: Series Prometheus makes itself (not exported by the station): `up` of every scrape target.
PROMETHEUS_SERIES = {"up"}


def series_labels(text: str) -> dict[str, set[tuple[str, str]]]:
    """Metric name -> the (label, value) pairs seen in an exposition text."""
    out: dict[str, set[tuple[str, str]]] = {}
    for name, rows in samples(text).items():
        pairs = out.setdefault(name, set())
        for lbl, _ in rows:
            pairs |= set(re.findall(r'(\w+)="([^"]*)"', lbl))
    return out


@pytest.fixture(scope="module")
def litert_station(tmp_path_factory):
    """A LiteRT station with a signed model in its store (so the model watcher runs) and a sysfs-style
    temperature file as its accelerator temperature source."""
    from inspector.model_store import ModelStore
    from inspector.signing import generate_keypair

    from .test_model_updates import make_package

    tmp = tmp_path_factory.mktemp("litert-metrics")
    generate_keypair(tmp / "plant.key", tmp / "plant.pub")
    store = ModelStore(tmp / "models")
    store.install(
        make_package("synth-det-320", "1.0.0", tmp / "v1", tmp / "plant.key"), trusted_keys=[tmp / "plant.pub"]
    )
    temp = tmp / "npu_temp"
    temp.write_text("61250\n")
    port = free_port()
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "fps": 20.0, "demo_boards": 4},
            "detector": {
                "type": "litert",
                "model": str(tmp / "models" / "active" / "pcb-defect-det.tflite"),
                "delegate": "cpu",
                "trusted_keys": [str(tmp / "plant.pub")],
            },
            "plc": {"mode": "off"},
            "storage": {"archive_dir": str(tmp / "archive"), "database_url": f"sqlite:///{tmp / 'db.sqlite'}"},
            "metrics": {"listen": f"127.0.0.1:{port}", "accelerator_temperature": {"sysfs": str(temp)}},
        }
    )
    station = build_station(cfg, with_storage=False)
    station.start()
    assert wait_for(lambda: station.pipeline.results_published >= 3, 90)
    yield station, f"http://127.0.0.1:{port}", tmp
    station.stop()


@pytest.fixture(scope="module")
def sync_scrape(tmp_path_factory) -> str:
    """What `pcb-inspector sync --metrics` serves for a sync that has never reached the plant."""
    from prometheus_client import generate_latest

    from inspector.metrics import source_registry
    from inspector.storage.db import open_database
    from inspector.sync import PlantSync

    tmp = tmp_path_factory.mktemp("sync-metrics")
    url = f"sqlite:///{tmp / 'station.db'}"
    open_database(url, station_id="st").close()
    worker = PlantSync(url, f"postgresql+psycopg://station@127.0.0.1:{free_port()}/plant", migrate_plant=False)
    try:
        return generate_latest(source_registry("st", worker)).decode()
    finally:
        worker.stop()


def test_sync_that_never_succeeded_still_ages(sync_scrape):
    """PlantSyncBacklog needs the age for a sync that has not got through once since it started."""
    s = samples(sync_scrape)
    assert s["pcb_sync_last_success_age_seconds"][0][1] >= 0
    assert s["pcb_sync_succeeded_since_start"] == [('{station="st"}', 0.0)]
    assert s["pcb_sync_link_up"] == [('{station="st"}', 0.0)]
    assert s["pcb_sync_pending_inspections"] == [('{station="st"}', 0.0)]


def test_configured_temperature_and_refused_model_change_are_exported(litert_station):
    """A real LiteRT station: the temperature comes from the configured file, and a model change the
    watcher refuses (an unsigned package made active behind its back) shows until fixed."""
    import os

    from .test_model_updates import make_package

    station, base, tmp = litert_station
    s = samples(get(base + "/metrics")[1])
    assert s["pcb_accelerator_temperature_celsius"] == [('{station="station-1"}', 61.25)]
    assert s["pcb_accelerator_temperature_configured"][0][1] == 1.0
    assert s["pcb_accelerator_present"][0][1] == 0.0  # XNNPACK on the CPU
    assert s["pcb_model_change_refused"][0][1] == 0.0 and s["pcb_model_swaps_refused_count"][0][1] == 0.0
    (tmp / "npu_temp").write_text("garbage\n")  # unreadable source: the series goes away, the scrape answers
    assert "pcb_accelerator_temperature_celsius" not in samples(get(base + "/metrics")[1])
    (tmp / "npu_temp").write_text("61250\n")

    store = tmp / "models"
    rogue = make_package("synth-det-640", "9.0.0", store / "versions" / "rogue", key=None)
    os.symlink("versions/rogue", store / ".active.tmp")
    os.replace(store / ".active.tmp", store / "active")
    watcher = next(p for p in station.parts if getattr(p, "name", "") == "model-watcher")
    assert watcher.poll() is False and "sig" in (watcher.last_error or "").lower()
    s = samples(get(base + "/metrics")[1])
    assert s["pcb_model_change_refused"][0][1] == 1.0 and s["pcb_model_swaps_refused_count"][0][1] == 1.0
    assert station.pipeline.detector_info.model_id != "" and rogue.exists()


def test_every_alert_is_unit_tested_on_series_the_station_exports(running_station, litert_station, sync_scrape):
    """The exported set comes only from real scrapes: the classical and the LiteRT station's /metrics
    and the sync process's registry. Every series an alert reads, and every input series of the
    promtool unit tests (with its labels and label values), must be among them, and every alert
    must be shown firing by at least one unit test."""
    exported: dict[str, set[tuple[str, str]]] = {}
    for text in (get(running_station[1] + "/metrics")[1], get(litert_station[1] + "/metrics")[1], sync_scrape):
        for name, pairs in series_labels(text).items():
            exported.setdefault(name, set()).update(pairs)
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for name, r in alerts.items():
        for metric in re.findall(r"\b(pcb_[a-z_]+)\b", r["expr"]):
            assert metric in exported, f"alert {name} reads {metric}, which no scrape exports"
        for label, value in re.findall(r'(\w+)="([^"]*)"', r["expr"]):
            metric = re.search(r"(\w+)\{[^}]*" + label, r["expr"]).group(1)
            if metric not in PROMETHEUS_SERIES:
                assert (label, value) in exported[metric], f"alert {name}: {metric}{{{label}={value!r}}} not exported"
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    fired = {t["alertname"] for group in tests["tests"] for t in group["alert_rule_test"] if t["exp_alerts"]}
    assert set(alerts) <= fired, f"alerts never shown firing by alerts_test.yml: {sorted(set(alerts) - fired)}"
    bounded = {"cause", "component", "path", "verdict", "scope"}
    for group in tests["tests"]:
        for series in group["input_series"]:
            m = re.fullmatch(r"(\w+)\{(.*)\}", series["series"])
            metric, labels = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if metric in PROMETHEUS_SERIES:
                continue
            assert metric in exported, f"alerts_test.yml feeds {metric}, which no scrape exports"
            names = {k for k, _ in exported[metric]}
            assert set(labels) <= names | {"le"}, f"{series['series']}: labels {set(labels) - names} not exported"
            for k in set(labels) & bounded:
                assert (k, labels[k]) in exported[metric], f"{series['series']}: {k}={labels[k]!r} never exported"


def test_accelerator_temperature_only_from_the_configured_source(tmp_path):
    """No guessing by zone name: an "npu-thermal" zone exists but only the configured file counts."""
    from prometheus_client import generate_latest

    from inspector.config import TemperatureSource

    for i, (kind, milli) in enumerate([("cpu-thermal", "61000"), ("npu-thermal", "87500"), ("soc-thermal", "70250")]):
        z = tmp_path / f"thermal_zone{i}"
        z.mkdir()
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(milli + "\n")
    broken = tmp_path / "thermal_zone9"
    broken.mkdir()
    (broken / "type").write_text("soc\n")  # no temp file: skipped, not an error
    zones = read_thermal_zones(tmp_path)
    assert [(k, c) for _, k, c in zones] == [("cpu-thermal", 61.0), ("npu-thermal", 87.5), ("soc-thermal", 70.25)]
    s = samples(generate_latest(StationMetrics("st", Health(), thermal_root=tmp_path).registry).decode())
    assert "pcb_accelerator_temperature_celsius" not in s and len(s["pcb_thermal_zone_celsius"]) == 3
    assert s["pcb_accelerator_temperature_configured"][0][1] == 0.0

    src = TemperatureSource(sysfs=tmp_path / "thermal_zone1" / "temp")
    m = StationMetrics("st", Health(), thermal_root=tmp_path, temperature=src)
    s = samples(generate_latest(m.registry).decode())
    assert s["pcb_accelerator_temperature_celsius"] == [('{station="st"}', 87.5)]
    # A vendor command printing e.g. "temp=63.4'C" (vcgencmd's format), through a real process.
    cmd = TemperatureSource(command=[sys.executable, "-c", 'print("temp=63.4\'C")'])
    s = samples(generate_latest(StationMetrics("st", Health(), temperature=cmd).registry).decode())
    assert s["pcb_accelerator_temperature_celsius"] == [('{station="st"}', 63.4)]
    gone = TemperatureSource(command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    m = StationMetrics("st", Health(), temperature=gone)
    assert "pcb_accelerator_temperature_celsius" not in samples(generate_latest(m.registry).decode())
    assert m.temperature.errors == 1
    with pytest.raises(ValueError, match="exactly one of"):
        TemperatureSource()
    with pytest.raises(ValueError, match="exactly one of"):
        TemperatureSource(sysfs=Path("/x"), command=["x"])


def test_fail_safe_rejects_are_counted_by_cause_from_a_real_pipeline():
    """A detector that raises in a running pipeline: each board is REJECTed and counted as an inference
    error; a board that got no frame is a camera cause."""
    from prometheus_client import generate_latest

    from inspector.detect.classical import DifferenceDetector

    class BrokenDetector(DifferenceDetector):
        """Loads and warms up fine, then raises on every board (a delegate failing in service)."""

        warmed = False

        def warm_up(self, runs: int = 3) -> float:
            ms = super().warm_up(runs)
            self.warmed = True
            return ms

        def detect(self, *a, **kw):
            if self.warmed:
                raise RuntimeError("delegate returned garbage")
            return super().detect(*a, **kw)

    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "fps": 20.0, "demo_boards": 4},
            "detector": {"type": "classical"},
            "plc": {"mode": "off"},
        }
    )
    station = build_station(cfg, with_storage=False)
    station.pipeline._detector = BrokenDetector()  # the fault under test: inference raising on a running station
    m = StationMetrics("st", station.health, station.pipeline)
    station.pipeline.add_sink(m)
    station.start()
    try:
        assert wait_for(lambda: station.pipeline.results_published >= 3, 60)
    finally:
        station.stop()
    m.submit(InspectionResult.failed("no frame: timeout after 2.0 s"))
    s = samples(generate_latest(m.registry).decode())
    by_cause = {re.search(r'cause="(\w+)"', lbl).group(1): v for lbl, v in s["pcb_fail_safe_rejects_total"]}
    errors = s["pcb_inference_errors_total"][0][1]
    assert errors >= 3 and by_cause["inference_error"] == errors and by_cause["camera"] == 1
    assert by_cause["model_not_loaded"] == 0  # every cause is exported from the start


def test_sink_counts_by_class_and_fail_safe_rejects():
    h = Health()
    m = StationMetrics("st", h, thermal_root=Path("/nonexistent"))
    det = [Detection((0, 0, 5, 5), 2, 0.9), Detection((9, 9, 20, 20), 4, 0.95)]
    rejected = InspectionResult(1, "demo", Verdict.REJECT, det, {"inspect": 10.0, "total": 20.0}, "m")
    m.submit(rejected)
    m.submit(InspectionResult(2, "demo", Verdict.PASS, [], {"inspect": 12.0, "total": 30.0}, "m"))
    m.submit(InspectionResult.failed("no frame"))
    from prometheus_client import generate_latest

    s = samples(generate_latest(m.registry).decode())
    rejects = dict(s["pcb_rejects_total"])
    worst = rejected.worst.label  # the domain's severity order decides which class a board is counted under
    assert rejects == {f'{{class="{worst}",station="st"}}': 1.0, '{class="fail_safe",station="st"}': 1.0}
    assert dict(s["pcb_fail_safe_rejects_total"])['{cause="camera",station="st"}'] == 1.0
    assert sum(v for _, v in s["pcb_defects_total"]) == 2
    q = m.quantiles()
    assert q["inference_p50_ms"] == 10.0 and q["inference_p99_ms"] == 12.0


def test_the_latency_budget_is_a_bucket_edge_so_the_alert_fires_only_over_it():
    """histogram_quantile interpolates inside a bucket: with edges fitted to 48 ms only, a 120 ms budget and every board
    at 105 ms gave a p99 of 149.5 ms (the alert fired on a line within budget). With the budget an edge, every board
    under it lies at or below that edge, so the interpolated p99 cannot pass it; one over it lands above it."""
    from prometheus_client import generate_latest

    m = StationMetrics("st", Health(), thermal_root=Path("/nonexistent"), latency_budget_ms=120.0)
    for i in range(200):
        m.submit(InspectionResult(i, "demo", Verdict.PASS, [], {"inspect": 60.0, "total": 105.0}, "m"))
    s = dict(samples(generate_latest(m.registry).decode())["pcb_latency_seconds_bucket"])
    path = 'path="capture_to_verdict"'
    at_budget = [v for k, v in s.items() if path in k and 'le="0.12"' in k]
    total = [v for k, v in s.items() if path in k and 'le="+Inf"' in k]
    assert at_budget == total == [200.0]
    m.submit(InspectionResult(999, "demo", Verdict.PASS, [], {"inspect": 60.0, "total": 125.0}, "m"))
    s = dict(samples(generate_latest(m.registry).decode())["pcb_latency_seconds_bucket"])
    assert [v for k, v in s.items() if path in k and 'le="0.12"' in k] == [200.0]


def test_latency_window_is_bounded():
    m = StationMetrics("st", Health(), thermal_root=Path("/nonexistent"), window=100)
    for i in range(250):
        m.submit(InspectionResult(i, "demo", Verdict.PASS, [], {"inspect": float(i), "total": float(i)}, "m"))
    assert len(m._e2e_ms) == 100
    assert m.quantiles()["capture_to_verdict_p50_ms"] == 199.0  # the last 100 boards: 150..249


def test_parse_listen_and_percentile():
    assert parse_listen("0.0.0.0:9108") == ("0.0.0.0", 9108)
    assert parse_listen(":9108") == ("0.0.0.0", 9108)
    with pytest.raises(ValueError, match="metrics.listen"):
        parse_listen("9108")
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile(range(1, 101), 99) == 99
