"""`pcb-inspector camera probe`: the JSON a commissioning engineer (and CI) reads."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main

REQUIRED = {"frames", "dropped", "incomplete", "fps", "width", "height", "pixel_format", "capture_to_handoff_ms"}


def probe_json(capsys, *argv: str) -> tuple[int, dict]:
    rc = main(["camera", "probe", *argv, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


def test_probe_fake_gige_camera_640x640_mono8(fake_gv, capsys):
    rc, r = probe_json(capsys, "--camera", "aravis:127.0.0.1", "--roi", "640x640", "--fps", "20", "--frames", "15")
    assert REQUIRED <= r.keys()
    assert rc == 0 and r["error"] is None
    assert (r["width"], r["height"], r["pixel_format"], r["output_format"]) == (640, 640, "Mono8", "Mono8")
    assert r["frames"] == 15 and r["fps"] > 0 and r["nominal_fps"] == 20
    lat = r["capture_to_handoff_ms"]
    assert 0 <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert r["driver"]["n_completed_buffers"] >= r["frames"]  # Aravis's own count agrees
    assert r["model"] == "Aravis Fake"


def test_probe_software_trigger_reports_round_trips(fake_gv, capsys):
    rc, r = probe_json(
        capsys, "--camera", "aravis:127.0.0.1", "--roi", "320x240", "--trigger", "software", "--frames", "5"
    )
    assert rc == 0 and r["triggered"] and r["frames"] == 5 and r["timeouts"] == 0
    rt = r["trigger_round_trip_ms"]
    assert 0 < rt["p50"] <= rt["max"]


def test_probe_replay_folder_and_text_output(demo_boards, capsys):
    rc = main(["camera", "probe", "--camera", f"replay:{demo_boards}@max", "--frames", "5"])
    text = capsys.readouterr().out
    assert rc == 0 and "frames        5/5" in text and "latency" in text
    rc, r = probe_json(capsys, "--camera", f"replay:{demo_boards}@max", "--frames", "5")
    assert r["frames"] == 5 and r["dropped"] == 0 and r["pixel_format"] in {"Mono8", "BGR8"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--camera", "usb:0"], "unknown camera kind 'usb'"),
        ([], "needs --camera SPEC"),
        (["--camera", "replay:x", "--frames", "0"], "--frames 0: must be at least 1"),
        (["--camera", "replay:x", "--roi", "big"], "--roi 'big': expected WxH"),
        (["--camera", "replay:/nonexistent/boards"], "replay source /nonexistent/boards does not exist"),
    ],
)
def test_probe_errors_are_one_line(capsys, argv, message):
    rc = main(["camera", "probe", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_probe_absent_camera_fails_cleanly(gv_lock, capsys):
    # gv_lock: the fake camera is NOT started, and no other test run has it up either.
    rc = main(["camera", "probe", "--camera", "aravis:127.0.0.1", "--frames", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "aravis camera 127.0.0.1: cannot open" in err
