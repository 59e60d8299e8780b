"""`config check` runs every start check that needs no hardware, and the station applies the same
checks at start: values that used to fail only later (at `history --stats`, in a retry loop, as a
traceback from the PLC thread, or as a REJECT on every board) fail here with the key named.

Real parts: the CLI as installed, the shipped model, synthetic boards, the station as `run` builds it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.config import DEFAULT_MODEL, ConfigError, load_config
from inspector.domain import TriggerRequest, Verdict
from inspector.station import build_station


def check(capsys, path: Path) -> tuple[int, str]:
    rc = main(["config", "check", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[storage]\ntimezone = "Europe/Berlinn"\n', "storage.timezone: unknown time zone"),
        ('[storage]\ntimezone = ""\n', "storage.timezone: unknown time zone"),
        ('[storage]\nshift_starts = ["06:00", "25:00"]\n', "storage.shift_starts: shift start '25:00' is not a time"),
        ('[storage]\nshift_starts = ["6"]\n', "storage.shift_starts: shift start '6' is not HH:MM"),
        ('[storage]\nshift_starts = ["06:30"]\n', "storage.shift_starts: shift start '06:30': shifts must start on"),
        ('[storage]\nshift_starts = ["06:00", "06:00"]\n', "storage.shift_starts: shift start '06:00' is listed twice"),
        ('[camera]\ntype = "aravis"\naddress = "300.1.2.3"\n', "camera.address: not an IPv4 address"),
        ('[camera]\ntype = "aravis"\naddress = "cam-1.local"\n', "camera.address: not an IPv4 address"),
        ('[plc]\nhost = "300.1.2.3"\n', "plc.host: the address is not a valid IP address"),
        ('[plc]\nmode = "client"\nhost = "plc 7"\n', "plc.host: the address is neither an IP address nor a valid"),
        ('[plc]\nhost = ""\n', "plc.host: the address is empty"),
        ('[detector]\nmodel = "nowhere/m.tflite"\n', "detector.model: "),
        ('[detector]\ntrusted_keys = ["missing.pub"]\n', "detector.trusted_keys.0: "),
        ('[camera]\ntype = "replay"\npath = "no-such-folder"\n', "camera.path: "),
        ('[camera]\ntype = "replay"\npath = "."\n', "holds no readable board image"),
        ('[metrics]\nlisten = "0.0.0.0"\n', "metrics.listen: '0.0.0.0' is not HOST:PORT"),
        ('[storage]\ndatabase_url = "inspections.db"\n', "storage.database_url: 'inspections.db' is not a SQLAlchemy"),
        ('[storage]\ndatabase_url = "mysql://u@h/db"\n', "storage.database_url: 'mysql': only sqlite and postgresql"),
        ('[[recipes]]\nname = "demo"\nreference = "golden.png"\n', "recipes.demo.reference: reference image"),
    ],
)
def test_config_check_fails_on_values_that_only_failed_later(tmp_path, capsys, toml, expected):
    path = tmp_path / "station.toml"
    path.write_text(toml)
    rc, out = check(capsys, path)
    assert rc == 1, out
    assert expected in out, out
    assert "Traceback" not in out


def test_good_values_pass(tmp_path, capsys, demo_boards):
    path = tmp_path / "station.toml"
    path.write_text(
        '[storage]\ntimezone = "Asia/Shanghai"\nshift_starts = ["08:00", "20:00"]\n'
        '[plc]\nmode = "client"\nhost = "plc-7.line1.local"\n'
        '[metrics]\nlisten = "127.0.0.1:9100"\n'
    )
    rc, out = check(capsys, path)
    assert rc == 0, out
    golden = demo_boards / "board0000_temp.png"
    path.write_text(
        '[camera]\ntype = "aravis"\naddress = "192.168.10.20"\n[plc]\nhost = "::1"\n'
        f'[[recipes]]\nname = "demo"\nreference = "{golden}"\n'
    )
    rc, out = check(capsys, path)
    assert rc == 0, out


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_a_blank_golden_image_is_refused_at_load_not_a_reject_on_every_board(tmp_path, capsys, noise):
    """A golden image with nothing in view (the light off, a lens cap, a wrong crop): no board can be registered to
    it, so every board would be a REJECT "not registered" while the station looks busy. Refused by name instead."""
    import cv2
    import numpy as np

    golden = tmp_path / "golden.png"
    blank = np.full((480, 640), 40, np.float32) + np.random.default_rng(0).normal(0, noise, (480, 640))
    cv2.imwrite(str(golden), np.clip(blank, 0, 255).astype(np.uint8))
    path = tmp_path / "station.toml"
    path.write_text(f'[[recipes]]\nname = "demo"\nreference = "{golden}"\n')
    rc, out = check(capsys, path)
    assert rc == 1 and "recipes.demo.reference" in out and "boards cannot be registered to it" in out, out
    assert "blank" in out or "no texture" in out, out


def test_a_golden_image_the_model_cannot_read_is_refused_at_load(tmp_path, capsys):
    """A golden board captured with the camera's gamma on (0.45): copper and laminate too close for the model's input
    preparation, so every board would be a REJECT `image not inspectable` naming the golden image. Refused at load
    with the remedy; a station told the camera's gamma (`[detector] camera_gamma`) reads it."""
    import cv2
    import numpy as np

    from inspector.evaluation.camera_domain import render

    temp = cv2.imread(str(Path(__file__).parent / "fixtures" / "deeppcb" / "92000010_temp.jpg"), cv2.IMREAD_GRAYSCALE)
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** 0.45), 0, 255).astype(np.uint8)
    golden = tmp_path / "golden.png"
    cv2.imwrite(str(golden), cv2.LUT(render(temp, 4)[0], lut))  # copper/laminate 2.29:1, 1.45:1 through the gamma
    recipe = f'[[recipes]]\nname = "demo"\nreference = "{golden}"\n'
    path = tmp_path / "station.toml"
    path.write_text(recipe)
    rc, out = check(capsys, path)
    assert rc == 1 and "recipes.demo.reference" in out and "the model cannot read it" in out, out
    assert "low contrast: camera gamma to 1, black level to 0" in out, out
    path.write_text("[detector]\ncamera_gamma = 0.45\n" + recipe)
    rc, out = check(capsys, path)
    assert rc == 0, out


def test_a_bad_value_fails_wherever_the_file_is_loaded(tmp_path):
    """Validators in the config model: `run`, the UI and `history` refuse the file too, not just `check`."""
    path = tmp_path / "station.toml"
    path.write_text('[storage]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="storage.timezone: unknown time zone"):
        load_config(path)
    assert main(["history", "--config", str(path), "--stats"]) == 2


def test_a_corrupt_model_package_fails_config_check(tmp_path, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    model = pkg / DEFAULT_MODEL.name
    blob = DEFAULT_MODEL.read_bytes()
    model.write_bytes(blob[: len(blob) // 2])
    shutil.copy(DEFAULT_MODEL.with_suffix(".json"), pkg)
    path = tmp_path / "station.toml"
    path.write_text(f'[detector]\nmodel = "{model}"\n')
    rc, out = check(capsys, path)
    assert rc == 1 and "detector.model:" in out and "does not match the sidecar" in out, out


# ------------------------------------------------------------------ a model that needs a reference
@pytest.fixture
def bare_boards(tmp_path, demo_boards, demo_truth) -> Path:
    """Boards as a live camera delivers them: no `<id>_temp` reference beside them."""
    out = tmp_path / "bare"
    out.mkdir()
    names = [n for n, boxes in sorted(demo_truth.items()) if boxes][:2]
    for n in names:
        shutil.copy(demo_boards / f"{n}_test.png", out / f"{n}.png")
    (out / "truth.json").write_text(json.dumps({n: demo_truth[n] for n in names}))
    return out


def station_toml(tmp_path: Path, boards: Path, recipe: str = "") -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        f'[camera]\ntype = "replay"\npath = "{boards}"\ntrigger = "software"\n'
        '[detector]\ndelegate = "cpu"\n[plc]\nmode = "off"\n'
        '[[recipes]]\nname = "demo"\n' + recipe
    )
    return path


def test_recipe_without_reference_on_a_model_that_needs_one(tmp_path, capsys, bare_boards, demo_boards):
    """Before: `config check` OK, station READY, then every board REJECT (RESULT_CODE 255, ERROR_CODE 0)."""
    path = station_toml(tmp_path, bare_boards)
    rc, out = check(capsys, path)
    assert rc == 1, out
    assert "recipes.demo.reference: not set, but model pcb-defect-det.tflite compares every board" in out, out
    assert "2 of 2 boards in camera.path" in out, out

    results = []

    class Sink:
        name = "test"

        def submit(self, r):
            results.append(r)

    station = build_station(load_config(path), sinks=[Sink()], with_storage=False, with_plc=False)
    state = station.health.get("recipe")
    assert state is not None and not state.ok and "recipes.demo.reference: not set" in state.reason
    assert station.health.error_code() == 60 and not station.health.ready
    station.start()
    try:
        assert station.pipeline.trigger(TriggerRequest(part_seq=1)).done.wait(60)
    finally:
        station.stop()
    assert [r.verdict for r in results] == [Verdict.REJECT]
    assert "recipes.demo.reference: not set" in results[0].reason, "the board's REJECT names the recipe's fault"
    assert not station.health.get("recipe").ok  # the board's REJECT does not clear the start fault

    # With a golden reference in the recipe the same station starts without a recipe fault.
    good = station_toml(tmp_path, bare_boards, f'reference = "{demo_boards / "board0000_temp.png"}"\n')
    rc, out = check(capsys, good)
    assert rc == 0, out
    station = build_station(load_config(good), with_storage=False, with_plc=False)
    assert station.health.get("recipe").ok


def test_a_bad_plc_host_on_the_command_line_names_the_key(capsys):
    """Before: a pydantic traceback from the override (or, from the file, one from the PLC thread)."""
    rc = main(["run", "--headless", "--boards", "1", "--plc", "server:300.1.2.3:1502"])
    err = capsys.readouterr().err
    assert rc == 2 and "plc.host: the address is not a valid IP address (got '300.1.2.3')" in err, err
    assert "Traceback" not in err


def test_a_recipe_threshold_under_the_models_one_class_limit_is_a_warning_not_a_problem(tmp_path, capsys):
    """The shipped model reports one class per defect down to its cross_class.min_score; a recipe that reports lower
    scores may count one defect twice. `config check` says so by key (and stays OK: the board is still rejected)."""
    from inspector.detect.package import read_meta

    limit = read_meta(DEFAULT_MODEL).cross_class.min_score
    path = tmp_path / "station.toml"
    path.write_text(
        f'active_recipe = "faint"\n[[recipes]]\nname = "faint"\nthresholds = {{ pin-hole = {limit - 0.1:g}, spur = {limit:g} }}\n'
    )
    rc, out = check(capsys, path)
    assert rc == 0, out
    assert f"recipes.faint.thresholds: pin-hole {limit - 0.1:g} below {limit:g}" in out, out
    assert "spur" not in out.split("recipes.faint.thresholds:")[1].split("below")[0]
    path.write_text(f'active_recipe = "plain"\n[[recipes]]\nname = "plain"\nthresholds = {{ pin-hole = {limit:g} }}\n')
    rc, out = check(capsys, path)
    assert rc == 0 and "warning" not in out, out
