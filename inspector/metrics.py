"""Prometheus metrics and the `/health` endpoint of a station.

Two kinds of figures, on purpose:
- per-board figures (latency, verdicts, classes) are pushed by the pipeline: this object is a result
  sink whose `submit` only increments counters and appends to a bounded window, so inference never
  waits on a scrape;
- state figures (health lamps, camera fps, PLC link, queue depth, disk, RSS, temperatures) are read
  when Prometheus scrapes, from `Health` and the pipeline counters, so they are never stale.

`/health` answers 200 only when the station is READY (the Kubernetes readiness probe), and
`/health/live` answers 200 while the pipeline threads run (the liveness probe): a PLC that is down
takes the station out of service but must not get the pod restarted in a loop.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .board_serial import CODE_UNREADABLE, SERIAL_MISMATCH
from .domain import InspectionResult, Verdict
from .host_cpu import host_cpu

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.04, 0.048, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


def latency_buckets(budget_ms: float) -> tuple[float, ...]:
    """The histogram's edges with the station's own budget among them.

    Why: Prometheus' `histogram_quantile` interpolates inside a bucket, so the alert `p99 > budget` is exact only at an
    edge. The edges fitted the default 48 ms alone: with a 120 ms budget, boards at 105 ms read as a p99 of 149.5 ms
    and raised InspectionLatencyOverBudget on a line within its budget.
    """
    return tuple(sorted({*LATENCY_BUCKETS_S, round(budget_ms / 1000, 6)}))


#: Why a board was rejected without a result, from its reason (a bounded label set; see `fail_safe_cause`).
FAIL_SAFE_CAUSES = ("inference_error", "model_not_loaded", "camera", "registration", "backlog", "stopped", "other")
#: Why a board was rejected for its code (`serial_reject_cause`): it was inspected, so it is not fail-safe.
SERIAL_REJECT_CAUSES = ("mismatch", "unreadable")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def fail_safe_cause(reason: str | None) -> str:
    """Map a fail-safe REJECT's reason (the pipeline's wording) to one of FAIL_SAFE_CAUSES."""
    r = (reason or "").lower()
    if r.startswith("inspection failed"):
        return "inference_error"
    if r.startswith("model not loaded"):
        return "model_not_loaded"
    if r.startswith(("camera", "no frame")):
        return "camera"
    if r.startswith("board not registered"):
        return "registration"
    if "backlog full" in r or "queue full" in r:
        return "backlog"
    if r.startswith("station stopped"):
        return "stopped"
    return "other"


def serial_reject_cause(reason: str | None) -> str | None:
    """One of SERIAL_REJECT_CAUSES when a REJECT's reason is its board code (inspector.board_serial), else None.

    A wrong or unreadable code is a labelling or conveyor problem on a board that was inspected: counted
    as fail-safe it would fire FailSafeRejectRateHigh, whose description sends people to the camera and model.
    """
    r = reason or ""
    if r.startswith(SERIAL_MISMATCH):
        return "mismatch"
    if r.startswith(CODE_UNREADABLE):
        return "unreadable"
    return None


class TemperatureReader:
    """The configured accelerator temperature (metrics.accelerator_temperature), in °C.

    A vendor command can take a while, so its reading is kept for `cache_s`; a sysfs file is read at
    each scrape. Any failure gives None (the series disappears and AcceleratorTemperatureMissing fires
    on an accelerator station) and is logged once per distinct error, never raised into a scrape."""

    def __init__(self, source: Any, cache_s: float = 10.0):
        self.source = source
        self.cache_s = cache_s
        self._at = -math.inf
        self._value: float | None = None
        self._last_error: str | None = None
        self.errors = 0

    def read(self) -> float | None:
        src = self.source
        if src is None:
            return None
        if src.command is not None and time.monotonic() - self._at < self.cache_s:
            return self._value
        try:
            if src.sysfs is not None:
                text, scale = Path(src.sysfs).read_text(), src.scale or 0.001
            else:
                out = subprocess.run(src.command, capture_output=True, text=True, timeout=2.0, check=True)
                text, scale = out.stdout, src.scale or 1.0
            m = _NUMBER.search(text)
            if m is None:
                raise ValueError(f"no number in {text.strip()[:60]!r}")
            value: float | None = float(m.group()) * scale
            self._last_error = None
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            where = src.sysfs or " ".join(src.command or [])
            msg = f"metrics.accelerator_temperature {where}: {exc}"
            if msg != self._last_error:
                log.warning("%s", msg)
            self._last_error = msg
            self.errors += 1
            value = None
        self._at, self._value = time.monotonic(), value
        return value


def parse_listen(spec: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (all interfaces) -> (host, port); ValueError naming the bad part."""
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"metrics.listen {spec!r}: expected HOST:PORT, e.g. 0.0.0.0:9108")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = max(0, min(len(data) - 1, math.ceil(q / 100 * len(data)) - 1))
    return data[k]


def read_thermal_zones(root: Path = Path("/sys/class/thermal")) -> list[tuple[str, str, float]]:
    """(zone, type, °C) for every readable sysfs thermal zone; empty where the platform has none."""
    out = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue  # some zones refuse reads (e.g. a powered-down sensor): skip, never fail a scrape
        out.append((zone.name, kind, milli / 1000.0))
    return out


def _cgroup_memory_ratio(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Container memory use against its limit (cgroup v2); None when unlimited or not in a cgroup."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((root / "memory.current").read_text().strip())
        return current / int(limit)
    except (OSError, ValueError):
        return None


def _queue_depth(part: Any) -> float | None:
    """Backlog of the database writer, whatever the storage package calls it."""
    if part is None:
        return None
    for attr in ("queue_depth", "backlog", "pending"):
        v = getattr(part, attr, None)
        if callable(v):
            try:
                v = v()
            except Exception:
                continue
        if isinstance(v, int | float):
            return float(v)
    q = getattr(part, "queue", None) or getattr(part, "_queue", None)
    if q is not None and hasattr(q, "qsize"):
        return float(q.qsize())
    return None


class StationMetrics:
    """Result sink + Prometheus collector + HTTP server for one station."""

    name = "metrics"

    def __init__(
        self,
        station_id: str,
        health: Any,
        pipeline: Any = None,
        *,
        listen: str | None = None,
        latency_budget_ms: float = 48.0,
        window: int = 1000,
        recorder: Any = None,
        disk_path: Path | None = None,
        thermal_root: Path = Path("/sys/class/thermal"),
        extra_sources: list[Any] | None = None,
        temperature: Any = None,
        parts: list[Any] | None = None,
    ):
        self.station_id = station_id
        self.health = health
        self.pipeline = pipeline
        self.listen = listen
        self.latency_budget_ms = latency_budget_ms
        self.recorder = recorder
        self.disk_path = disk_path
        self.thermal_root = thermal_root
        self.extra_sources = list(extra_sources or [])
        """Objects with `metrics() -> dict[str, float]` (the plant sync worker) exported as gauges."""
        self.temperature = TemperatureReader(temperature)
        self.cpu = host_cpu()
        """Read once: an INT8 model's speed on the CPU depends on it (docs/performance.md, *Which CPU*)."""
        self.parts = parts if parts is not None else []
        """The station's parts (the list itself, so parts attached later are seen): the model watcher."""
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._inference_ms: deque[float] = deque(maxlen=window)
        self._e2e_ms: deque[float] = deque(maxlen=window)
        self.model_load_s: float | None = None
        self._model_loading_since: float | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

        labels = ["station"]
        self.boards = Counter(
            "pcb_boards", "Boards inspected, by verdict.", [*labels, "verdict"], registry=self.registry
        )
        self.rejects = Counter(
            "pcb_rejects",
            "Rejected boards by the class of their worst defect ('serial': no defect, a wrong or unreadable board code;"
            " 'fail_safe': rejected without a result).",
            [*labels, "class"],
            registry=self.registry,
        )
        self.defects = Counter("pcb_defects", "Defects found, by class.", [*labels, "class"], registry=self.registry)
        self.fail_safe = Counter(
            "pcb_fail_safe_rejects",
            "Boards rejected without an inspection result, by cause (" + ", ".join(FAIL_SAFE_CAUSES) + ").",
            [*labels, "cause"],
            registry=self.registry,
        )
        self.serial_rejects = Counter(
            "pcb_serial_rejects",
            "Boards rejected for their board code, by cause (" + ", ".join(SERIAL_REJECT_CAUSES) + "),"
            " whatever else was found on them.",
            [*labels, "cause"],
            registry=self.registry,
        )
        self.inference_errors = Counter(
            "pcb_inference_errors",
            "Boards whose inspection raised (detector or pre-processing error): each was REJECTed.",
            labels,
            registry=self.registry,
        )
        for verdict in Verdict:  # every verdict and cause exported from the start: rate() needs the zero
            self.boards.labels(station_id, verdict.value)
        for cause in FAIL_SAFE_CAUSES:
            self.fail_safe.labels(station_id, cause)
        for cause in SERIAL_REJECT_CAUSES:
            self.serial_rejects.labels(station_id, cause)
        self.inference_errors.labels(station_id)
        self.latency = Histogram(
            "pcb_latency_seconds",
            "Per-board latency: path=inference (inference thread) or capture_to_verdict (frame to verdict).",
            [*labels, "path"],
            buckets=latency_buckets(latency_budget_ms),
            registry=self.registry,
        )
        self.registry.register(_Collector(self))
        health.subscribe(self._on_health)
        st = health.get("model")
        if st is not None and not st.ok:
            self._model_loading_since = st.since

    # ------------------------------------------------------------------ sink
    def submit(self, result: InspectionResult) -> None:
        """Called in the inference thread: counters and a bounded window only, nothing that can block."""
        sid = self.station_id
        self.boards.labels(sid, result.verdict.value).inc()
        if not result.passed:
            worst = result.worst
            serial = serial_reject_cause(result.reason)
            if serial is not None:
                self.serial_rejects.labels(sid, serial).inc()
            if worst is not None:
                self.rejects.labels(sid, worst.label).inc()
            elif serial is not None:
                self.rejects.labels(sid, "serial").inc()
            else:
                self.rejects.labels(sid, "fail_safe").inc()
                cause = fail_safe_cause(result.reason)
                self.fail_safe.labels(sid, cause).inc()
                if cause == "inference_error":
                    self.inference_errors.labels(sid).inc()
        for d in result.detections:
            self.defects.labels(sid, d.label).inc()
        t = result.timings_ms
        inference = t.get("inspect")
        total = t.get("total")
        with self._lock:
            if inference is not None:
                self._inference_ms.append(inference)
            if total is not None:
                self._e2e_ms.append(total)
        if inference is not None:
            self.latency.labels(sid, "inference").observe(inference / 1000)
        if total is not None:
            self.latency.labels(sid, "capture_to_verdict").observe(total / 1000)

    def quantiles(self) -> dict[str, float]:
        with self._lock:
            inf, e2e = list(self._inference_ms), list(self._e2e_ms)
        return {
            "inference_p50_ms": percentile(inf, 50),
            "inference_p99_ms": percentile(inf, 99),
            "capture_to_verdict_p50_ms": percentile(e2e, 50),
            "capture_to_verdict_p99_ms": percentile(e2e, 99),
        }

    def _on_health(self, state: Any) -> None:
        # Model load time = from the pipeline saying "loading" to the model lamp turning green.
        if state.name != "model":
            return
        if not state.ok:
            self._model_loading_since = state.since
        elif self._model_loading_since is not None:
            self.model_load_s = state.since - self._model_loading_since
            self._model_loading_since = None

    # ------------------------------------------------------------------ health
    def live(self) -> tuple[bool, str]:
        if self.pipeline is None:
            return True, "no pipeline"
        if self.pipeline.running:
            return True, "pipeline running"
        return False, "pipeline threads are not running"

    def health_document(self) -> dict[str, Any]:
        info = getattr(self.pipeline, "detector_info", None) if self.pipeline is not None else None
        live, why = self.live()
        return {
            "station": self.station_id,
            "ready": self.health.ready,
            "live": live,
            "live_reason": why,
            "summary": self.health.summary(),
            "model_id": info.model_id if info else None,
            "backend": info.backend if info else None,
            "components": {
                name: {"ok": s.ok, "reason": s.reason, "detail": s.detail} for name, s in self.health.snapshot().items()
            },
        }

    # ------------------------------------------------------------------ server
    def start(self) -> None:
        if not self.listen or self._server is not None:
            return
        host, port = parse_listen(self.listen)
        try:
            self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        except OSError as exc:  # "Address already in use" alone named neither the port nor what wanted it
            raise OSError(exc.errno, f"metrics.listen {host}:{port}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics", *self._server.server_address[:2])

    @property
    def address(self) -> tuple[str, int] | None:
        return self._server.server_address[:2] if self._server else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Collector:
    """Scrape-time gauges: read from Health, the pipeline, the OS."""

    def __init__(self, m: StationMetrics):
        self.m = m

    def collect(self):  # noqa: C901 - one flat list of gauges reads best
        m = self.m
        sid = m.station_id

        def gauge(name: str, doc: str, value: float | None, **labels: str) -> GaugeMetricFamily | None:
            if value is None:
                return None
            g = GaugeMetricFamily(name, doc, labels=["station", *labels])
            g.add_metric([sid, *labels.values()], float(value))
            return g

        out: list[GaugeMetricFamily | None] = []
        snap = m.health.snapshot()
        up = GaugeMetricFamily("pcb_component_up", "1 when the component is healthy.", labels=["station", "component"])
        for name, s in snap.items():
            up.add_metric([sid, name], 1.0 if s.ok else 0.0)
        out.append(up)
        out.append(gauge("pcb_station_ready", "1 when the station is READY.", 1.0 if m.health.ready else 0.0))
        # Camera and PLC get their own gauges so an alert can say which one is down, even before
        # the component has reported (absent -> 0).
        for comp in ("camera", "plc", "database"):
            s = snap.get(comp)
            out.append(gauge(f"pcb_{comp}_up", f"1 when the {comp} is healthy.", 1.0 if s and s.ok else 0.0))

        q = m.quantiles()
        lat = GaugeMetricFamily(
            "pcb_latency_ms",
            "Latency quantiles over the last boards (window), ms.",
            labels=["station", "path", "quantile"],
        )
        for key, v in q.items():
            path, quant = key.rsplit("_p", 1)
            lat.add_metric([sid, path, "0." + quant.removesuffix("_ms")], v)
        out.append(lat)
        out.append(
            gauge("pcb_latency_budget_ms", "End-to-end p99 budget (metrics.latency_budget_ms).", m.latency_budget_ms)
        )
        out.append(gauge("pcb_model_load_seconds", "Time from model load start to ready.", m.model_load_s))

        p = m.pipeline
        if p is not None:
            info = getattr(p, "detector_info", None)
            if info is not None:
                g = GaugeMetricFamily(
                    "pcb_model_info", "The model that runs and its backend.", labels=["station", "model", "backend"]
                )
                g.add_metric([sid, info.model_id, info.backend], 1.0)
                out.append(g)
                cpu = GaugeMetricFamily(
                    "pcb_host_cpu_info",
                    "The CPU the station runs on; int8_dot empty: no INT8 dot-product instructions (VNNI, AMX, "
                    "asimddp), so a CPU-run INT8 model is several times slower.",
                    labels=["station", "model", "cores", "vector", "int8_dot"],
                )
                c = m.cpu
                cpu.add_metric([sid, c.model, str(c.cores), c.vector, ",".join(c.int8_dot)], 1.0)
                out.append(cpu)
                out.append(
                    gauge(
                        "pcb_accelerator_present",
                        "1 when an accelerator took part of the model graph (counted nodes; not XNNPACK on the CPU).",
                        1.0 if info.accelerated else 0.0,
                    )
                )
                out.append(
                    gauge(
                        "pcb_model_cpu_fallback",
                        "1 when an accelerator was configured but the model runs on the CPU (amber model lamp).",
                        1.0 if info.warning.startswith("CPU fallback") else 0.0,
                    )
                )
            c = p.counters
            out.append(gauge("pcb_camera_fps", "Camera frame rate over the last 30 frames.", c.fps))
            for field, doc in (
                ("frames", "Frames captured."),
                ("dropped", "Free-run frames replaced before inference."),
                ("incomplete", "Incomplete camera buffers."),
                ("timeouts", "Camera frame timeouts."),
                ("reconnects", "Camera reconnects."),
                ("missed_triggers", "Triggers that got no frame (answered REJECT)."),
            ):
                # Exported as gauges of monotonic counts: the pipeline owns the count, we only read it.
                out.append(gauge(f"pcb_camera_{field}_count", doc, getattr(c, field)))
            out.append(gauge("pcb_results_published_count", "Results published to the sinks.", p.results_published))
            out.append(gauge("pcb_pipeline_running", "1 while capture and inference threads run.", float(p.running)))

        out.append(gauge("pcb_db_queue_depth", "Results waiting for the database writer.", _queue_depth(m.recorder)))
        if m.disk_path is not None:
            probe = m.disk_path if m.disk_path.exists() else Path.cwd()
            try:
                du = shutil.disk_usage(probe)
                out.append(gauge("pcb_disk_free_bytes", "Free bytes on the data volume.", du.free))
                out.append(gauge("pcb_disk_free_ratio", "Free fraction of the data volume.", du.free / du.total))
            except OSError:
                pass
        try:
            import psutil

            proc = psutil.Process(os.getpid())
            out.append(
                gauge("pcb_process_rss_bytes", "Resident memory of the station process.", proc.memory_info().rss)
            )
            vm = psutil.virtual_memory()
            out.append(gauge("pcb_memory_used_ratio", "Used memory fraction.", vm.percent / 100, scope="host"))
        except Exception:  # psutil missing or /proc unreadable: the scrape still answers
            pass
        cg = _cgroup_memory_ratio()
        out.append(gauge("pcb_memory_used_ratio", "Used memory fraction.", cg, scope="cgroup"))

        zones = read_thermal_zones(m.thermal_root)
        if zones:
            tz = GaugeMetricFamily(
                "pcb_thermal_zone_celsius", "sysfs thermal zones.", labels=["station", "zone", "type"]
            )
            for zone, kind, c in zones:
                tz.add_metric([sid, zone, kind], c)
            out.append(tz)
        doc = "Accelerator temperature from metrics.accelerator_temperature (absent when not configured or unreadable)."
        out.append(gauge("pcb_accelerator_temperature_celsius", doc, m.temperature.read()))
        out.append(
            gauge(
                "pcb_accelerator_temperature_configured",
                "1 when metrics.accelerator_temperature names a source.",
                0.0 if m.temperature.source is None else 1.0,
            )
        )
        watcher = next((x for x in list(m.parts) if getattr(x, "name", None) == "model-watcher"), None)
        if watcher is not None:
            out.append(gauge("pcb_model_swaps_count", "Models hot-swapped in since start.", watcher.swaps))
            out.append(gauge("pcb_model_swaps_refused_count", "Model changes refused since start.", watcher.failures))
            out.append(
                gauge(
                    "pcb_model_change_refused",
                    "1 while the last model change was refused (the station runs its previous model).",
                    1.0 if watcher.last_error else 0.0,
                )
            )

        for src in m.extra_sources:
            try:
                values = src.metrics()
            except Exception:
                log.exception("metrics source %s failed", src)
                continue
            for name, v in values.items():
                out.append(gauge(name, f"from {type(src).__name__}", v))
        # Merge same-named families (pcb_memory_used_ratio has two scopes).
        merged: dict[str, GaugeMetricFamily] = {}
        for fam in out:
            if fam is None:
                continue
            if fam.name in merged:
                merged[fam.name].samples.extend(fam.samples)
            else:
                merged[fam.name] = fam
        yield from merged.values()


def _handler_for(m: StationMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/metrics":
                self._send(200, generate_latest(m.registry), CONTENT_TYPE_LATEST)
            elif path == "/health":
                doc = m.health_document()
                self._send(200 if doc["ready"] else 503, json.dumps(doc).encode(), "application/json")
            elif path == "/health/live":
                ok, why = m.live()
                body = json.dumps({"live": ok, "reason": why}).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found: try /metrics, /health, /health/live\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("metrics http: " + fmt, *args)

    return Handler


def attach_metrics(station: Any, listen: str | None = None) -> StationMetrics | None:
    """Add the metrics sink/server to a built station when `metrics.listen` (or `listen`) is set."""
    cfg = station.cfg
    listen = listen or cfg.metrics.listen
    if not listen:
        return None
    parse_listen(listen)  # fail at build time with the key named, not in a thread later
    metrics = StationMetrics(
        cfg.station.id,
        station.health,
        station.pipeline,
        listen=listen,
        latency_budget_ms=cfg.metrics.latency_budget_ms,
        recorder=station.recorder,
        disk_path=Path(cfg.storage.archive_dir),
        temperature=cfg.metrics.accelerator_temperature,
        parts=station.parts,
    )
    station.add_part(metrics)  # started with the station; its sink gets every result
    station.metrics = metrics
    return metrics


def source_registry(station_id: str, source: Any) -> CollectorRegistry:
    """A registry exporting `source.metrics()` (name -> value) as gauges labelled with the station:
    what the plant sync process serves on its own port."""

    class _SourceCollector:
        def collect(self):
            for name, v in source.metrics().items():
                g = GaugeMetricFamily(name, f"from {type(source).__name__}", labels=["station"])
                g.add_metric([station_id], v)
                yield g

    reg = CollectorRegistry()
    reg.register(_SourceCollector())
    return reg


def _now() -> float:
    return time.monotonic()
