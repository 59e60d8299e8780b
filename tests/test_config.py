import subprocess
import sys
from pathlib import Path

import pytest

from inspector.config import ConfigError, StationConfig, dump_toml, load_config, parse_config


def test_defaults_are_demo_mode():
    cfg = StationConfig()
    assert cfg.camera.type == "replay" and cfg.camera.path is None
    assert cfg.plc.mode == "server" and cfg.plc.simulator
    assert cfg.storage.database_url.startswith("sqlite:///data/")
    assert cfg.detector.model.name == "pcb-defect-det.tflite"


def test_every_field_has_a_description():
    from pydantic import BaseModel

    seen = set()

    def walk(model: type[BaseModel]):
        if model in seen:
            return
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", model.__name__
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"
            for t in getattr(f.annotation, "__args__", ()) + (f.annotation,):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t)
                for u in getattr(t, "__args__", ()):
                    if isinstance(u, type) and issubclass(u, BaseModel):
                        walk(u)

    walk(StationConfig)
    assert len(seen) >= 10


def test_show_round_trips():
    import tomllib

    cfg = StationConfig()
    assert parse_config(tomllib.loads(dump_toml(cfg))) == cfg


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {"camera": {"type": "aravis", "address": "127.0.0.1", "exposure_us": -5}},
            "camera.exposure_us: -5 is below 1",
        ),
        ({"plc": {"mode": "master"}}, "plc.mode: 'master' is not one of"),
        ({"plc": {"prot": 502}}, "plc.prot: unknown key"),
        ({"plc": {"port": 70000}}, "plc.port: 70000 is above 65535"),
        ({"camera": {"type": "firewire"}}, "camera: type 'firewire' is not one of"),
        ({"camera": {"path": "boards"}}, "camera.type: required key is missing: one of 'aravis', 'genicam', 'opencv'"),
        ({"camera": {"type": "aravis"}}, "camera: give camera.address"),
        ({"recipes": [{"thresholds": {"opn": 0.5}}]}, "recipes.0.thresholds: unknown class 'opn'"),
        ({"active_recipe": "nope"}, "active_recipe 'nope' is not one of the recipes"),
    ],
)
def test_bad_values_are_named(data, expected):
    with pytest.raises(ConfigError) as ei:
        parse_config(data)
    assert any(expected in p for p in ei.value.problems), ei.value.problems


def test_config_check_cli(tmp_path):
    bad = tmp_path / "station.toml"
    bad.write_text('[camera]\ntype = "aravis"\naddress = "127.0.0.1"\nexposure_us = -5\n[plc]\nmode = "x"\n')
    r = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "config", "check", str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "camera.exposure_us: -5 is below 1" in r.stderr
    assert "plc.mode: 'x' is not one of" in r.stderr
    assert "Traceback" not in r.stderr

    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[camera\n")
    r = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "config", "check", str(syntax)], capture_output=True, text=True
    )
    assert r.returncode == 1 and "TOML syntax error" in r.stderr and "Traceback" not in r.stderr

    good = tmp_path / "good.toml"
    good.write_text('[station]\nid = "aoi-7"\n[plc]\nmode = "off"\n')
    r = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "config", "check", str(good)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "config", "show", "--config", str(good)], capture_output=True, text=True
    )
    assert r.returncode == 0 and 'id = "aoi-7"' in r.stdout and 'mode = "off"' in r.stdout


def test_missing_file_and_relative_paths(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    f = tmp_path / "s.toml"
    f.write_text('[camera]\ntype = "replay"\npath = "boards"\n[[recipes]]\nname = "demo"\nreference = "ref.png"\n')
    cfg = load_config(f)
    assert cfg.camera.path == tmp_path / "boards"
    assert cfg.recipe().reference == tmp_path / "ref.png"
    # Keys are inputs, relative to the file; storage stays relative to the working directory
    # (systemd: WorkingDirectory=/var/lib/pcb-inspector, config read-only in /etc/pcb-inspector).
    f.write_text(
        '[storage]\ndatabase_url = "sqlite:///db/records.db"\narchive_dir = "img"\n'
        '[detector]\ntrusted_keys = ["keys/plant.pub", "/etc/pcb/other.pub"]\n'
    )
    cfg = load_config(f)
    assert cfg.detector.trusted_keys == [tmp_path / "keys/plant.pub", Path("/etc/pcb/other.pub")]
    assert cfg.storage.database_url == "sqlite:///db/records.db" and cfg.storage.archive_dir == Path("img")


def test_absolute_input_paths_are_kept(tmp_path):
    """An absolute board folder, reference, ROI mask or producer path is used as written, never dropped.

    (It once came back as None: the station then ran the recipe without its golden reference.)
    """
    f = tmp_path / "s.toml"
    f.write_text(
        '[camera]\ntype = "replay"\npath = "/srv/boards"\n'
        '[[recipes]]\nname = "demo"\nreference = "/srv/ref/golden.png"\nroi_mask = "/srv/ref/mask.png"\n'
    )
    cfg = load_config(f)
    assert cfg.camera.path == Path("/srv/boards")
    assert cfg.recipe().reference == Path("/srv/ref/golden.png")
    assert cfg.recipe().roi_mask == Path("/srv/ref/mask.png")
    f.write_text('[camera]\ntype = "genicam"\ncti = "/opt/vendor/producer.cti"\n')
    assert load_config(f).camera.cti == Path("/opt/vendor/producer.cti")
    f.write_text('[camera]\ntype = "genicam"\ncti = "vendor/producer.cti"\n')
    assert load_config(f).camera.cti == tmp_path / "vendor/producer.cti"


def test_detector_engine_is_the_old_name_of_detector_type(tmp_path, caplog):
    """Station files written before the detector registry say `engine`: they load, with a deprecation message."""
    old = tmp_path / "old.toml"
    old.write_text('[detector]\nengine = "classical"\n[plc]\nmode = "off"\n')
    with pytest.warns(DeprecationWarning, match=r"detector.engine is deprecated: write `type = 'classical'`"):
        cfg = load_config(old)
    assert cfg.detector.type == "classical"
    assert "detector.engine is deprecated" in caplog.text
    new = tmp_path / "new.toml"
    new.write_text('[detector]\ntype = "classical"\n')
    assert load_config(new).detector.type == "classical"
    both = tmp_path / "both.toml"
    both.write_text('[detector]\ntype = "litert"\nengine = "classical"\n')
    with pytest.raises(ConfigError, match="give detector.type only"):
        load_config(both)
    with pytest.raises(ConfigError, match=r"detector.type: 'onnx-x' is not one of 'litert'"):
        parse_config({"detector": {"type": "onnx-x"}})
