"""`pcb-inspector soak`: the whole station (replay camera, shipped LiteRT model, recorder with SQLite
and archive, Modbus server) driven by the line PLC simulator in its own process, for a short run.
The long run's figures are in docs/performance.md."""

from __future__ import annotations

import json

import pytest

from inspector.cli import main
from inspector.commands.soak import Sample, SampleLog, slice_medians, slope


def test_slope_is_least_squares():
    assert slope([0, 1, 2, 3], [5, 7, 9, 11]) == pytest.approx(2.0)
    assert slope([1, 1], [3, 9]) == 0.0 and slope([1], [1]) == 0.0


def test_slope_through_slice_medians_ignores_mid_board_swings():
    """One sample in 7 taken mid-board (+5 MB) bends a line through every sample; the medians of the
    tenths keep the real 100 bytes per board."""
    boards = list(range(1000))
    rss = [1e6 + 100 * b + (5e6 if b % 7 == 0 else 0) for b in boards]
    xs, ys = slice_medians(boards, rss)
    assert len(xs) == 10 and slope(xs, ys) == pytest.approx(100, rel=0.01)
    assert abs(slope(boards, rss) - 100) > 10
    assert slice_medians([], []) == ([], [])


def test_sample_log_stays_bounded_and_evenly_spaced_over_any_run():
    """The soak measures its own process: its series must not grow with the run (one object per
    sample would show up in the very RSS slope it reports)."""
    log = SampleLog(capacity=8)
    for i in range(100):
        log.add(Sample(t=float(i), boards=i, rss=1000 + (50 if i == 37 else 0), fds=10, threads=3))
    log.add(Sample(t=100.0, boards=100, rss=1000, fds=10, threads=3), keep=True)
    rows = log.rows()
    assert 4 <= len(rows) <= 8 and log._rows.shape == (8, 7), "the buffer never grows"
    assert log.stride == 16 and rows[:-1, 1].tolist() == [0, 16, 32, 48, 64, 80, 96]
    assert rows[-1, 1] == 100, "the last sample is always stored"
    assert log.rss_max == 1050, "a peak between stored samples still counts"
    assert log.first_warm is not None and log.first_warm.boards == 1


@pytest.mark.slow
def test_short_soak_loses_no_record_and_leaks_no_descriptor(tmp_path, capsys):
    code = main(["soak", "--boards", "150", "--json", "--data", str(tmp_path), "--sample-s", "0.5"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    rep = json.loads(out)
    assert code == 0, rep
    assert rep["plc_acknowledged"] >= 150 and rep["plc_violations"] == 0 and rep["plc_missed"] == 0
    # Every board the PLC saw acknowledged has its record (durable before RESULTS_VALID).
    assert rep["records_lost"] == 0 and rep["database_records"] >= rep["plc_acknowledged"]
    assert rep["boards"] >= 150 and rep["boards_per_s"] > 0
    assert "XNNPACK" in rep["detector"] or "NPU" in rep["detector"]
    assert rep["rss_end_mb"] > 50 and rep["samples"] >= 3
    # Descriptors and threads stay flat between the first board and the last (a leak per board
    # would add hundreds here).
    assert rep["fds_max"] - rep["fds_start"] <= 5, rep
    assert rep["threads_max"] - rep["threads_start"] <= 2, rep
    assert (tmp_path / "soak.db").exists() and (tmp_path / "plc-sim.log").read_text().count("part ") >= 150


def test_soak_refuses_bad_arguments(capsys):
    assert main(["soak", "--boards", "0"]) == 2
    assert "--boards must be at least 1" in capsys.readouterr().err


def test_soak_gives_up_with_the_reason_when_the_station_never_gets_going(tmp_path, capsys):
    """A station whose model is missing rejects every board fail-safe and the PLC never gets a board
    through: the soak stops after --ready-timeout and names the reason instead of hanging."""
    conf = tmp_path / "station.toml"
    conf.write_text(f'[detector]\nmodel = "{tmp_path / "missing.tflite"}"\n')
    code = main(["soak", "--config", str(conf), "--boards", "5", "--data", str(tmp_path / "d"), "--ready-timeout", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "no board inspected 8 s after the start" in err and "model" in err
