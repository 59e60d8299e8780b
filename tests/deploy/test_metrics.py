"""/metrics and /health of a real station (replay camera, classical detector, PLC off), over HTTP."""

from __future__ import annotations

import json
import re
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
            "detector": {"engine": "classical"},
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


def test_every_series_the_alerts_read_is_exported(running_station, tmp_path):
    _, base = running_station
    exported = set(samples(get(base + "/metrics")[1]))
    # Series that exist only on some hosts or in the sync process:
    exported |= {"pcb_accelerator_temperature_celsius", "pcb_thermal_zone_celsius"}
    from inspector.sync import PlantSync

    exported |= {n for n in PlantSync.metrics.__code__.co_consts if isinstance(n, str) and n.startswith("pcb_")}
    exported |= {"pcb_sync_pending_inspections", "pcb_sync_last_success_age_seconds"}
    rules = yaml.safe_load((ROOT / "packaging" / "prometheus" / "alerts.yml").read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            for metric in re.findall(r"\bpcb_[a-z_]+\b", r["expr"]):
                assert metric in exported, f"alert {r['alert']} reads {metric}, which the station does not export"


def test_accelerator_temperature_from_sysfs_thermal_zones(tmp_path):
    for i, (kind, milli) in enumerate([("cpu-thermal", "61000"), ("npu-thermal", "87500"), ("gpu-thermal", "70250")]):
        z = tmp_path / f"thermal_zone{i}"
        z.mkdir()
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(milli + "\n")
    broken = tmp_path / "thermal_zone9"
    broken.mkdir()
    (broken / "type").write_text("soc\n")  # no temp file: skipped, not an error
    zones = read_thermal_zones(tmp_path)
    assert [(k, c) for _, k, c in zones] == [("cpu-thermal", 61.0), ("npu-thermal", 87.5), ("gpu-thermal", 70.25)]
    h = Health()
    m = StationMetrics("st", h, thermal_root=tmp_path)
    from prometheus_client import generate_latest

    s = samples(generate_latest(m.registry).decode())
    assert s["pcb_accelerator_temperature_celsius"] == [('{station="st"}', 87.5)]
    assert len(s["pcb_thermal_zone_celsius"]) == 3


def test_sink_counts_by_class_and_fail_safe_rejects():
    h = Health()
    m = StationMetrics("st", h, thermal_root=Path("/nonexistent"))
    det = [Detection((0, 0, 5, 5), 2, 0.9), Detection((9, 9, 20, 20), 4, 0.95)]
    m.submit(InspectionResult(1, "demo", Verdict.REJECT, det, {"inspect": 10.0, "total": 20.0}, "m"))
    m.submit(InspectionResult(2, "demo", Verdict.PASS, [], {"inspect": 12.0, "total": 30.0}, "m"))
    m.submit(InspectionResult.failed("no frame"))
    from prometheus_client import generate_latest

    s = samples(generate_latest(m.registry).decode())
    rejects = dict(s["pcb_rejects_total"])
    assert rejects == {'{class="spur",station="st"}': 1.0, '{class="fail_safe",station="st"}': 1.0}
    assert sum(v for _, v in s["pcb_defects_total"]) == 2
    q = m.quantiles()
    assert q["inference_p50_ms"] == 10.0 and q["inference_p99_ms"] == 12.0


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
