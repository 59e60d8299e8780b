"""`pcb-inspector evaluate --root DIR --list FILE --out DIR [--model M]`.

Runs the station's own detector code (the same LiteRT path, pre- and post-processing as on the
line) over a dataset in the DeepPCB layout, writes DeepPCB-format result files, and prints COCO
mAP (pycocotools), DeepPCB's own protocol, board-level escapes at the package's thresholds and the
mean latency. `--compare-model` evaluates a second model (the float export) in the same run. With `--out`, every box
above the floor on the known-good (and, with `--one-defect`, one-defect) boards goes to `scores.jsonl`, which
`scripts/choose_thresholds.py` chooses the package's threshold on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..detect.settings import PASSES
from ..domain import CLASS_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on a dataset in the DeepPCB layout")
    p.add_argument("--root", type=Path, required=True, help="dataset root (paths in the list are relative to it)")
    p.add_argument("--list", type=Path, default=None, help="list file (default: ROOT/trainval.txt)")
    p.add_argument("--out", type=Path, required=True, help="folder for <id>.txt result files and metrics.json")
    p.add_argument("--model", type=Path, default=None, help="model package (.tflite, .onnx; default: the shipped one)")
    p.add_argument(
        "--compare-model", type=Path, default=None, help="second model, e.g. the float export or the ONNX package"
    )
    p.add_argument("--groups", default=None, help="only these board groups, e.g. 44000,92000 (the validation split)")
    p.add_argument("--floor", type=float, default=0.05, help="lowest score written to result files")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--passes",
        choices=PASSES,
        default="package",
        help="score a station set to fewer of the package's passes ([detector] passes); never written as its figures",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument(
        "--camera",
        choices=("gray", "colour"),
        default=None,
        help="render every board and golden image as this camera would see the bare board "
        "(inspector.evaluation.camera_domain) before detection; the known-good check uses a second capture "
        "of the golden board",
    )
    p.add_argument("--camera-shift", type=float, default=0.0, help="largest residual shift of a capture, px")
    p.add_argument("--camera-rotate", type=float, default=0.0, help="largest residual rotation of a capture, deg")
    p.add_argument("--camera-seed", type=int, default=0, help="seed of the camera renderings")
    p.add_argument(
        "--camera-profile",
        choices=("line", "harsh"),
        default="line",
        help="'line': a camera set up as docs/model.md asks; 'harsh': lower contrast, more blur, noise and JPEG "
        "(inspector.evaluation.camera_domain.Profile)",
    )
    p.add_argument(
        "--camera-copper",
        choices=("bright", "dark"),
        default="bright",
        help="how the rendered camera shows bare copper: 'bright' (diffuse or coaxial light) or 'dark' (dark-field "
        "light; the station is then set up for it: detector.camera_copper = 'dark')",
    )
    p.add_argument(
        "--camera-gamma",
        type=float,
        default=1.0,
        metavar="G",
        help="the rendered camera's output gamma (0.45: an sRGB-like curve; 1: linear, as docs/camera.md asks); the "
        "station is then told it: detector.camera_gamma = G",
    )
    p.add_argument(
        "--camera-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="the boards' magnification against the golden capture's (1.01: a board 1 %% larger in the frame, nearer "
        "the lens), on top of --camera-shift/--camera-rotate",
    )
    p.add_argument(
        "--camera-motion",
        type=float,
        default=0.0,
        metavar="PX",
        help="every capture's travel during its exposure along the frame's rows, px (a conveyor that does not stop "
        "the board; the golden capture's too)",
    )
    p.add_argument(
        "--camera-defocus",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="the boards after the golden capture seen out of focus: a Gaussian blur of this sigma, px, on top of the "
        "capture's own (a loosened focus ring, a thicker board)",
    )
    p.add_argument(
        "--camera-resolution",
        type=float,
        default=1.0,
        metavar="R",
        help="the camera's pixels per mm on the board against DeepPCB's (about 48 px/mm): 0.75 images each board on "
        "480 x 480 px, 1.5 on 960 x 960 (every capture, the golden one too)",
    )
    p.add_argument(
        "--camera-etch",
        type=float,
        default=0.0,
        metavar="PX",
        help="the boards other than the golden one (the defective board, another good board, teaching boards) etched "
        "otherwise: their copper edges this many DeepPCB px further out (negative: further in; 1 px is about 21 um)",
    )
    p.add_argument(
        "--camera-width",
        type=float,
        default=0.0,
        metavar="PX",
        help="every capture, the golden one too, shows copper edges this many DeepPCB px further out than DeepPCB's "
        "binarisation (negative: further in; a bare-copper camera under coaxial light sees the trace's top, narrower "
        "than its foot); on top of --camera-etch",
    )
    p.add_argument(
        "--camera-renderer",
        choices=("textures", "optics"),
        default="textures",
        help="the camera model that draws the captures: 'textures' (inspector.evaluation.camera_domain; the shipped "
        "model was also fine-tuned on its renderings of the training boards) or 'optics' (camera_optics: another "
        "surface, light, lens and sensor model, Bayer colour, that no training saw; a line camera only)",
    )
    p.add_argument(
        "--camera-calibrate-threshold",
        metavar="LIST",
        type=Path,
        help="set the station's threshold position as `pcb-inspector calibrate threshold` would, from the golden "
        "captures of these pairs (a list file like --list; their templates serve as the boards' designs) before "
        "evaluating: a station calibrated once on these boards. Only golden boards and designs are used",
    )
    p.add_argument(
        "--camera-golden-boards",
        type=int,
        default=1,
        metavar="N",
        help="teach the golden reference from N good boards (the golden capture and N-1 other physical boards, "
        "registered and median-combined: `pcb-inspector reference teach`); 1: the golden capture alone",
    )
    p.add_argument(
        "--one-defect",
        action="store_true",
        help="also make one board per labelled defect (the board with its other labelled defects taken away) and "
        "count how many of those PASS: a line's defective boards mostly carry one defect, DeepPCB's carry 3 to 12, "
        "and a board is rejected if any one is found",
    )
    p.add_argument(
        "--write-sidecar",
        action="store_true",
        help="store these figures in the model's sidecar (metrics.val_int8, and val_float_tflite with --compare-model)",
    )
    p.set_defaults(func=evaluate)


def _evaluate_model(
    model: Path | None,
    pairs,
    out: Path | None,
    floor: float,
    threads: int,
    camera: dict | None = None,
    one_defect: bool = False,
    passes: str = "package",
) -> dict:
    from ..config import CalibrationSection, Recipe
    from ..datasets.deeppcb import read_board
    from ..decision import RecipeRules
    from ..detect.factory import create_detector
    from ..detect.package import read_meta
    from ..detect.prepare import ImageDomainError
    from ..detect.registry import default_detector, settings_for_model
    from ..domain import Verdict
    from ..evaluation.coco import coco_map
    from ..evaluation.deeppcb_protocol import deeppcb_metrics
    from ..inspection import BoardInspection
    from ..inspection import inspect_board as inspect_or_raise
    from ..registration import BoardRegistrar, settings_from_config

    def inspect_board(board, ref, rules, det, registrar):
        """The station's verdict: an image it cannot inspect (over-exposed, ...) is a REJECT with the reason."""
        try:
            return inspect_or_raise(board, ref, rules, det, registrar)
        except ImageDomainError as exc:
            return BoardInspection(Verdict.REJECT, [], reason=f"image not inspectable: {exc}")

    # The package on its sidecar's runtime, on the CPU (an accuracy figure must not depend on an accelerator).
    base = default_detector()
    cfg = settings_for_model(base, model if model is not None else base.model).cpu_only()
    cfg.threads = threads
    cfg.passes = passes
    if camera is not None and camera.get("copper", "bright") == "dark":
        cfg.camera_copper = "dark"  # a station whose camera shows copper dark is set up for it
    if camera is not None and camera.get("gamma", 1.0) != 1.0:
        cfg.camera_gamma = camera["gamma"]  # and one whose camera's gamma cannot be turned off is told it
    if camera is not None and camera.get("resolution", 1.0) != 1.0:
        # A station that knows its camera's resolution (`calibrate scale`) is told it; a model that does not say at
        # which resolution it learnt boards cannot use it (and is scored on the frames as they are).
        learnt = read_meta(Path(cfg.model)).input_domain
        if learnt is not None and learnt.px_per_mm is not None:
            cfg.camera_px_per_mm = camera["resolution"] * learnt.px_per_mm
    calibration = None
    if camera is not None and camera.get("calibration_pairs"):
        calibration = _calibrate_threshold(cfg, camera)
        cfg.threshold_position = calibration["threshold_position"]
    det = create_detector(cfg)
    info = det.load()
    det.warm_up(2)
    rules = RecipeRules(Recipe())
    # The station's default registrar: every board is scored exactly as the line would judge it.
    registrar = BoardRegistrar(settings_from_config(CalibrationSection()))
    # Camera runs judge another physical board too; its own registrar keeps the sequence of poses the other figures
    # were measured with (each solve starts from the previous board's pose).
    other_registrar = BoardRegistrar(settings_from_config(CalibrationSection()))
    floor_thr = {c: floor for c in range(1, len(CLASS_NAMES) + 1)}
    gts, dets, latencies = [], [], []
    escapes, false_rejects, defective, clean, unregistered = [], [], 0, 0, []
    other_rejects: list[str] = []  # camera runs: good boards that are not the golden board itself
    other_unregistered: list[str] = []
    verdicts = []
    good_rejects: list[dict] = []  # what was called on each known-good board that was rejected
    floor_records: list[dict] = []  # every box above the floor on known-good and one-defect boards (`scores.jsonl`)

    def floor_boxes(judged, where=None) -> dict:
        """Every box above the floor on a board the station judged, for a threshold choice: `touches` says
        whether it lies on `where` (a one-defect board's defect, frame pixels)."""
        if not judged.inspected:
            return {"inspected": False, "reason": judged.reason, "boxes": []}
        found = judged.to_frame(det.detect(judged.board_image, judged.reference, floor_thr))
        return {
            "inspected": True,
            "boxes": [
                [
                    CLASS_NAMES[d.class_id - 1],
                    round(float(d.score), 4),
                    bool(where is not None and _touches(d.box, where, ONE_DEFECT_MARGIN_PX)),
                    round(float(max(d.width, d.height)), 1),
                ]
                for d in found
            ],
        }

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for p in pairs:
        # As `inspect` and `run` read them: as stored, turned gray by the model's rule inside `inspect_board`.
        board, ref = read_board(p.test_path), read_board(p.template_path)
        good, truth, other = ref, p.boxes, None
        if camera is not None:
            board, ref = _gray(board, p.test_path, info.colour), _gray(ref, p.template_path, info.colour)
            board, ref, good, truth, other = _camera_frames(board, ref, p, camera)
        t0 = time.perf_counter()
        station = inspect_board(board, ref, rules, det, registrar)
        latencies.append((time.perf_counter() - t0) * 1000)
        found = []
        if station.inspected:
            # everything above the floor for the AP figures: the same registered input, boxes in frame pixels
            low = det.detect(station.board_image, station.reference, floor_thr)
            found = station.to_frame(low)
        else:
            unregistered.append(p.id)
        verdicts.append(
            {
                "id": p.id,
                "verdict": station.verdict.value,
                "reason": station.reason,
                "detections": [d.to_json() for d in station.detections],
            }
        )
        boxes = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        scores = np.array([d.score for d in found], np.float32)
        classes = np.array([d.class_id - 1 for d in found], np.int64)
        gts.append((truth, p.classes))
        dets.append((boxes, scores, classes))
        if out is not None:
            lines = [
                f"{b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f},{s:.4f},{CLASS_NAMES[c]}"
                for b, s, c in zip(boxes, scores, classes, strict=True)
            ]
            (out / f"{p.id}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            if camera is not None:
                # The labels where this capture put the defects (frame pixels, like the results): a breakdown against
                # the dataset's own coordinates would count the capture's 3 px / 0.5 deg as loose boxes.
                marks = [
                    f"{b[0]:.1f},{b[1]:.1f},{b[2]:.1f},{b[3]:.1f},{CLASS_NAMES[c]}"
                    for b, c in zip(np.asarray(truth).reshape(-1, 4), p.classes, strict=True)
                ]
                (out / f"{p.id}.truth.txt").write_text("\n".join(marks) + ("\n" if marks else ""))
        if len(p.boxes):
            defective += 1
            if station.verdict is Verdict.PASS:
                escapes.append(p.id)
        # The template of every pair is a known-good board: count false rejects on it.
        clean += 1
        judged = inspect_board(good, ref, rules, det, registrar)
        if out is not None:
            floor_records.append({"id": p.id, "board": "golden board, second capture", **floor_boxes(judged)})
        if judged.verdict is Verdict.REJECT:
            false_rejects.append(p.id)
            good_rejects.append(_known_good_record(p.id, "golden board, second capture", judged))
        if other is not None:
            # A line's good boards are other physical boards than the golden one: only the copper is the same.
            judged = inspect_board(other, ref, rules, det, other_registrar)
            if out is not None:
                floor_records.append({"id": p.id, "board": "other physical board", **floor_boxes(judged)})
            if judged.verdict is Verdict.REJECT:
                other_rejects.append(p.id)
                good_rejects.append(_known_good_record(p.id, "other physical board", judged))
                if not judged.inspected:
                    other_unregistered.append(p.id)
    if out is not None:
        (out / "verdicts.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts))
        (out / "known_good_rejects.jsonl").write_text("".join(json.dumps(v) + "\n" for v in good_rejects))
    single = {}
    if one_defect:
        single = _one_defect_boards(pairs, rules, det, camera, inspect_board, floor_boxes if out is not None else None)
        floor_records.extend(single.pop("records"))
    if out is not None:
        (out / "scores.jsonl").write_text("".join(json.dumps(v) + "\n" for v in floor_records))
    coco = coco_map(gts, dets, CLASS_NAMES)
    shipped = {c - 1: t for c, t in info.default_thresholds.items()}
    dp = deeppcb_metrics(gts, dets, shipped)
    lat = np.array(latencies)
    return {
        "model": info.model_id,
        "backend": info.backend,
        "passes": passes,
        "boards": len(pairs),
        "map50": coco.map50,
        "map50_95": coco.map50_95,
        "per_class_ap50": coco.per_class_ap50,
        "deeppcb_ap": dp.ap,
        "deeppcb_precision": dp.precision,
        "deeppcb_recall": dp.recall,
        "deeppcb_fscore": dp.fscore,
        # What the verdict figures (precision/recall/F, escapes, rejects) were counted at: the package's own.
        "thresholds": {CLASS_NAMES[c]: t for c, t in sorted(shipped.items())},
        "defective_boards": defective,
        "escapes": len(escapes),
        "escaped_boards": escapes,
        "templates_checked": clean,
        "false_rejects_on_templates": len(false_rejects),
        "false_rejected_templates": false_rejects,
        **(
            {
                "other_boards_checked": clean,
                "false_rejects_on_other_boards": len(other_rejects),
                "false_rejected_other_boards": other_rejects,
                "other_boards_unregistered": other_unregistered,
            }
            if camera is not None
            else {}
        ),
        "unregistered": len(unregistered),
        "unregistered_boards": unregistered,
        **single,
        **({"threshold_calibration": calibration} if calibration is not None else {}),
        "latency_mean_ms": float(lat.mean()) if lat.size else 0.0,
        "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else 0.0,
    }


def _calibrate_threshold(cfg, camera: dict) -> dict:
    """The threshold position a station with this camera would be set to by `pcb-inspector calibrate threshold`: its
    golden captures of the calibration pairs against their designs (DeepPCB's templates, which are the binarisation the
    network learnt). Neither a defective board nor a label is looked at."""
    from ..cli import CommandError
    from ..datasets.deeppcb import read_gray
    from ..detect.package import station_input_domain
    from ..detect.prepare import ImageDomainError
    from ..detect.threshold_position import fit_threshold_position

    spec = station_input_domain(cfg)
    if spec is None:
        raise CommandError("--camera-calibrate-threshold: this model takes frames as they are (no input_domain)")
    spec = spec.model_copy(update={"threshold_position": 0.5})
    captures = []
    for p in camera["calibration_pairs"]:
        design = read_gray(p.template_path)
        captures.append((_captures(read_gray(p.test_path), design, p.id, camera)["golden"][0], design))
    try:
        fit = fit_threshold_position(captures, spec, [p.id for p in camera["calibration_pairs"]])
    except ImageDomainError as exc:
        raise CommandError(f"--camera-calibrate-threshold: {exc}") from None
    print(
        f"threshold position calibrated on {fit.boards} golden captures: {fit.position:.3f} (copper edges "
        f"{fit.offset_at_midpoint_px:+.2f} px from their designs at 0.5)",
        file=sys.stderr,
    )
    return fit.to_json()


#: How far from a defect's labelled box a difference between board and template still counts as that defect's: DeepPCB's
#: boxes are drawn around the defect, and its JPEG edges reach a pixel or two past them.
ONE_DEFECT_MARGIN_PX = 4


def one_defect_board(test, template, boxes, k: int) -> np.ndarray:
    """The defective board with every labelled defect but the `k`-th taken away: inside each other defect's box (and
    `ONE_DEFECT_MARGIN_PX` around it, but not within that margin of the `k`-th box) the pixels where board and template
    differ are the template's.

    Why take the others away rather than paste the one into the template: DeepPCB's board and template were binarised
    apart, and in some pairs a trace is a pixel wider on one than on the other along its whole length, or the
    differences of two defects join along it. The board keeps all of that, as the multi-defect board had it; only the
    labelled defects other than the `k`-th go.
    """
    import cv2

    h, w = template.shape[:2]
    m = ONE_DEFECT_MARGIN_PX

    def area(box) -> np.ndarray:
        x1, y1 = max(int(np.floor(box[0])) - m, 0), max(int(np.floor(box[1])) - m, 0)
        x2, y2 = min(int(np.ceil(box[2])) + m + 1, w), min(int(np.ceil(box[3])) + m + 1, h)
        a = np.zeros((h, w), bool)
        a[y1:y2, x1:x2] = True
        return a

    differs = cv2.absdiff(test, template) > 127
    others = np.zeros((h, w), bool)
    for j, box in enumerate(boxes):
        if j != k:
            others |= area(box)
    take = differs & others & ~area(boxes[k])
    board = test.copy()
    board[take] = template[take]
    return board


def _one_defect_boards(pairs, rules, det, camera: dict | None, inspect_board, floor_boxes=None) -> dict:
    """Every labelled defect on a board of its own (`one_defect_board`), inspected as the line would (registered, on the
    camera's rendering when there is one, against a golden capture of that rendering), at the package's thresholds.

    Why: DeepPCB's defective boards carry 3 to 12 defects each, and a board is rejected when any one is found, so
    "0 of 161 defective boards passed" holds even where one defect in twenty is missed. A line's defective boards
    mostly carry one; the escapes counted here are the ones it would see. A board rejected only for boxes that do not
    touch its defect (where another defect was taken away, or a false call) is counted apart
    (`one_defect_rejected_elsewhere`): on a line it is a REJECT, but not because the defect was found. A board that
    cannot be registered is a REJECT, as on the line, counted apart too (`one_defect_not_inspected`).
    `floor_boxes`, when given, records every box above the evaluation floor on each board (`records`), for
    `scripts/choose_thresholds.py`.
    """

    from ..config import CalibrationSection
    from ..datasets.deeppcb import read_board
    from ..domain import Verdict
    from ..evaluation.camera_domain import map_boxes
    from ..registration import BoardRegistrar, settings_from_config

    registrar = BoardRegistrar(settings_from_config(CalibrationSection()))
    boards, escaped, elsewhere, not_inspected, records = 0, [], [], [], []
    by_class = {name: [0, 0] for name in CLASS_NAMES}
    m = ONE_DEFECT_MARGIN_PX
    for p in pairs:
        if not len(p.boxes):
            continue
        # Gray by the model's rule, as `inspect_board` would turn them: the defects are taken away pixel by pixel.
        colour = getattr(det.info, "colour", "red")
        test, temp = (
            _gray(read_board(p.test_path), p.test_path, colour),
            _gray(read_board(p.template_path), p.template_path, colour),
        )
        for k, (box, cls) in enumerate(zip(p.boxes, p.classes, strict=True)):
            board, ref, where = one_defect_board(test, temp, p.boxes, k), temp, np.asarray(box, np.float32)
            if camera is not None:
                f = _captures(board, temp, f"{p.id}.{k}", camera)
                board, ref = f["board"][0], f["golden"][0]
                where = map_boxes(where, f["board"][1].matrix)[0]  # where this capture put the defect
            judged = inspect_board(board, ref, rules, det, registrar)
            boards += 1
            name = CLASS_NAMES[int(cls)]
            by_class[name][0] += 1
            label = f"{p.id}.{k} ({name}, {box[2] - box[0]:.0f}x{box[3] - box[1]:.0f} px)"
            if floor_boxes is not None:
                records.append(
                    {"id": f"{p.id}.{k}", "board": "one defect", "class": name, **floor_boxes(judged, where)}
                )
            if not judged.inspected:
                not_inspected.append(label)
            elif judged.verdict is Verdict.PASS:
                escaped.append(label)
                by_class[name][1] += 1
            elif not any(_touches(d.box, where, m) for d in judged.detections):
                elsewhere.append(label)
    return {
        "one_defect_boards": boards,
        "one_defect_escapes": len(escaped),
        "one_defect_escaped": escaped,
        "one_defect_by_class": by_class,
        "one_defect_rejected_elsewhere": len(elsewhere),
        "one_defect_elsewhere": elsewhere,
        "one_defect_not_inspected": len(not_inspected),
        "records": records,
    }


def _gray(img: np.ndarray, path: Path, colour: str) -> np.ndarray:
    """A board read as stored (`read_board`) in 8-bit gray by the model's colour rule, as `inspect_board` turns it,
    for what draws on the board before it is judged (camera renderings, one-defect boards). DeepPCB's own 8-bit gray
    boards come back as they are."""
    from ..cli import CommandError
    from ..decision import to_gray8

    if img.ndim == 2 and img.dtype == np.uint8:
        return img
    try:
        return to_gray8(img, str(path), colour)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _touches(a, b, margin: float) -> bool:
    """Whether boxes `a` and `b` (x1, y1, x2, y2) overlap once `b` is grown by `margin`."""
    return not (a[0] > b[2] + margin or a[2] < b[0] - margin or a[1] > b[3] + margin or a[3] < b[1] - margin)


def _known_good_record(pair_id: str, board: str, judged) -> dict:
    """A rejected known-good board as a quality engineer reviews it: which board, why, and the boxes (frame pixels)."""
    return {
        "id": pair_id,
        "board": board,
        "reason": judged.reason,
        "detections": [d.to_json() for d in judged.detections],
    }


def _captures(board: np.ndarray, ref: np.ndarray, key: str, camera: dict, **more) -> dict:
    """`capture_pair` with `camera`'s options, seeded by `key` (a pair's id, or a one-defect board's) and the seed."""
    import zlib

    from ..evaluation.camera_domain import capture_pair

    return capture_pair(
        board,
        ref,
        camera["seed"] * 1_000_003 + zlib.crc32(key.encode()),
        mode=camera["mode"],
        max_shift=camera["shift"],
        max_rot_deg=camera["rotate"],
        profile=camera.get("profile", "line"),
        copper_look=camera.get("copper", "bright"),
        gamma=camera.get("gamma", 1.0),
        scale=camera.get("scale", 1.0),
        motion_px=camera.get("motion", 0.0),
        defocus_px=camera.get("defocus", 0.0),
        resolution=camera.get("resolution", 1.0),
        etch_px=camera.get("etch", 0.0),
        width_px=camera.get("width", 0.0),
        renderer=camera.get("renderer", "textures"),
        **more,
    )


def _camera_frames(board: np.ndarray, ref: np.ndarray, pair, camera: dict):
    """Camera renderings of one pair: the defective board, the golden board, a second capture of the golden
    board (the known-good check), and the ground truth carried into the board's frame."""
    from ..evaluation.camera_domain import map_boxes

    f = _captures(board, ref, pair.id, camera, other=True, teach=camera.get("golden_boards", 1) - 1)
    truth = map_boxes(pair.boxes, f["board"][1].matrix)
    golden = f["golden"][0]
    if f.get("teach"):
        from ..teach_reference import teach_reference

        golden = teach_reference([golden, *(frame for frame, _ in f["teach"])]).image
    return f["board"][0], golden, f["good"][0], truth, f["other"][0]


def _thresholds_text(m: dict) -> str:
    """The package's thresholds, as one figure where all classes share it."""
    values = sorted(set(m.get("thresholds", {}).values()))
    if len(values) == 1:
        return f"{values[0]:g}"
    return ", ".join(f"{k} {v:g}" for k, v in m.get("thresholds", {}).items())


def _print(m: dict, title: str) -> None:
    at = f"at the package's thresholds ({_thresholds_text(m)})"
    fewer = f", detector.passes = {m['passes']}" if m.get("passes", "package") != "package" else ""
    print(f"== {title}: {m['model']} on {m['backend']}{fewer}, {m['boards']} boards")
    if "threshold_calibration" in m:
        c = m["threshold_calibration"]
        print(
            f"threshold position {c['threshold_position']:.3f}, calibrated on {c['boards']} golden captures and their "
            f"designs (copper edges {c['offset_at_midpoint_px']:+.2f} px from the designs' at 0.5)"
        )
    print(f"COCO mAP@0.5 {m['map50']:.4f}   mAP@0.5:0.95 {m['map50_95']:.4f}")
    print("AP@0.5 per class: " + "  ".join(f"{k} {v:.3f}" for k, v in m["per_class_ap50"].items()))
    print(
        f"DeepPCB protocol (IoU > 0.33, class required, class-agnostic ranking): AP {m['deeppcb_ap']:.4f}  "
        f"precision {m['deeppcb_precision']:.4f} recall {m['deeppcb_recall']:.4f} F {m['deeppcb_fscore']:.4f}"
    )
    print(
        f"board escapes {at}: {m['escapes']} of {m['defective_boards']} defective boards"
        + (f" ({', '.join(m['escaped_boards'][:10])})" if m["escapes"] else "")
    )
    print(
        f"false rejects on known-good templates: {m['false_rejects_on_templates']} of {m['templates_checked']}"
        + (f" ({', '.join(m['false_rejected_templates'][:10])})" if m["false_rejects_on_templates"] else "")
    )
    if "other_boards_checked" in m:
        print(
            f"false rejects on known-good boards other than the golden one: {m['false_rejects_on_other_boards']} of "
            f"{m['other_boards_checked']}"
            + (f" ({', '.join(m['false_rejected_other_boards'][:10])})" if m["false_rejects_on_other_boards"] else "")
            + (
                f", {len(m['other_boards_unregistered'])} of them not inspected (not registered, or the image refused)"
                if m["other_boards_unregistered"]
                else ""
            )
        )
    if m.get("unregistered"):
        print(
            f"boards not inspected (REJECT: not registered to their reference, or the image refused): {m['unregistered']} "
            f"({', '.join(m['unregistered_boards'][:10])})"
        )
    if "one_defect_boards" in m:
        n, e = m["one_defect_boards"], m["one_defect_escapes"]
        print(
            f"one-defect boards (each labelled defect alone on its board): {e} of {n} PASSED {at} "
            f"({100.0 * e / max(n, 1):.2f} %)"
            + (f": {', '.join(m['one_defect_escaped'][:10])}" if e else "")
            + (f"; {m['one_defect_not_inspected']} not inspected (REJECT)" if m["one_defect_not_inspected"] else "")
        )
        if m["one_defect_rejected_elsewhere"]:
            print(
                f"  rejected only for boxes away from their defect (REJECT, but the defect not found): "
                f"{m['one_defect_rejected_elsewhere']}: {', '.join(m['one_defect_elsewhere'][:10])}"
            )
        print(
            "  by class (passed / boards): "
            + "  ".join(f"{k} {v[1]}/{v[0]}" for k, v in m["one_defect_by_class"].items())
        )
    print(
        f"latency per board (register + detect + decide): mean {m['latency_mean_ms']:.1f} ms, "
        f"p99 {m['latency_p99_ms']:.1f} ms"
    )


def evaluate(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..datasets.deeppcb import DatasetError, load_list

    try:
        pairs = load_list(args.root, args.list)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if args.groups:
        groups = {g.strip() for g in args.groups.split(",")}
        pairs = [p for p in pairs if p.group in groups]
    if not pairs:
        raise CommandError("no boards to evaluate (check --list and --groups)")
    if args.write_sidecar:
        _refuse_figures_of_trained_boards(args.model)
    if args.write_sidecar and args.passes != "package":
        raise CommandError(
            f"--passes {args.passes} with --write-sidecar: the sidecar's figures are the package's, all its passes; "
            "evaluate a station set to fewer without --write-sidecar"
        )
    if args.camera_golden_boards < 1:
        raise CommandError(f"--camera-golden-boards {args.camera_golden_boards}: at least 1 (the golden capture)")
    if args.camera_copper != "bright" and not args.camera:
        raise CommandError("--camera-copper needs --camera (DeepPCB's own images are binarised: copper is black)")
    if args.camera_gamma != 1.0 and not args.camera:
        raise CommandError("--camera-gamma needs --camera (DeepPCB's own images are binarised, not a camera's)")
    if not 0.25 <= args.camera_gamma <= 4.0:
        raise CommandError(f"--camera-gamma {args.camera_gamma:g}: a camera's gamma lies within 0.25..4 (sRGB: 0.45)")
    changes = (args.camera_scale != 1.0, args.camera_motion != 0.0, args.camera_defocus != 0.0)
    if (any(changes) or args.camera_resolution != 1.0 or args.camera_etch or args.camera_width) and not args.camera:
        raise CommandError(
            "--camera-scale, --camera-motion, --camera-defocus, --camera-resolution, --camera-etch and --camera-width "
            "need --camera (they change a camera's rendering)"
        )
    if not -2.0 <= args.camera_width <= 2.0:
        raise CommandError(f"--camera-width {args.camera_width:g}: within -2..2 px")
    if abs(args.camera_width + args.camera_etch) > 3.0:
        raise CommandError("--camera-width and --camera-etch together: within -3..3 px")
    if not -3.0 <= args.camera_etch <= 3.0:
        raise CommandError(f"--camera-etch {args.camera_etch:g}: within -3..3 px")
    if not 0.4 <= args.camera_resolution <= 2.5:
        raise CommandError(f"--camera-resolution {args.camera_resolution:g}: within 0.4..2.5 of DeepPCB's")
    if not 0.8 <= args.camera_scale <= 1.25:
        raise CommandError(
            f"--camera-scale {args.camera_scale:g}: within 0.8..1.25 (the registration's own limit is 10 %)"
        )
    if not 0.0 <= args.camera_motion <= 32.0:
        raise CommandError(f"--camera-motion {args.camera_motion:g}: within 0..32 px")
    if not 0.0 <= args.camera_defocus <= 8.0:
        raise CommandError(f"--camera-defocus {args.camera_defocus:g}: within 0..8 px")
    if args.camera_renderer != "textures":
        if not args.camera:
            raise CommandError("--camera-renderer needs --camera (DeepPCB's own images are not rendered)")
        from ..evaluation.camera_optics import unmodelled_options

        unmodelled = unmodelled_options(
            args.camera_profile, args.camera_copper, args.camera_gamma, args.camera_motion, args.camera_defocus
        )
        if unmodelled:
            raise CommandError(
                f"--camera-renderer {args.camera_renderer} draws a line camera only: {', '.join(unmodelled)} is not "
                "modelled there (use --camera-renderer textures)"
            )
    if args.camera_golden_boards > 1 and not args.camera:
        raise CommandError("--camera-golden-boards needs --camera (DeepPCB's own templates are one image each)")
    if args.camera_golden_boards > 1 and args.write_sidecar:
        raise CommandError(
            "--camera-golden-boards with --write-sidecar: the card's camera figures are those of a golden image of "
            "one board; evaluate a taught golden image without --write-sidecar"
        )
    calibration_pairs = None
    if args.camera_calibrate_threshold is not None:
        if not args.camera:
            raise CommandError("--camera-calibrate-threshold needs --camera (DeepPCB's own images are binarised)")
        try:
            calibration_pairs = load_list(args.root, args.camera_calibrate_threshold)
        except DatasetError as exc:
            raise CommandError(f"--camera-calibrate-threshold: {exc}") from None
        if not calibration_pairs:
            raise CommandError(f"--camera-calibrate-threshold {args.camera_calibrate_threshold}: no pairs listed")
    camera = None
    if args.camera:
        camera = {
            "mode": args.camera,
            "shift": args.camera_shift,
            "rotate": args.camera_rotate,
            "seed": args.camera_seed,
            "profile": args.camera_profile,
            "copper": args.camera_copper,
            "gamma": args.camera_gamma,
            "scale": args.camera_scale,
            "motion": args.camera_motion,
            "defocus": args.camera_defocus,
            "resolution": args.camera_resolution,
            "etch": args.camera_etch,
            "renderer": args.camera_renderer,
            "width": args.camera_width,
            "golden_boards": args.camera_golden_boards,
            "calibration_pairs": calibration_pairs,
        }
    main = _evaluate_model(args.model, pairs, args.out, args.floor, args.threads, camera, args.one_defect, args.passes)
    result = {"main": main}
    if args.compare_model:
        other = _evaluate_model(
            args.compare_model, pairs, None, args.floor, args.threads, camera, args.one_defect, args.passes
        )
        result["compare"] = other
        result["map50_delta"] = main["map50"] - other["map50"]
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2))
    if args.write_sidecar:
        _write_sidecar(args, result)
    if args.json:
        print(json.dumps(result))
        return 0
    _print(main, "model")
    if args.compare_model:
        _print(result["compare"], "compared model")
        print(f"mAP@0.5 difference (model - compared): {result['map50_delta']:+.4f}")
    print(f"result files: {args.out}/<id>.txt", file=sys.stderr)
    return 0


def _refuse_figures_of_trained_boards(model: Path | None) -> None:
    """A package trained on every pair (`train --train-on all`) has no held-out boards: figures written into its
    sidecar would be on boards it learnt, and the card would present them as a measurement. Its sidecar carries the
    figures of the same recipe trained on the split instead (`export --recipe-metrics`)."""
    from ..cli import CommandError
    from ..detect.package import sidecar_path

    if model is None:
        return
    try:
        doc = json.loads(sidecar_path(Path(model)).read_text())
    except (OSError, ValueError):
        return  # _write_sidecar names the problem
    if doc.get("training", {}).get("train_on") == "all":
        raise CommandError(
            f"{model} was trained on every pair (training.train_on: all): figures of it on these boards would be on "
            "boards it trained on; its sidecar holds its recipe's figures (measured_on). Evaluate without "
            "--write-sidecar"
        )


def _write_sidecar(args: argparse.Namespace, result: dict) -> None:
    """The model card's figures come from this command, not from hand edits.

    Refuses a signed sidecar: changing it would break the signature the station checks.
    """
    from ..cli import CommandError
    from ..detect.package import sidecar_path

    model = args.model
    if model is None:
        raise CommandError("--write-sidecar needs --model (the package whose sidecar gets the figures)")
    side = sidecar_path(Path(model))
    try:
        doc = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"{side}: cannot read the sidecar ({exc})") from None
    from ..signing import signature_path

    if signature_path(Path(model)).exists():
        raise CommandError(
            f"{model} is signed ({signature_path(Path(model)).name}); changing its sidecar would break the "
            "signature: write the figures before signing"
        )
    keep = (
        "model",
        "backend",
        "escaped_boards",
        "unregistered_boards",
        "false_rejected_templates",
        "false_rejected_other_boards",
        "other_boards_unregistered",
        "one_defect_escaped",
        "one_defect_elsewhere",
    )
    metrics = doc.setdefault("metrics", {})
    if args.camera:  # camera-domain figures sit beside the binarised ones, never in their place
        harsh = args.camera_profile == "harsh"
        dark = args.camera_copper == "dark"
        gamma = f"_gamma{round(args.camera_gamma * 100):03d}" if args.camera_gamma != 1.0 else ""
        scale = f"_scale{round(args.camera_scale * 1000):04d}" if args.camera_scale != 1.0 else ""
        motion = f"_motion{args.camera_motion:g}".replace(".", "p") if args.camera_motion else ""
        defocus = f"_defocus{args.camera_defocus:g}".replace(".", "p") if args.camera_defocus else ""
        res = f"_res{round(args.camera_resolution * 100):03d}" if args.camera_resolution != 1.0 else ""
        etch = f"_etch{args.camera_etch:+g}".replace(".", "p") if args.camera_etch else ""
        width = f"_width{args.camera_width:+g}".replace(".", "p") if args.camera_width else ""
        optics = args.camera_renderer == "optics"
        calibrated = args.camera_calibrate_threshold is not None
        key = (
            f"val_int8_camera_{args.camera}"
            + ("_harsh" if harsh else "")
            + ("_dark" if dark else "")
            + gamma
            + scale
            + motion
            + defocus
            + res
            + etch
            + width
            + ("_optics" if optics else "")
            + ("_calibrated" if calibrated else "")
        )
        metrics[key] = {k: v for k, v in result["main"].items() if k not in keep}
        groups = f" --groups {args.groups}" if args.groups else ""
        metrics[key]["command"] = (
            f"pcb-inspector evaluate --root DEEPPCB{groups} --camera {args.camera} --camera-shift {args.camera_shift:g} "
            f"--camera-rotate {args.camera_rotate:g} --camera-seed {args.camera_seed}"
            + (" --camera-profile harsh" if harsh else "")
            + (" --camera-copper dark" if dark else "")
            + (f" --camera-gamma {args.camera_gamma:g}" if gamma else "")
            + (f" --camera-scale {args.camera_scale:g}" if scale else "")
            + (f" --camera-motion {args.camera_motion:g}" if motion else "")
            + (f" --camera-defocus {args.camera_defocus:g}" if defocus else "")
            + (f" --camera-resolution {args.camera_resolution:g}" if res else "")
            + (f" --camera-etch {args.camera_etch:g}" if etch else "")
            + (f" --camera-width {args.camera_width:g}" if width else "")
            + (" --camera-renderer optics" if optics else "")
            + (f" --camera-calibrate-threshold {args.camera_calibrate_threshold}" if calibrated else "")
        )
        side.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"figures written to {side} ({key})", file=sys.stderr)
        return
    metrics["val_int8"] = {k: v for k, v in result["main"].items() if k not in keep}
    if "compare" in result:
        metrics["val_float_tflite"] = {k: v for k, v in result["compare"].items() if k not in keep}
    groups = f" --groups {args.groups}" if args.groups else ""
    metrics["val_note"] = (
        f"pcb-inspector evaluate --root DEEPPCB{groups} ({result['main']['boards']} boards); "
        "float_val is the trainer's own last validation."
    )
    side.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"figures written to {side}", file=sys.stderr)
