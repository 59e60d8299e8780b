"""The retraining loop of docs/model.md, command by command, on a small station history:

station records (shipped LiteRT model on 704x560 boards, real recorder: SQLite + image archive)
-> QA reviews (confirm / false call / missed) -> `pcb-inspector dataset export` (held-out boards
chosen automatically, by board) -> `python -m inspector.training.train` (fine-tune from the shipped
weights, a few steps, validating on the held-out boards although they are not 640x640) ->
`python -m inspector.training.export` (INT8, quantisation checked on the held-out boards) ->
`pcb-inspector evaluate` (new model against the running one on the same held-out boards) ->
`pcb-inspector model sign` -> `pcb-inspector model install` on a station with trusted keys.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.config import StationConfig
from inspector.datasets.deeppcb import HELD_OUT_LIST, load_list
from inspector.detect.factory import create_detector
from inspector.detect.package import read_meta
from inspector.domain import InspectionResult, Verdict
from inspector.health import Health
from inspector.signing import verify_model
from inspector.synth import make_board

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "pcb-defect-det.tflite"
BOARDS = 10
H, W = 560, 704  # not 640x640: a station's ROI


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def record_history(tmp: Path) -> tuple[StationConfig, int]:
    """The station's own history: the shipped model's results on 10 boards, recorded with their images;
    returns the config and how many boards QA reviewed (a good board with no call gets no review)."""
    from inspector.storage import open_recorder

    cfg = StationConfig.model_validate(
        {
            "detector": {"model": str(SHIPPED), "delegate": "cpu"},
            "storage": {
                "database_url": f"sqlite:///{tmp / 'station.db'}",
                "archive_dir": str(tmp / "archive"),
                "spool_dir": str(tmp / "spool"),
                "archive": "all",
            },
        }
    )
    det = create_detector(cfg.detector)
    det.load()
    rec = open_recorder(cfg, Health())
    rec.start()
    truth: dict[str, list[tuple[int, int, int, int, int]]] = {}
    try:
        for i in range(BOARDS):
            b = make_board(1000 + i, size=W, defect_rate=0.9)
            img, ref = np.ascontiguousarray(b.image[:H]), np.ascontiguousarray(b.reference[:H])
            found = det.detect(img, ref)
            r = InspectionResult(
                frame_id=i,
                recipe="demo",
                verdict=Verdict.REJECT if found else Verdict.PASS,
                detections=list(found),
                timings_ms={"inspect": 10.0, "total": 12.0},
                model_id=det.info.model_id,
                board_serial=f"SN{i:04d}",
                part_seq=i,
                image=img,
                reference=ref,
            )
            truth[r.uid] = [d for d in b.defects if d[3] <= H]
            rec.submit(r)
        assert rec.flush(30)
    finally:
        rec.stop()
        det.close()
    # QA reviews every board: detections matching a true defect are confirmed, others are false
    # calls, and true defects the model missed are drawn in.
    from inspector.storage import add_missed_defect, inspection_detail, open_database, review_defect

    db = open_database(cfg.storage.database_url)
    reviewed = 0
    try:
        for uid, defects in truth.items():
            d = inspection_detail(db, uid)
            matched = set()
            for row in d.defects:
                box = row.box
                k = next((k for k, t in enumerate(defects) if k not in matched and iou(box, t[:4]) >= 0.3), None)
                review_defect(db, row.id, "false_call" if k is None else "confirmed", "qa")
                if k is not None:
                    matched.add(k)
            for k, t in enumerate(defects):
                if k not in matched:
                    add_missed_defect(db, d.row.id, tuple(float(v) for v in t[:4]), t[4], "qa")
            reviewed += bool(d.defects or defects)
    finally:
        db.close()
    return cfg, reviewed


def py(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_export_train_quantise_evaluate_sign_install(tmp_path, capsys):
    cfg, reviewed = record_history(tmp_path)
    assert reviewed >= 6
    conf = tmp_path / "station.toml"
    store = tmp_path / "store"
    conf.write_text(
        f'[detector]\nmodel = "{store}/active/pcb-defect-det.tflite"\ndelegate = "cpu"\n'
        f'trusted_keys = ["{tmp_path / "plant.pub"}"]\n'
        f'[storage]\ndatabase_url = "{cfg.storage.database_url}"\narchive_dir = "{cfg.storage.archive_dir}"\n'
    )

    # 1. export: one group (one recipe), held-out boards listed automatically.
    exp = tmp_path / "export"
    assert main(["dataset", "export", "--config", str(conf), "--out", str(exp)]) == 0
    out = capsys.readouterr().out
    pairs = load_list(exp)
    held = load_list(exp, exp / HELD_OUT_LIST)
    assert len(pairs) == reviewed and len({p.group for p in pairs}) == 1
    assert 1 <= len(held) < reviewed and f"{len(held)} held out" in out
    assert sum(len(p.boxes) for p in pairs) > 0

    # 2. fine-tune from the shipped weights, a few steps; validation runs on the held-out 704x560 boards.
    run = tmp_path / "run"
    r = py(
        "-m", "inspector.training.train", "--data", str(exp), "--out", str(run),
        "--init-weights", str(ROOT / "models" / "pcb-defect-det.weights.h5"),
        "--steps", "4", "--batch", "2", "--warmup", "1", "--lr", "1e-4",
        "--eval-every", "4", "--ckpt-every", "4", "--log-every", "2",
    )  # fmt: skip
    assert f"val {len(held)} pairs (held out: the boards in {exp / HELD_OUT_LIST})" in r.stdout
    assert re.search(r"VAL .*map50", r.stdout, re.I) or (run / "log.jsonl").read_text().count("map50")
    assert (run / "best.weights.h5").is_file()

    # 3. INT8 export, quantisation checked on the held-out boards (never on none).
    new = tmp_path / "release" / "pcb-defect-det.tflite"
    r = py(
        "-m", "inspector.training.export", "--weights", str(run / "best.weights.h5"), "--out", str(new),
        "--data", str(exp), "--calib", "6", "--check", "4", "--recalibrate-bn", "4", "--version", "1.6.0-site.1",
    )  # fmt: skip
    m = re.search(r"INT8 vs float on (\d+) held-out inputs", r.stdout)
    assert m and int(m.group(1)) >= len(held), r.stdout
    meta = read_meta(new)
    assert meta.version == "1.6.0-site.1"
    side = json.loads(new.with_suffix(".json").read_text())
    assert side["metrics"]["int8_vs_float"]["inputs"] >= len(held)

    # 4. evaluate the new model against the running (shipped) one on the same held-out boards.
    assert (
        main(
            [
                "evaluate",
                "--root",
                str(exp),
                "--list",
                str(exp / HELD_OUT_LIST),
                "--out",
                str(tmp_path / "eval"),
                "--model",
                str(new),
                "--compare-model",
                str(SHIPPED),
                "--json",
            ]
        )  # fmt: skip
        == 0
    )
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["main"]["boards"] == ev["compare"]["boards"] == len(held)
    assert ev["main"]["model"] == meta.model_id and ev["compare"]["model"] == read_meta(SHIPPED).model_id
    assert ev["map50_delta"] == pytest.approx(ev["main"]["map50"] - ev["compare"]["map50"], abs=1e-9)

    # 5. sign with the plant key, 6. install on the station (verified against its trusted key).
    assert main(["model", "keygen", str(tmp_path / "plant.key"), str(tmp_path / "plant.pub")]) == 0
    (new.parent / "pcb-defect-det.md").write_text(
        "# pcb-defect-det 1.6.0-site.1\nFine-tuned on the station's reviews.\n"
    )
    tar = tmp_path / "pcb-defect-det-1.6.0-site.1.tar.gz"
    assert main(["model", "sign", str(new), "--key", str(tmp_path / "plant.key"), "--tar", str(tar)]) == 0
    assert main(["model", "install", str(tar), "--config", str(conf), "--wait", "0"]) == 0
    active = store / "active" / "pcb-defect-det.tflite"
    assert read_meta(active).version == "1.6.0-site.1"
    assert verify_model(active, [tmp_path / "plant.pub"]).files


@pytest.mark.slow
def test_int8_export_refuses_a_dataset_without_held_out_boards(tmp_path):
    """One board: nothing can be held out, so the quantisation check would run on 0 boards."""
    from inspector.training.export import board_pairs

    b = make_board(5, size=640)
    d = tmp_path / "one" / "group90000" / "90000"
    d.mkdir(parents=True)
    (tmp_path / "one" / "group90000" / "90000_not").mkdir()
    import cv2

    cv2.imwrite(str(d / "9000000000001_test.jpg"), b.image)
    cv2.imwrite(str(d / "9000000000001_temp.jpg"), b.reference)
    (tmp_path / "one" / "group90000" / "90000_not" / "9000000000001.txt").write_text("")
    (tmp_path / "one" / "trainval.txt").write_text(
        "group90000/90000/9000000000001.jpg group90000/90000_not/9000000000001.txt\n"
    )
    assert board_pairs(tmp_path / "one", 4, split="val") == []
    r = subprocess.run(
        [sys.executable, "-m", "inspector.training.export", "--weights", str(ROOT / "models" / "pcb-defect-det.weights.h5"),
         "--out", str(tmp_path / "x.tflite"), "--data", str(tmp_path / "one"), "--recalibrate-bn", "0"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode != 0 and "0 held-out boards" in r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    assert not (tmp_path / "x.tflite").exists()
