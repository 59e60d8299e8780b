"""Export a trained detector to the station's model package: full-integer INT8 `.tflite` + sidecar.

    python -m inspector.training.export --weights runs/det-v1/best.weights.h5 \
        --out models/pcb-defect-det.tflite --data ../shared/datasets/deeppcb

Why these choices:
- batch 1 and a static 640x640 input, so no dynamic SHAPE/GATHER ops reach the graph;
- uint8 input holding raw pixels (the 1/255 scaling is inside the graph), so the station feeds
  the stacked board/reference/difference image with no arithmetic at all;
- the heatmap sigmoid is inside the graph, so INT8 scores come out already in 0..1;
- the representative dataset is whole boards (not crops): the activation ranges the converter
  calibrates must be those the station meets.
- BatchNorm statistics are re-estimated on training boards first (`--recalibrate-bn`, default 64):
  Keras' MobileNetV3 uses momentum 0.999, so the stored statistics lag the weights. Measured on the
  det-v1 step-3000 weights, 41 validation boards, INT8: mAP@0.5 0.38 without, 0.84 with.
The command then runs the INT8 file and the float model on held-out boards and prints how well
they agree (heatmap error, matched detections, board verdicts): quantisation must not change a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from inspector.datasets.deeppcb import held_out_split, load_list, read_gray  # noqa: E402
from inspector.detect.centernet import decode  # noqa: E402
from inspector.detect.package import CrossClass, InputDomain, JoinFragments, MultiScale, write_sidecar  # noqa: E402
from inspector.detect.tiling import box_iou  # noqa: E402
from inspector.domain import CLASS_NAMES  # noqa: E402

STRIDE = 4
DEEPPCB_LICENCE = (
    "Weights trained on DeepPCB (Tang et al. 2019, MIT licence; its README restricts the data to research use). "
    "Retrain on your own boards (pcb-inspector dataset export + inspector.training.train) for production use."
)


# ------------------------------------------------------------------ data
def recipe_metrics(sidecar: Path | None, weights: Path) -> dict:
    """The held-out figures of the same recipe trained on the split, for weights trained on every pair.

    Why borrowed and labelled: a model trained on every pair has no held-out board left, and any figure of it on
    DeepPCB would be on boards it learnt. What a plant can be told is what the recipe measured on boards it never
    saw; `metrics.measured_on` names that model, so the card says whose figures they are.
    """
    if sidecar is None:
        raise SystemExit(
            f"{weights} was trained on every pair (--train-on all) and has no held-out figures of its own: pass "
            "--recipe-metrics with the sidecar of the same recipe trained on the split"
        )
    try:
        doc = json.loads(Path(sidecar).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--recipe-metrics {sidecar}: cannot read the sidecar ({exc})") from None
    if doc.get("training", {}).get("train_on") == "all":
        raise SystemExit(f"--recipe-metrics {sidecar}: that model was trained on every pair too; it measured nothing")
    figures = {k: v for k, v in doc.get("metrics", {}).items() if k.startswith("val_")}
    if "val_int8" not in figures:
        raise SystemExit(
            f"--recipe-metrics {sidecar}: no metrics.val_int8 (run pcb-inspector evaluate --write-sidecar)"
        )
    figures["measured_on"] = {
        "model": f"{doc.get('name', '?')}@{doc.get('version', '?')}",
        "sha256": doc.get("sha256"),
        "note": "the same recipe trained on the split: its held-out boards were never trained on. This package was "
        "trained on every pair, those boards included, and has no held-out figure of its own",
    }
    return figures


def board_pairs(data: Path, count: int, seed: int = 0, split: str = "train") -> list[tuple[np.ndarray, np.ndarray]]:
    """(board, reference) uint8 gray pairs from a DeepPCB root, a synthetic folder (truth.json) or 'synth'.

    A dataset root is split exactly as training splits it (`held_out_split`); `split='train'` feeds calibration and
    `split='val'` the agreement check, so the check never sees calibration boards.
    """
    if str(data) == "synth":
        from inspector.synth import make_board

        base = 1_000_000 if split == "val" else 0
        out = []
        for i in range(count):
            b = make_board(seed * 7919 + base + i)
            out.append((b.image, b.reference))
        return out
    data = Path(data)
    if (data / "truth.json").is_file():
        names = sorted(json.loads((data / "truth.json").read_text()))
        names = names[: len(names) // 2] if split == "train" else names[len(names) // 2 :]
        return [(read_gray(data / f"{n}_test.png"), read_gray(data / f"{n}_temp.png")) for n in names[:count]]

    # The trainer's split (a station export's heldout.txt, DeepPCB's validation groups, else by board).
    train, val, _ = held_out_split(data, load_list(data))
    pairs = train if split == "train" else val
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pairs), size=min(count, len(pairs)), replace=False)
    return [(read_gray(pairs[i].test_path), read_gray(pairs[i].template_path)) for i in sorted(pick)]


def stacked_inputs(pairs, size: int, known_good_every: int = 8) -> Iterator[np.ndarray]:
    """Model inputs (size x size x 3 uint8) from whole boards; boards larger than `size` give tiles."""
    from inspector.detect.tiling import cut, plan_tiles
    from inspector.training.train import stack_input

    for i, (board, ref) in enumerate(pairs):
        if known_good_every and i % known_good_every == 0:
            board = ref  # a known-good board: calibration must also see an all-zero difference channel
        x = stack_input(board, ref)
        for t in plan_tiles(x.shape[0], x.shape[1], size, size, 0):
            yield cut(x, t, size, size)


# ------------------------------------------------------------------ model
def run_config(weights: Path) -> dict:
    for folder in (weights.parent, weights.parent.parent):
        if (folder / "config.json").is_file():
            return json.loads((folder / "config.json").read_text())
    return {}


def load_trained(weights: Path, size: int, backbone: str, alpha: float, neck: int, detail: int = 0):
    """The trained detector rebuilt for export: batch 1, static `size`; weights from .h5 or a checkpoint."""
    import tensorflow as tf

    from inspector.training.model import build_detector

    model = build_detector(size, 1, backbone, alpha, neck, detail=detail)
    weights = Path(weights)
    if weights.suffix == ".h5":
        model.load_weights(weights)
    else:
        prefix = tf.train.latest_checkpoint(str(weights)) if weights.is_dir() else str(weights)
        if not prefix:
            raise SystemExit(f"{weights}: no checkpoint found")
        status = tf.train.Checkpoint(model=model).restore(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    return model


def recalibrate_batchnorm(model, pairs, size: int, momentum: float = 0.9, log=print) -> None:
    """Re-estimate BatchNorm moving statistics on whole boards, weights untouched (`--recalibrate-bn`).

    Needed only for runs whose statistics lag the weights (Keras' default momentum 0.999). With the
    model's momentum 0.99 the trained statistics are better: measured on training groups 77000+50600
    (INT8, mirror TTA), re-estimating on 64 whole boards gave mAP@0.5 0.993 / mAP@0.5:0.95 0.52 / F 0.944
    against 0.991 / 0.68 / 0.980 with the trained statistics, so the shipped recipe no longer uses it.
    """
    from inspector.training.bn import reestimate_bn

    n = reestimate_bn(
        model, (x[None].astype(np.float32) / 255.0 for x in stacked_inputs(pairs, size, known_good_every=0)), momentum
    )
    log(f"BatchNorm statistics re-estimated on {n} inputs")


def export_graph(model, size: int):
    """Raw-pixel float input -> /255 -> detector -> (sigmoid scores, regression)."""
    import keras

    inp = keras.Input((size, size, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="to_unit")(inp)
    hm, rg = model(x)
    scores = keras.layers.Activation("sigmoid", name="scores")(hm)
    return keras.Model(inp, [scores, rg], name=f"{model.name}_export")


def convert(graph, size: int, calibration: list[np.ndarray] | None) -> bytes:
    """INT8 (uint8 in, int8 out) when calibration images are given, else a float32 reference model."""
    import tensorflow as tf

    # from_keras_model freezes the Keras 3 variables; a bare concrete function leaves READ_VARIABLE ops.
    conv = tf.lite.TFLiteConverter.from_keras_model(graph)
    if calibration is not None:

        def rep():
            for x in calibration:
                yield [x[None].astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.int8
    return conv.convert()


# ------------------------------------------------------------------ agreement
def _run_tflite(blob: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from inspector.detect.delegates import runtime

    it = runtime().Interpreter(model_content=blob, num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    if inp["dtype"] == np.uint8:
        scale, zp = inp["quantization"]
        q = np.clip(np.round(x / scale + zp), 0, 255).astype(np.uint8)
    else:
        q = x.astype(np.float32)
    it.set_tensor(inp["index"], q[None])
    it.invoke()
    outs = []
    for d in it.get_output_details():
        v = it.get_tensor(d["index"])[0]
        if d["dtype"] != np.float32:
            s, z = d["quantization"]
            v = (v.astype(np.float32) - z) * s
        outs.append(v)
    outs.sort(key=lambda a: -a.shape[-1])  # heatmap (C=6) before regression (4)
    return outs[0], outs[1]


def agreement(int8: bytes, reference_fn, inputs: list[np.ndarray], threshold: float = 0.3) -> dict:
    """Compare INT8 against float on the same inputs: heatmap error, matched detections, verdicts."""
    return agreement_with(lambda x: _run_tflite(int8, x), reference_fn, inputs, threshold)


def agreement_with(int8_fn, reference_fn, inputs: list[np.ndarray], threshold: float = 0.3) -> dict:
    """`agreement` for any INT8 runner (x -> scores, regression); the ONNX export uses it too."""
    errs, maxerr, matched, n_f, n_q, verdict_same = [], 0.0, 0, 0, 0, 0
    for x in inputs:
        hq, rq = int8_fn(x.astype(np.float32))
        hf, rf = reference_fn(x.astype(np.float32))
        errs.append(float(np.mean(np.abs(hq - hf))))
        maxerr = max(maxerr, float(np.max(np.abs(hq - hf))))
        bf, sf, cf = decode(hf, rf, STRIDE, floor=threshold)
        bq, sq, cq = decode(hq, rq, STRIDE, floor=threshold)
        n_f, n_q = n_f + len(sf), n_q + len(sq)
        verdict_same += (len(sf) > 0) == (len(sq) > 0)
        if len(sf) and len(sq):
            iou = box_iou(bf, bq) * (cf[:, None] == cq[None, :])
            used = set()
            for i in range(len(sf)):
                j = int(np.argmax(iou[i]))
                if iou[i, j] >= 0.5 and j not in used:
                    used.add(j)
                    matched += 1
    det_agree = matched / max(n_f, n_q, 1)
    return {
        "inputs": len(inputs),
        "heatmap_mae": float(np.mean(errs)) if errs else 0.0,
        "heatmap_max_abs": maxerr,
        "detections_float": n_f,
        "detections_int8": n_q,
        "detection_agreement": det_agree,
        "verdict_agreement": verdict_same / max(len(inputs), 1),
        "threshold": threshold,
    }


def keras_reference(graph):
    def run(x: np.ndarray):
        hm, rg = graph(x[None], training=False)
        return np.asarray(hm)[0], np.asarray(rg)[0]

    return run


# ------------------------------------------------------------------ package
def default_meta(
    name: str,
    version: str,
    size: int,
    dtype: str,
    threshold: float,
    max_defect_px: int,
    tta: str = "none",
    multiscale: dict | None = None,
    join_fragments: dict | None = None,
    cross_class: dict | None = None,
    input_domain: dict | None = None,
) -> dict:
    meta = {
        "name": name,
        "version": version,
        "labels": list(CLASS_NAMES),
        "input": {
            "shape": [1, size, size, 3],
            "dtype": dtype,
            "quantisation": None,
            "channels": ["board", "reference", "absdiff"],
            "value_range": [0.0, 255.0],
        },
        "needs_reference": True,
        "output": {"head": "centernet", "strides": [STRIDE], "heatmap_activation": "sigmoid"},
        "thresholds": {c: threshold for c in CLASS_NAMES},
        "nms_iou": 0.5,
        "tta": tta,
        "max_defect_px": max_defect_px,
    }
    if multiscale:
        meta["multiscale"] = multiscale
    if join_fragments:
        meta["join_fragments"] = join_fragments
    if cross_class:
        meta["cross_class"] = cross_class
    if input_domain:
        meta["input_domain"] = input_domain
    return meta


def input_quantisation(blob: bytes) -> dict | None:
    from inspector.detect.delegates import runtime

    it = runtime().Interpreter(model_content=blob)
    d = it.get_input_details()[0]
    if d["dtype"] == np.float32:
        return None
    scale, zp = d["quantization"]
    return {"scale": float(scale), "zero_point": int(zp)}


def write_package(out: Path, blob: bytes, meta: dict) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    meta = json.loads(json.dumps(meta))
    meta["input"]["quantisation"] = input_quantisation(blob)
    return write_sidecar(out, meta)


def parse_input_domain(value: str) -> dict | None:
    """The sidecar's `input_domain` from `--input-domain` ('none', a kind, or a JSON object), every field written out.

    Writing all fields, defaults included, keeps the package's behaviour fixed when a later runtime
    changes a default.
    """
    if value in ("", "none"):
        return None
    try:
        data = json.loads(value) if value.lstrip().startswith("{") else {"kind": value}
        return InputDomain.model_validate(data).model_dump()
    except (ValueError, ValidationError) as exc:
        detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
        msg = f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}" if detail else str(exc)
        raise SystemExit(f"--input-domain {value!r}: {msg}") from None


def export_model(
    model,
    out: Path,
    *,
    size: int,
    calib_pairs,
    check_pairs,
    name: str,
    version: str,
    threshold: float = 0.3,
    max_defect_px: int = 180,
    tta: str = "none",
    multiscale: dict | None = None,
    join_fragments: dict | None = None,
    cross_class: dict | None = None,
    input_domain: dict | None = None,
    float_out: Path | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    licence: str = DEEPPCB_LICENCE,
    log=print,
) -> dict:
    """Convert, check agreement and write the package(s); returns the agreement figures."""
    graph = export_graph(model, size)
    calib = list(stacked_inputs(calib_pairs, size))
    t0 = time.time()
    blob = convert(graph, size, calib)
    log(f"INT8 conversion: {len(blob) / 1e6:.2f} MB from {len(calib)} calibration inputs in {time.time() - t0:.0f} s")
    checks = list(stacked_inputs(check_pairs, size, known_good_every=4))
    agree = agreement(blob, keras_reference(graph), checks, threshold)
    log(
        "INT8 vs float on {inputs} held-out inputs: heatmap MAE {heatmap_mae:.4f} (max {heatmap_max_abs:.3f}), "
        "detections float {detections_float} / int8 {detections_int8}, detection agreement "
        "{detection_agreement:.3f}, verdict agreement {verdict_agreement:.3f} at score {threshold}".format(**agree)
    )
    meta = default_meta(
        name,
        version,
        size,
        "uint8",
        threshold,
        max_defect_px,
        tta,
        multiscale,
        join_fragments,
        cross_class,
        input_domain,
    )
    meta["training"] = training or {}
    meta["metrics"] = {**(metrics or {}), "int8_vs_float": agree}
    meta["licence"] = licence
    side = write_package(out, blob, meta)
    log(f"wrote {out} and {side}")
    if float_out is not None:
        fblob = convert(graph, size, None)
        fmeta = default_meta(
            name + "-float",
            version,
            size,
            "float32",
            threshold,
            max_defect_px,
            tta,
            multiscale,
            join_fragments,
            cross_class,
            input_domain,
        )
        fmeta.update(training=training or {}, metrics=metrics or {}, licence=licence)
        fside = write_package(Path(float_out), fblob, fmeta)
        log(f"wrote float reference {float_out} ({len(fblob) / 1e6:.2f} MB) and {fside}")
    return agree


def multiscale_block(spec: str, min_box_px: float, label_margin_px: float, mirror: bool = True) -> dict | None:
    """The sidecar's `multiscale` from the command line (None without `--multiscale`); SystemExit naming the flag.

    `mirror` is written only when false, so a package that mirrors its reduced passes, as every one did before the
    key existed, still loads on stations that do not know it.
    """
    if not spec:
        return None
    try:
        scales = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--multiscale {spec!r}: expected comma-separated numbers, e.g. 0.8") from None
    block: dict = {"scales": scales, "min_box_px": min_box_px, "label_margin_px": label_margin_px}
    if not mirror:
        block["mirror"] = False
    try:
        MultiScale.model_validate(block)
    except ValidationError as exc:
        raise SystemExit(f"--multiscale: {exc.errors()[0]['msg']}") from None
    return block


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help=".weights.h5 file, checkpoint prefix or ckpt/ folder")
    ap.add_argument("--out", type=Path, required=True, help="output .tflite (sidecar .json written beside it)")
    ap.add_argument("--data", default="synth", help="DeepPCB root, synthetic folder (truth.json) or 'synth'")
    ap.add_argument("--size", type=int, default=640, help="square model input, px")
    ap.add_argument("--calib", type=int, default=64, help="whole boards in the representative dataset")
    ap.add_argument("--check", type=int, default=16, help="held-out boards for the INT8 vs float check")
    ap.add_argument("--name", default="pcb-defect-det")
    ap.add_argument("--version", default="1.0.0", help="semantic version written to the sidecar")
    ap.add_argument("--threshold", type=float, default=0.3, help="default per-class score threshold")
    ap.add_argument("--max-defect-px", type=int, default=180, help="largest defect side (sets tile overlap)")
    ap.add_argument(
        "--tta",
        choices=["none", "hflip"],
        default="none",
        help="test-time augmentation the station applies (sidecar 'tta'); 'hflip' doubles the invokes",
    )
    ap.add_argument(
        "--multiscale",
        default="",
        metavar="SCALES",
        help="extra passes at these frame scales, comma-separated (e.g. 0.8; sidecar 'multiscale'); "
        "each adds the invokes of one pass",
    )
    ap.add_argument(
        "--multiscale-min-box",
        type=float,
        default=50.0,
        metavar="PX",
        help="a reduced pass only contributes boxes at least this long (longer side, frame px)",
    )
    ap.add_argument(
        "--multiscale-mirror",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --tta hflip, mirror the reduced passes too (two invokes each); --no-multiscale-mirror: once each",
    )
    ap.add_argument(
        "--label-margin",
        type=float,
        default=0.0,
        metavar="PX",
        help="margin the training labels draw around a defect (DeepPCB: about 9 px); corrects reduced-pass boxes",
    )
    ap.add_argument(
        "--join-fragments",
        type=float,
        default=0.0,
        metavar="SCORE",
        help="also offer the union of touching same-class boxes that both score at least SCORE "
        "(sidecar 'join_fragments'; 0 = off)",
    )
    ap.add_argument(
        "--cross-class",
        type=float,
        default=0.0,
        metavar="IOU",
        help="keep one class per defect: drop a box covered by a better-scoring box of another class by this IoU "
        "(sidecar 'cross_class'; 0 = off); only boxes at or above --threshold are dropped",
    )
    ap.add_argument(
        "--input-domain",
        default="none",
        metavar="KIND|JSON",
        help="image domain the network takes and how the station gets there from a camera frame (sidecar "
        "'input_domain'): 'binary_copper' (DeepPCB-style copper masks, the station's preparation with its "
        "defaults), a JSON object of InputDomain fields, or 'none' (frames as given)",
    )
    ap.add_argument("--backbone", default=None, help="default: from the run's config.json, else 'small'")
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--neck", type=int, default=None)
    ap.add_argument("--detail", type=int, default=None, help="detail-branch channels; default from config.json")
    ap.add_argument("--float-out", type=Path, default=None, help="also write a float32 reference package")
    ap.add_argument(
        "--recalibrate-bn",
        type=int,
        default=0,
        metavar="N",
        help="re-estimate BatchNorm statistics on N training-split boards before converting (0 = off)",
    )
    ap.add_argument(
        "--recipe-metrics",
        type=Path,
        default=None,
        metavar="SIDECAR",
        help="weights trained on every pair (train --train-on all) only: the sidecar of the same recipe trained on "
        "the split, whose held-out figures this package carries, labelled as such (it has none of its own)",
    )
    ap.add_argument("--min-agreement", type=float, default=0.0, help="exit 1 if verdict agreement is below this")
    args = ap.parse_args(argv)

    multiscale = multiscale_block(args.multiscale, args.multiscale_min_box, args.label_margin, args.multiscale_mirror)
    join_fragments = None
    if args.join_fragments:
        join_fragments = {"min_score": args.join_fragments}
        try:
            JoinFragments.model_validate(join_fragments)
        except ValidationError as exc:
            raise SystemExit(f"--join-fragments: {exc.errors()[0]['msg']}") from None
    cross_class = None
    if args.cross_class:
        cross_class = {"iou": args.cross_class, "min_score": args.threshold}
        try:
            CrossClass.model_validate(cross_class)
        except ValidationError as exc:
            raise SystemExit(f"--cross-class: {exc.errors()[0]['msg']}") from None
    input_domain = parse_input_domain(args.input_domain)
    cfg = run_config(args.weights)
    backbone = args.backbone or cfg.get("backbone", "small")
    alpha = args.alpha if args.alpha is not None else float(cfg.get("alpha", 1.0))
    neck = args.neck if args.neck is not None else int(cfg.get("neck", 64))
    detail = args.detail if args.detail is not None else int(cfg.get("detail", 0))
    model = load_trained(args.weights, args.size, backbone, alpha, neck, detail)
    print(f"{model.name}: {model.count_params():,} parameters from {args.weights}", flush=True)
    if args.recalibrate_bn:
        recalibrate_batchnorm(model, board_pairs(args.data, args.recalibrate_bn, seed=1, split="train"), args.size)
    best = {}
    for folder in (args.weights.parent, args.weights.parent.parent):
        if (folder / "best.json").is_file():
            best = json.loads((folder / "best.json").read_text())
            break
    training = {
        "data": str(args.data),
        "split": "held out as the trainer does (inspector.datasets.deeppcb.held_out_split): a station export's "
        "heldout.txt, DeepPCB's validation groups, else 20% of the boards by board; never trained on",
        "recipe": {k: v for k, v in cfg.items() if k not in {"data", "out"}},
        "weights": str(args.weights),
        "architecture": {
            "backbone": f"MobileNetV3-{backbone} minimalistic",
            "alpha": alpha,
            "neck": neck,
            "detail_branch": detail,
        },
        "parameters": int(model.count_params()),
        "batchnorm_recalibrated_on": args.recalibrate_bn,
    }
    metrics = {"float_val": {k: best[k] for k in ("step", "map50", "map50_95", "per_class") if k in best}}
    if cfg.get("train_on", "split") == "all":
        training["train_on"] = "all"
        training["split"] = (
            "none held out: trained on every pair (train --train-on all), the recipe having been fixed and measured "
            "on the split; metrics are that split run's (metrics.measured_on)"
        )
        metrics = recipe_metrics(args.recipe_metrics, args.weights)
    elif args.recipe_metrics is not None:
        raise SystemExit(
            f"--recipe-metrics: {args.weights} was trained on the split, so its own held-out figures are measured "
            "by `pcb-inspector evaluate --write-sidecar`; borrowed figures are for weights trained on every pair"
        )
    check_pairs = board_pairs(args.data, args.check, split="val")
    calib_pairs = board_pairs(args.data, args.calib, split="train")
    if not check_pairs or not calib_pairs:
        # A quantisation check on no board proves nothing: refuse instead of writing an unchecked model.
        raise SystemExit(
            f"--data {args.data}: {len(calib_pairs)} calibration and {len(check_pairs)} held-out boards; the INT8 "
            "check needs held-out boards (a station export lists them in heldout.txt; DeepPCB uses groups "
            "44000,92000) and calibration needs training boards"
        )
    agree = export_model(
        model,
        args.out,
        size=args.size,
        calib_pairs=calib_pairs,
        check_pairs=check_pairs,
        name=args.name,
        version=args.version,
        threshold=args.threshold,
        max_defect_px=args.max_defect_px,
        tta=args.tta,
        multiscale=multiscale,
        join_fragments=join_fragments,
        cross_class=cross_class,
        input_domain=input_domain,
        float_out=args.float_out,
        training=training,
        metrics=metrics,
        licence=DEEPPCB_LICENCE if "deeppcb" in str(args.data).lower() else "Trained on synthetic boards only.",
    )
    if agree["verdict_agreement"] < args.min_agreement:
        print(f"verdict agreement {agree['verdict_agreement']:.3f} is below {args.min_agreement}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
