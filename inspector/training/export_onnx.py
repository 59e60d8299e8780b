"""Export the trained detector to a second model package for ONNX Runtime: INT8 QDQ `.onnx` + sidecar.

    python -m inspector.training.export_onnx --weights models/pcb-defect-det.weights.h5 \
        --out models/pcb-defect-det-onnx.onnx --data ../shared/datasets/deeppcb \
        --like models/pcb-defect-det.json

Why a second package from the same weights: stations whose accelerator ships an ONNX Runtime
execution provider (OpenVINO, CUDA, QNN, CANN) and no LiteRT delegate run the same network, with
the same labels, thresholds and passes, so its figures mean the same as the LiteRT package's.

Why these choices:
- the graph is the one the TFLite export builds (`export.load_trained`, raw pixels in, 1/255 and the
  heatmap sigmoid inside the graph), but with a uint8 input: the station writes the stacked
  board/reference/difference straight into the input buffer, as it does for the INT8 `.tflite`;
- QDQ (QuantizeLinear/DequantizeLinear pairs around float ops) is the format every execution
  provider reads; ONNX Runtime's CPU provider fuses the pairs into integer kernels;
- weights per output channel (the depthwise convolutions of MobileNetV3 have very different
  ranges per channel), activations calibrated on whole training-split boards, as for the `.tflite`;
- outputs stay float (dequantised in the graph), so the station decodes them as a float model.
The command then compares the INT8 file with the float ONNX graph on held-out boards (same figures as
the TFLite export prints) and writes the sidecar with `runtime: onnxruntime`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from inspector.training.export import (  # noqa: E402
    DEEPPCB_LICENCE,
    agreement_with,
    board_pairs,
    load_trained,
    run_config,
    stacked_inputs,
)

#: Sidecar keys copied from the LiteRT package given with --like (same network, same behaviour).
SHARED_KEYS = (
    "labels",
    "needs_reference",
    "output",
    "thresholds",
    "nms_iou",
    "tta",
    "max_defect_px",
    "multiscale",
    "join_fragments",
    "cross_class",
    "input_domain",
    "training",
    "licence",
)


def to_onnx(model, size: int, out: Path, opset: int = 17) -> Path:
    """The trained Keras model as a float ONNX graph: uint8 pixels in, (scores, regression) out."""
    import tensorflow as tf
    import tf2onnx

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.uint8, name="image")])
    def graph(x):
        hm, rg = model(tf.cast(x, tf.float32) * (1.0 / 255.0), training=False)
        return {"scores": tf.sigmoid(hm), "regression": rg}

    tf2onnx.convert.from_function(graph, input_signature=graph.input_signature, opset=opset, output_path=str(out))
    return out


class _Calibration:
    """Feeds whole training-split boards (tiles for larger boards) to the static quantiser."""

    def __init__(self, inputs: list[np.ndarray], input_name: str):
        self._it = iter(inputs)
        self.name = input_name

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {self.name: x[None]}

    def rewind(self) -> None:  # newer quantisers rewind between calibration passes
        raise NotImplementedError


def quantise(float_model: Path, out: Path, calib: list[np.ndarray], per_channel: bool = True) -> Path:
    """INT8 QDQ model from `float_model`, activations calibrated (min/max) on `calib`."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(
            str(float_model), str(pre), skip_symbolic_shape=True
        )  # static shapes: ONNX inference suffices
        name = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.inner = _Calibration(calib, name)

            def get_next(self):
                return self.inner.get_next()

        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    return out


def ort_runner(path: Path, threads: int = 2):
    """x (H, W, 3) float pixels -> (scores, regression) from an ONNX file, for the agreement check."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    order = [o.name for o in sess.get_outputs()]

    def run(x: np.ndarray):
        outs = dict(zip(order, sess.run(None, {name: np.clip(np.rint(x), 0, 255).astype(np.uint8)[None]})))
        return outs["scores"][0], outs["regression"][0]

    return run


def sidecar_from(like: Path | None, size: int) -> dict:
    """The LiteRT package's behaviour keys, so both packages are read and merged the same way."""
    from inspector.training.export import default_meta

    base = default_meta("pcb-defect-det", "1.0.0", size, "uint8", 0.3, 180)
    if like is None:
        return base
    src = json.loads(Path(like).read_text())
    for key in SHARED_KEYS:
        if key in src:
            base[key] = src[key]
    base["version"] = src.get("version", base["version"])
    base["name"] = src.get("name", base["name"])
    return base


def sync_sidecar(model: Path, like: Path) -> Path:
    """Rewrite the ONNX package's sidecar with `like`'s behaviour keys (same file, new figures kept).

    Why: a change to the LiteRT package's thresholds, passes or image domain must reach the second
    package too, without re-exporting the same weights.
    """
    from inspector.detect.package import write_sidecar

    meta = json.loads(Path(model).with_suffix(".json").read_text())
    src = json.loads(Path(like).read_text())
    for key in SHARED_KEYS:
        if key in ("training", "licence"):
            continue
        if key in src:
            meta[key] = src[key]
        else:
            meta.pop(key, None)
    meta["version"] = src.get("version", meta["version"])
    return write_sidecar(Path(model), meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help=".weights.h5 file, checkpoint prefix or ckpt/ folder")
    ap.add_argument("--out", type=Path, required=True, help="output .onnx (sidecar .json written beside it)")
    ap.add_argument("--data", default="synth", help="DeepPCB root, synthetic folder (truth.json) or 'synth'")
    ap.add_argument(
        "--like", type=Path, default=None, help="LiteRT sidecar whose labels, thresholds and passes to copy"
    )
    ap.add_argument("--name", default=None, help="package name (default: the --like package's name + '-onnx')")
    ap.add_argument("--size", type=int, default=640, help="square model input, px")
    ap.add_argument("--calib", type=int, default=64, help="whole training-split boards for calibration")
    ap.add_argument("--check", type=int, default=16, help="held-out boards for the INT8 vs float check")
    ap.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--neck", type=int, default=None)
    ap.add_argument("--detail", type=int, default=None)
    ap.add_argument("--min-agreement", type=float, default=0.0, help="exit 1 if verdict agreement is below this")
    ap.add_argument(
        "--sync-only",
        action="store_true",
        help="do not export: rewrite --out's sidecar with --like's labels, thresholds, passes and image domain",
    )
    args = ap.parse_args(argv)
    if args.sync_only:
        if args.like is None:
            raise SystemExit("--sync-only needs --like (the LiteRT package's sidecar)")
        print(f"wrote {sync_sidecar(args.out, args.like)}")
        return 0
    if args.weights is None:
        raise SystemExit("--weights is required (the trained weights to export)")

    from inspector.detect.package import write_sidecar

    cfg = run_config(args.weights)
    backbone = args.backbone or cfg.get("backbone", "small")
    alpha = args.alpha if args.alpha is not None else float(cfg.get("alpha", 1.0))
    neck = args.neck if args.neck is not None else int(cfg.get("neck", 64))
    detail = args.detail if args.detail is not None else int(cfg.get("detail", 0))
    model = load_trained(args.weights, args.size, backbone, alpha, neck, detail)
    print(f"{model.name}: {model.count_params():,} parameters from {args.weights}", flush=True)
    calib_pairs = board_pairs(args.data, args.calib, split="train")
    check_pairs = board_pairs(args.data, args.check, split="val")
    if not calib_pairs or not check_pairs:
        raise SystemExit(f"--data {args.data}: {len(calib_pairs)} calibration and {len(check_pairs)} held-out boards")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fpath = to_onnx(model, args.size, Path(tmp) / "float.onnx")
        calib = list(stacked_inputs(calib_pairs, args.size))
        t0 = time.time()
        quantise(fpath, args.out, calib, per_channel=not args.per_tensor)
        print(
            f"INT8 QDQ: {args.out.stat().st_size / 1e6:.2f} MB from {len(calib)} calibration inputs "
            f"in {time.time() - t0:.0f} s",
            flush=True,
        )
        checks = list(stacked_inputs(check_pairs, args.size, known_good_every=4))
        agree = agreement_with(ort_runner(args.out), ort_runner(fpath), checks)
    print(
        "INT8 vs float on {inputs} held-out inputs: heatmap MAE {heatmap_mae:.4f} (max {heatmap_max_abs:.3f}), "
        "detections float {detections_float} / int8 {detections_int8}, detection agreement "
        "{detection_agreement:.3f}, verdict agreement {verdict_agreement:.3f} at score {threshold}".format(**agree)
    )
    meta = sidecar_from(args.like, args.size)
    meta["name"] = args.name or f"{meta['name']}-onnx"
    meta["runtime"] = "onnxruntime"
    meta["input"] = {
        "shape": [1, args.size, args.size, 3],
        "dtype": "uint8",
        "quantisation": {"scale": 1.0, "zero_point": 0},
        "channels": ["board", "reference", "absdiff"],
        "value_range": [0.0, 255.0],
    }
    meta["metrics"] = {
        "int8_vs_float": agree,
        "quantisation": "QDQ INT8, weights per channel" if not args.per_tensor else "QDQ INT8, weights per tensor",
    }
    meta.setdefault(
        "licence", DEEPPCB_LICENCE if "deeppcb" in str(args.data).lower() else "Trained on synthetic boards only."
    )
    side = write_sidecar(args.out, meta)
    print(f"wrote {args.out} and {side}")
    if agree["verdict_agreement"] < args.min_agreement:
        print(f"verdict agreement {agree['verdict_agreement']:.3f} is below {args.min_agreement}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
