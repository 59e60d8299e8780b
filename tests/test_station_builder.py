"""The composition root: plug-ins are chosen by the entry-point name `[station] plugins` gives, and
every part joins the station through one contract, before the pipeline exists or through add_part."""

from __future__ import annotations

import threading
import time

import pytest

from inspector.config import DetectorSection, Recipe, ReplayCamera, StationConfig
from inspector.station import StationBuilder, StationError, build_station
from inspector.synth import write_boards


class ListSink:
    name = "test-list"

    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def submit(self, r):
        with self.lock:
            self.results.append(r)

    def wait_for(self, n: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.results) >= n:
                    return True
            time.sleep(0.01)
        return False


def _cfg(tmp_path, **station) -> StationConfig:
    boards = write_boards(tmp_path / "boards", 2, seed=5)
    return StationConfig(
        station={"id": "builder-test", **station},
        camera=ReplayCamera(path=boards, fps=None, loop=True),
        detector=DetectorSection(type="classical"),
        recipes=[Recipe()],
        plc={"mode": "off"},
        storage={"database_url": f"sqlite:///{tmp_path / 'records.db'}", "archive_dir": str(tmp_path / "archive")},
    )


def test_a_plugin_named_in_the_config_that_is_not_installed_stops_the_build_naming_both(tmp_path):
    cfg = _cfg(tmp_path, plugins={"calibration": "lab-bench", "plc": "station"})
    with pytest.raises(StationError, match=r"station.plugins.calibration = 'lab-bench'.*installed: station"):
        build_station(cfg, with_storage=False)


def test_a_part_left_out_of_plugins_is_not_loaded(tmp_path):
    cfg = _cfg(tmp_path, plugins={"plc": "station"})
    station = build_station(cfg, with_storage=False)
    assert station.calibration is None
    with_cal = build_station(_cfg(tmp_path / "b"), with_storage=False)
    assert with_cal.calibration is not None  # the default names calibration.station:attach


def test_parts_change_the_station_before_the_pipeline_is_built_and_never_after(tmp_path):
    cfg = _cfg(tmp_path)
    from inspector.health import Health

    builder = StationBuilder(cfg, Health(), camera=object(), registrar=None)
    seen = []
    builder.wrap_camera(lambda cam: ("wrapped", cam))
    builder.compile_rules_with(lambda r: seen.append(r.name) or "rules")
    sink = ListSink()

    class Part:
        name = "probe"
        sink = None

        def start(self): ...
        def stop(self): ...

    part = Part()
    part.sink = sink
    builder.add_part(part)
    assert builder.camera[0] == "wrapped" and builder.sinks == [sink] and builder.parts == [part]
    assert builder.compile_rules(cfg.recipe()) == "rules" and seen == ["demo"]
    builder._sealed = True
    with pytest.raises(StationError, match="wrap_camera: the pipeline is already built"):
        builder.wrap_camera(lambda cam: cam)
    with pytest.raises(StationError, match="add_sink: the pipeline is already built"):
        builder.add_sink(sink)


def test_a_station_part_added_after_build_gets_results(tmp_path):
    cfg = _cfg(tmp_path, plugins={"plc": "station"})
    station = build_station(cfg, with_storage=False)
    sink = ListSink()

    class Counter:
        name = "counter"

        def __init__(self):
            self.sink = sink
            self.started = False

        def start(self):
            self.started = True

        def stop(self):
            self.started = False

    part = Counter()
    station.add_part(part)
    station.start()
    try:
        assert sink.wait_for(2, timeout=30.0), "the part's sink received no results"
        assert part.started
    finally:
        station.stop()
    assert not part.started


def test_the_recipe_is_compiled_once_at_build(tmp_path, monkeypatch):
    """The calibration part sets how recipes compile before the pipeline exists, so the start recipe
    is compiled (and checked) exactly once, with the compiler the part set."""
    import inspector.station as station_mod

    calls: list[str] = []
    real = station_mod.checked_rules

    def counting(cfg, recipe, rules, needs_reference):
        calls.append(recipe.name)
        return real(cfg, recipe, rules, needs_reference)

    monkeypatch.setattr(station_mod, "checked_rules", counting)
    station = build_station(_cfg(tmp_path), with_storage=False)  # the calibration part is loaded (default)
    assert station.calibration is not None
    assert calls == ["demo"]
    assert station.pipeline.rules.recipe.name == "demo"
