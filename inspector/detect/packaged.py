"""The station's detector: a verified model package, whatever runtime its sidecar names.

Detector = runtime x model format: this module is the model format (the sidecar's channels, image
domain, tiles, letterbox, mirror pass, reduced passes, decoding and merging); the runtime
(a detector plug-in's `RUNTIME`: LiteRT, ONNX Runtime) only loads the graph and invokes it, with the
plug-in's own `[detector]` settings handed to it as they are. Nothing here knows one runtime's keys.

Why it is built this way:
- The runtime is created in `load`, which the pipeline calls from its inference thread, and
  only that thread touches it afterwards (LiteRT interpreters are not thread-safe). A hot swap
  loads a second detector beside the first from another thread; the pipeline switches between two
  boards, so each runtime still has one user at a time.
- Pre-processing is a few whole-image OpenCV calls written straight into the input tensor;
  decoding is the same `centernet.decode` the trainer validates with, so station and training
  numbers mean the same thing.
- Nothing is run that could not be verified: the sidecar hash, the tensor shapes, dtypes and the
  label count are checked before the first board (see `package.py`).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError

from ..domain import CLASS_NAMES, Detection
from .base import Detector, DetectorInfo, ModelError
from .centernet import decode
from .cross_class import suppress_cross_class
from .delegates import Backend
from .fragments import join_touching
from .package import ModelMeta, invokes_per_tile, load_package, resample_factor, with_camera, with_passes
from .prepare import prepare
from .runtimes import Runtime, TensorSpec, runtime_class
from .settings import PackagedModelSettings
from .tiling import Tile, cut, keep_owned, nms_classwise, pad_from_reference, plan_tiles

log = logging.getLogger(__name__)

#: Detections below this never leave the detector, whatever the thresholds say.
SCORE_FLOOR = 0.05


class PackagedDetector(Detector):
    """A model package on the runtime its sidecar names.

    `settings` is the `[detector]` section of a runtime plug-in (`PackagedModelSettings` subclass): the
    sidecar's runtime must be its `type`, or `load` refuses the package naming both. Without `settings`
    (tools and tests that open a package by its file), the sidecar picks the runtime, which runs on
    the CPU unless `keys` say otherwise: that runtime's `[detector]` keys (`threads=1`,
    `delegate="auto"`, `providers=[...]`, ...), checked against its settings class when the package loads. `runtime_hooks` go to the runtime unchanged
    (test seams such as LiteRT's `delegate_loader`).
    """

    def __init__(
        self,
        model: Path | str,
        settings: PackagedModelSettings | None = None,
        *,
        top_k: int = 100,
        model_keys: Callable[[], object] | None = None,
        runtime_hooks: dict[str, Any] | None = None,
        **keys: Any,
    ):
        if settings is not None and keys:
            raise TypeError(f"give the settings or keys {sorted(keys)}, not both")
        self.model_path = Path(model)
        self.settings = settings
        self._keys = keys
        self.top_k = top_k
        self._hooks = dict(runtime_hooks or {})
        self.model_keys = model_keys if model_keys is not None or settings is None else settings.keys_loader()
        """Returns the station's ModelKeys for an encrypted package (called in `load`, so errors reach the lamp)."""
        self._info: DetectorInfo | None = None
        self._tile_cache: dict = {}
        self._staging: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self._ref_cache: dict[tuple, np.ndarray] = {}
        self._resample = 1.0  # network pixels per camera pixel (`resample_factor`), set by `load`
        self._resampled_ref: tuple[tuple, np.ndarray] | None = None
        self.meta: ModelMeta | None = None
        self.backend: Backend | None = None
        self._rt: Runtime | None = None
        self._sized: dict[tuple[int, int], Runtime | None] = {}
        """The graph at a reduced pass's own input size (w, h), or None where the runtime cannot run it so."""
        self.last_timings: dict[str, float] = {}
        self.warm_up_ms: float | None = None
        self.cpu_warm_up_ms: float | None = None

    # ------------------------------------------------------------------ load
    @property
    def info(self) -> DetectorInfo:
        if self._info is None:
            raise ModelError(f"{self.model_path}: model not loaded")
        return self._info

    @property
    def tile_overlap(self) -> int | None:
        return self._setting("tile_overlap", None)

    @property
    def threads(self) -> int:
        return self._setting("threads", 2)

    @property
    def require_accelerator(self) -> bool:
        """Refuse to run (ModelError: the model lamp says why) when no accelerator took the graph."""
        return self._setting("require_accelerator", False)

    def _setting(self, key: str, default: Any) -> Any:
        if self.settings is not None:
            return getattr(self.settings, key)
        return self._keys.get(key, default)

    def _settings_for(self, runtime: str) -> PackagedModelSettings:
        """The settings the package's runtime gets; a package of another runtime is refused, naming both."""
        if self.settings is not None:
            configured = getattr(self.settings, "type", None)
            if configured != runtime:
                raise ModelError(
                    f"{self.model_path}: the package's sidecar names runtime {runtime!r} but detector.type is "
                    f"{configured!r}: set `type = {runtime!r}` in [detector] (with that runtime's settings), or "
                    f"use a package made for {configured!r}"
                )
            return self.settings
        from .registry import detector_configs

        cls = detector_configs()[runtime]  # read_meta accepted the name: it is registered
        try:
            # Opened by its file: on the CPU (the runtime's `cpu_only`) unless the keys say otherwise.
            cpu = cls(model=self.model_path).cpu_only().model_dump(exclude={"threads"})
            return cls(**{**cpu, **self._keys, "model": self.model_path})
        except ValidationError as exc:
            bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ModelError(f"{self.model_path}: settings for runtime {runtime!r}: {bad}") from None

    def load(self) -> DetectorInfo:
        meta, blob = load_package(self.model_path, self.model_keys)
        self._close_sized()  # graphs of the previously loaded package
        settings = self._settings_for(meta.runtime)
        rt = runtime_class(meta.runtime, f"{self.model_path}: sidecar key 'runtime'")(
            blob, str(self.model_path), settings, **self._hooks
        )
        del blob
        self.settings = settings
        backend = rt.backend
        if self.require_accelerator and not backend.accelerated:
            rt.close()
            raise ModelError(
                f"{self.model_path}: detector.require_accelerator is set but no accelerator runs the model "
                f"({backend.fallback_reason()}; it would run on {backend.label.split(' (')[0]})"
            )
        self._verify(rt, meta)
        look, gamma = getattr(settings, "camera_copper", None), getattr(settings, "camera_gamma", None)
        px_per_mm = getattr(settings, "camera_px_per_mm", None)
        position = getattr(settings, "threshold_position", None)
        told = (look, gamma, px_per_mm, position)
        if any(v is not None for v in told) and meta.input_domain is None:
            log.warning(
                "%s: detector.camera_copper / camera_gamma / camera_px_per_mm / threshold_position ignored: this "
                "model takes frames as they are",
                self.model_path,
            )
        elif px_per_mm is not None and meta.input_domain.px_per_mm is None:
            log.warning(
                "%s: detector.camera_px_per_mm ignored: the model package does not say at which resolution it learnt "
                "boards (input_domain.px_per_mm), so frames are not resampled",
                self.model_path,
            )
        meta = with_camera(meta, look, gamma, px_per_mm, position)
        passes = self._setting("passes", "package")
        kept = with_passes(meta, passes)
        if kept is not meta:
            log.warning(
                "model %s: detector.passes = %s: %d invoke(s) a board of the package's %d; the model card's figures "
                "are the package's (docs/performance.md, *Fewer passes*)",
                meta.model_id,
                passes,
                invokes_per_tile(kept),
                invokes_per_tile(meta),
            )
            meta = kept
        self._resample = resample_factor(meta.input_domain)
        if self._resample != 1.0:
            log.info(
                "%s: camera at %.1f px/mm, model learnt %.1f px/mm: frames resampled by %.3f",
                self.model_path,
                meta.input_domain.camera_px_per_mm,
                meta.input_domain.px_per_mm,
                self._resample,
            )
        self.meta, self._rt, self.backend = meta, rt, backend
        self._bind(rt, meta)
        labels = tuple(meta.labels)
        ids = {name: CLASS_NAMES.index(name) + 1 if name in CLASS_NAMES else i + 1 for i, name in enumerate(labels)}
        self._class_ids = np.array([ids[n] for n in labels], np.int64)
        self._info = DetectorInfo(
            model_id=meta.model_id,
            backend=backend.label,
            input_size=(meta.input.shape[1], meta.input.shape[2]),
            needs_reference=meta.needs_reference,
            labels=labels,
            default_thresholds={ids[k]: v for k, v in meta.thresholds.items()},
            nms_iou=meta.nms_iou,
            accelerated=backend.accelerated,
            warning=f"CPU fallback: {backend.fallback_reason()}" if backend.cpu_fallback else "",
            colour=meta.input_domain.colour if meta.input_domain is not None else "red",
        )
        log.info(
            "model %s on %s via %s (%s); accelerator nodes %d of %d",
            meta.model_id,
            backend.label,
            meta.runtime,
            self.model_path,
            backend.accelerator_nodes,
            backend.graph_nodes,
        )
        if backend.cpu_fallback:
            log.warning(
                "model %s: an accelerator was configured but the CPU runs it (%s)",
                meta.model_id,
                backend.fallback_reason(),
            )
        return self._info

    @property
    def _it(self) -> Runtime | None:
        """The loaded runtime (None before `load` and after `close`)."""
        return self._rt

    def _verify(self, rt: Runtime, meta: ModelMeta) -> None:
        """The runtime's tensors must be what the sidecar says; any difference is a ModelError."""
        where = str(self.model_path)
        ins, outs = rt.inputs, rt.outputs
        if len(ins) != 1:
            raise ModelError(f"{where}: expected 1 input tensor, the model has {len(ins)}")
        shape = ins[0].shape
        if shape != tuple(meta.input.shape):
            raise ModelError(
                f"{where}: input shape {list(shape)} does not match the sidecar's {list(meta.input.shape)}"
            )
        dtype = ins[0].dtype.name
        if dtype != meta.input.dtype:
            raise ModelError(f"{where}: input dtype {dtype} does not match the sidecar's {meta.input.dtype}")
        if meta.input.quantisation is not None:
            scale, zp = ins[0].quantisation or (0.0, 0)
            q = meta.input.quantisation
            if not (np.isclose(scale, q.scale, rtol=1e-5) and zp == q.zero_point):
                raise ModelError(
                    f"{where}: input quantisation (scale {scale:g}, zero point {zp}) does not match the sidecar's "
                    f"(scale {q.scale:g}, zero point {q.zero_point})"
                )
        if len(outs) != 2:
            raise ModelError(
                f"{where}: a CenterNet model has 2 outputs (heatmap, regression), this one has {len(outs)}"
            )
        stride = meta.output.strides[0]
        grid = (1, shape[1] // stride, shape[2] // stride)
        by_c = sorted(outs, key=lambda d: -int(d.shape[-1]))
        hm_shape, rg_shape = (d.shape for d in by_c)
        if hm_shape[:3] != grid or rg_shape != (*grid, 4):
            raise ModelError(
                f"{where}: output shapes {list(hm_shape)} and {list(rg_shape)} do not fit stride {stride} "
                f"on a {shape[1]}x{shape[2]} input (expected {[*grid, len(meta.labels)]} and {[*grid, 4]})"
            )
        if hm_shape[3] != len(meta.labels):
            raise ModelError(
                f"{where}: the heatmap has {hm_shape[3]} classes but the sidecar lists {len(meta.labels)} labels "
                f"{list(meta.labels)}"
            )

    def _bind(self, rt: Runtime, meta: ModelMeta) -> None:
        ins: TensorSpec = rt.inputs[0]
        self._in_index = ins.index
        self._in_dtype = ins.dtype
        scale, zp = ins.quantisation if ins.quantisation is not None else (1.0, 0)
        lo, hi = meta.input.value_range
        # Raw pixels go in untouched when the quantisation maps 0..255 onto itself (the exported INT8 case).
        self._in_identity = self._in_dtype == np.float32 or (
            self._in_dtype == np.uint8 and np.isclose(scale, (hi - lo) / 255.0, rtol=1e-3) and zp == 0 and lo == 0
        )
        self._in_affine = (float(scale), int(zp))
        outs = sorted(rt.outputs, key=lambda d: -int(d.shape[-1]))
        self._hm_index, self._rg_index = outs[0].index, outs[1].index
        self._hm_q, self._rg_q = outs[0].quantisation, outs[1].quantisation
        self._stride = meta.output.strides[0]
        self._sigmoid = meta.output.heatmap_activation == "none"
        self._channels = meta.input.channels
        self._tta = meta.tta

    # ------------------------------------------------------------------ run
    def warm_up(self, runs: int = 3) -> float:
        """Median invoke time; with a delegate, also times the CPU so a slow delegate shows in the log."""
        if self._rt is None:
            raise ModelError(f"{self.model_path}: warm_up before load")
        times = self._time_invokes(self._rt, runs)
        self.warm_up_ms = float(np.median(times))
        th, tw = self._info.input_size
        for sc in self.meta.multiscale.scales if self.meta.multiscale is not None else ():
            # A board-sized frame's reduced pass: its graph built and run now, not on the first board.
            sized = self._sized_runtime((max(1, round(tw * sc)), max(1, round(th * sc))))
            if sized is not None:
                self._time_invokes(sized, runs)
        cpu = self._rt.cpu_twin() if self.backend is not None and self.backend.accelerated else None
        if cpu is not None:
            self.cpu_warm_up_ms = float(np.median(self._time_invokes(cpu, runs)))
            cpu.close()
            del cpu
            ratio = self.cpu_warm_up_ms / max(self.warm_up_ms, 1e-6)
            log.info(
                "delegate %s: %.1f ms vs CPU %.1f ms (x%.2f)",
                self.backend.label,
                self.warm_up_ms,
                self.cpu_warm_up_ms,
                ratio,
            )
            if ratio < 1.2:
                log.warning(
                    "delegate %s is hardly faster than the CPU (x%.2f): it probably runs only part of the graph",
                    self.backend.label,
                    ratio,
                )
        return self.warm_up_ms

    @staticmethod
    def _time_invokes(rt: Runtime, runs: int) -> list[float]:
        d = rt.inputs[0]
        rt.set_input(np.zeros(d.shape, d.dtype))
        out = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            rt.invoke()
            out.append((time.perf_counter() - t0) * 1000)
        return out

    def _stack(self, image: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
        """The model's input channels, for the whole frame (tiles are cut from it afterwards)."""
        planes = []
        for ch in self._channels:
            if ch == "board":
                planes.append(image)
            elif ch == "reference":
                planes.append(reference)
            else:
                planes.append(cv2.absdiff(image, reference))
        return planes[0] if len(planes) == 1 else cv2.merge(planes)

    def _tiles(self, h: int, w: int) -> list[Tile]:
        key = (h, w)
        if key not in self._tile_cache:  # a few sizes at most: the frame and its reduced copies
            th, tw = self._info.input_size
            overlap = self.tile_overlap if self.tile_overlap is not None else self.meta.max_defect_px
            if overlap > min(th, tw) // 2:
                # Beyond half a tile the tile count explodes; defects this large need a larger input anyway.
                log.warning(
                    "%s: tile overlap %d px is more than half the %dx%d input; using %d px",
                    self.model_path,
                    overlap,
                    th,
                    tw,
                    min(th, tw) // 2,
                )
                overlap = min(th, tw) // 2
            if len(self._tile_cache) >= 8:  # a camera that changes its frame size must not grow this
                self._tile_cache.clear()
            self._tile_cache[key] = plan_tiles(h, w, th, tw, overlap)
        return self._tile_cache[key]

    def _stack_into_input(self, image: np.ndarray, reference: np.ndarray | None) -> None:
        """Write the channels straight into the interpreter's input buffer (saves a frame-sized copy).

        The view must be gone before `invoke`: LiteRT refuses to run while Python holds its buffers.
        """
        buf = self._rt.input_view()
        if buf.shape[2] == 1:
            buf[:, :, 0] = image
        else:
            cv2.merge(
                [
                    image if ch == "board" else reference if ch == "reference" else cv2.absdiff(image, reference)
                    for ch in self._channels
                ],
                dst=buf,
            )
        del buf

    def _letterbox_into_input(
        self,
        image: np.ndarray,
        reference: np.ndarray | None,
        size: tuple[int, int] | None = None,
        rt: Runtime | None = None,
    ) -> None:
        """A frame smaller than the input (resized to `size` first, if given) in the corner of input-sized
        planes, padded like `tiling.pad_from_reference` (the reference's border replicated, for both), merged
        into the tensor of `rt` (default: the loaded graph; a graph of the frame's own size needs no padding).

        The same input as resizing, stacking and letterboxing, without the intermediate frame-sized copies
        (the reduced pass runs on every board).
        """
        rt = rt or self._rt
        th, tw = rt.inputs[0].shape[1:3]
        sw, sh = size if size is not None else (image.shape[1], image.shape[0])
        st = self._staging.get((th, tw))
        if st is None:
            st = {c: np.empty((th, tw), np.uint8) for c in ("board", "reference", "absdiff")}
            self._staging[(th, tw)] = st
        for name, src in (("board", image), ("reference", reference)):
            if src is None:
                continue
            plane = st[name]
            if size is None:
                plane[:sh, :sw] = src
            else:
                cv2.resize(src, size, dst=plane[:sh, :sw], interpolation=cv2.INTER_LINEAR)
        # One padding, the reference's (the board's own without a reference): replicate its last column, then its
        # last row; the board takes the same, so the two never differ there.
        pad = st["reference"] if reference is not None else st["board"]
        pad[:sh, sw:] = pad[:sh, sw - 1 : sw]
        pad[sh:, :] = pad[sh - 1 : sh, :]
        if reference is not None:
            st["board"][:sh, sw:] = pad[:sh, sw:]
            st["board"][sh:, :] = pad[sh:, :]
        if "absdiff" in self._channels:
            cv2.absdiff(st["board"], st["reference"], dst=st["absdiff"])
        buf = rt.input_view()
        if buf.shape[2] == 1:
            buf[:, :, 0] = st[self._channels[0]]
        else:
            cv2.merge([st[c] for c in self._channels], dst=buf)
        del buf

    def _write_input(self, x: np.ndarray) -> None:
        if x.ndim == 2:
            x = x[:, :, None]
        if self._in_identity:
            if self._in_dtype == np.float32:
                x = x.astype(np.float32)
            self._rt.set_input(x[None])
            return
        scale, zp = self._in_affine
        info = np.iinfo(self._in_dtype)
        q = np.clip(np.rint(x.astype(np.float32) / scale + zp), info.min, info.max).astype(self._in_dtype)
        self._rt.set_input(q[None])

    def _outputs(self, rt: Runtime | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (H, W, C) in 0..1 and the regression of `rt`'s last invoke (default: the loaded graph's),
        dequantised only where it is read."""
        rt = rt or self._rt
        hm = rt.output(self._hm_index)[0]
        rg = rt.output(self._rg_index)[0]
        if self._hm_q is not None:
            hm = (hm.astype(np.float32) - np.float32(self._hm_q[1])) * np.float32(self._hm_q[0])
        if self._rg_q is not None:
            rg = _Dequantised(rg, *self._rg_q)
        if self._sigmoid:
            hm = 1.0 / (1.0 + np.exp(-hm))
        return hm, rg

    def _decode(self, floor: float, rt: Runtime | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`centernet.decode` on the current outputs of `rt` (default: the loaded graph), restricted to where a
        peak can be."""
        rt = rt or self._rt
        if self._hm_q is None or self._sigmoid:
            hm, rg = self._outputs(rt)
            return decode(hm, rg, self._stride, floor=floor, top_k=self.top_k, nms_iou=self._info.nms_iou)
        scale, zp = self._hm_q
        rg = rt.output(self._rg_index)[0]
        return self._restricted_decode(
            rt.output(self._hm_index)[0],
            float(scale),
            float(zp),
            floor,
            lambda ys, xs: _Dequantised(rg[ys, xs], *self._rg_q) if self._rg_q is not None else rg[ys, xs],
        )

    def _restricted_decode(self, q: np.ndarray, scale: float, zp: float, floor: float, regression):
        """Decode an integer heatmap (real = (q - zp) * scale) only where a peak can be.

        A peak needs a score >= floor, so only classes and the (1-cell padded) box of cells that reach
        it are decoded; the result is identical to decoding everything, because every candidate's
        3x3 neighbourhood is inside the crop. On a good board nothing reaches the floor and decoding
        is skipped. Scores are compared in the integer domain, before any conversion.
        `regression(rows, cols)` gives the regression (H', W', 4) of the crop.
        """
        empty = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        qfloor = int(np.ceil(floor / scale + zp - 1e-6))
        if int(q.max()) < qfloor:  # nothing reaches the floor: the usual good board
            return empty
        planes = cv2.split(q)  # per-class planes: reductions over contiguous memory are SIMD-fast
        active = [c for c, plane in enumerate(planes) if int(plane.max()) >= qfloor]
        if len(active) == 1:  # OpenCV drops a single channel axis; keep two so decode sees (H, W, C)
            active = sorted({active[0], (active[0] + 1) % len(planes)})
        peak = np.maximum.reduce([planes[c] for c in active]) >= qfloor
        rows, cols = np.flatnonzero(peak.any(axis=1)), np.flatnonzero(peak.any(axis=0))
        y0, y1 = max(int(rows[0]) - 1, 0), int(rows[-1]) + 2
        x0, x1 = max(int(cols[0]) - 1, 0), int(cols[-1]) + 2
        active = np.asarray(active, np.int64)
        crop = cv2.merge([planes[c][y0:y1, x0:x1] for c in active])
        scores = (crop.astype(np.float32) - np.float32(zp)) * np.float32(scale)
        rg = regression(slice(y0, y1), slice(x0, x1))
        boxes, sc, cls = decode(scores, rg, self._stride, floor=floor, top_k=self.top_k, nms_iou=self._info.nms_iou)
        if len(sc):
            boxes += np.array([x0, y0, x0, y0], np.float32) * self._stride
            cls = active[cls]
        return boxes, sc, cls

    def _decode_hflip(self, floor: float, rt: Runtime | None = None):
        """Decode the mean of the outputs for the board as given and mirrored left-right.

        Why: one pass fragments large irregular defects into several peaks and ranks some false calls
        high; the mirrored pass makes different mistakes, and the average of the two gained about one
        point of validation mAP@0.5 for one extra invoke (see models/MODEL_CARD.md). The input is
        already in the interpreter and invoked once; this mirrors it in place and invokes again.
        Returns boxes, scores, classes and the milliseconds spent mirroring and invoking.
        """
        rt = rt or self._rt
        quantised = self._hm_q is not None and not self._sigmoid
        if quantised:
            hm0, rg0 = rt.output(self._hm_index)[0], rt.output(self._rg_index)[0]  # copies
        else:
            hm0, rg0 = (np.array(a, np.float32) for a in self._outputs(rt))
        t0 = time.perf_counter()
        buf = rt.input_view()
        cv2.flip(buf, 1, dst=buf)
        del buf  # LiteRT refuses to invoke while Python holds a view of its buffers
        t1 = time.perf_counter()
        rt.invoke()
        t2 = time.perf_counter()
        if quantised:
            # The mean in integer units: (q0 + q1) / 2 is exact as q0 + q1 with half the scale.
            hm1 = cv2.flip(rt.output(self._hm_index)[0], 1)
            rg1 = cv2.flip(rt.output(self._rg_index)[0], 1)
            q = cv2.add(hm0, hm1, dtype=cv2.CV_16S)  # int8 (or uint8) sums fit int16
            scale, zp = self._hm_q

            def regression(ys, xs):
                a = _Dequantised(rg0[ys, xs], *self._rg_q)[...] if self._rg_q is not None else rg0[ys, xs]
                b = _Dequantised(rg1[ys, xs], *self._rg_q)[...] if self._rg_q is not None else rg1[ys, xs].copy()
                b[..., 2] = 1.0 - b[..., 2]  # x offset inside the cell, seen from the other side
                return (a + b) * np.float32(0.5)

            out = self._restricted_decode(q, float(scale) / 2, 2.0 * float(zp), floor, regression)
            return *out, (t1 - t0) * 1000, (t2 - t1) * 1000
        hm1, rg1 = self._outputs(rt)
        hm = (hm0 + np.asarray(hm1, np.float32)[:, ::-1]) * np.float32(0.5)
        rg1 = np.array(rg1, np.float32)[:, ::-1]
        rg1[..., 2] = 1.0 - rg1[..., 2]
        rg = (rg0 + rg1) * np.float32(0.5)
        boxes, sc, cls = decode(hm, rg, self._stride, floor=floor, top_k=self.top_k, nms_iou=self._info.nms_iou)
        return boxes, sc, cls, (t1 - t0) * 1000, (t2 - t1) * 1000

    def detect(
        self,
        image: np.ndarray,
        reference: np.ndarray | None = None,
        thresholds: dict[int, float] | None = None,
    ) -> list[Detection]:
        if self._rt is None or self._info is None:
            raise ModelError(f"{self.model_path}: model not loaded")
        t0 = time.perf_counter()
        info = self._info
        domain = self.meta.input_domain if self.meta is not None else None
        frame_hw = image.shape[:2]
        if self._resample != 1.0:  # to the resolution the network learnt (`resample_factor`)
            image = _resampled(image, self._resample)
            if reference is not None:
                reference = self._resampled_reference(reference)
        if info.needs_reference:
            if reference is None:
                raise ModelError(f"{self.model_path}: this model needs the golden reference image")
            raw_reference, reference = reference, self._prepared_reference(reference, domain)
            # the board is binarised with the golden image's materials (it is registered to it)
            image = prepare(image, domain, "board image", reference=(raw_reference, reference))
            if reference.shape != image.shape:
                raise ValueError(f"reference {reference.shape} and image {image.shape} differ in size")
        else:
            image = prepare(image, domain, "board image")
        t_prep = (time.perf_counter() - t0) * 1000
        thr = dict(info.default_thresholds)
        thr.update(thresholds or {})
        floor = max(SCORE_FLOOR, min(thr.values(), default=SCORE_FLOOR))
        h, w = image.shape
        timings = {"pre": (time.perf_counter() - t0) * 1000, "invoke": 0.0, "post": 0.0, "tiles": 0.0}
        timings["prepare"] = t_prep  # part of "pre"; its own row in `bench`
        boxes, scores, classes, tiled = self._detect_raw(image, reference, floor, timings)
        multiscale = self.meta.multiscale if self.meta is not None else None
        if multiscale is not None:
            parts = [(boxes, scores, classes)]
            for s in multiscale.scales:
                parts.append(self._reduced_pass(image, reference, s, multiscale, floor, timings))
            boxes, scores, classes = (np.concatenate(a) for a in zip(*parts))
        tm = time.perf_counter()
        out = self._merge(boxes, scores, classes, thr, w, h, nms=tiled or multiscale is not None)
        if self._resample != 1.0:  # back into the camera's pixels
            fx, fy = frame_hw[1] / w, frame_hw[0] / h
            out = [replace(d, box=(d.box[0] * fx, d.box[1] * fy, d.box[2] * fx, d.box[3] * fy)) for d in out]
        timings["post"] += (time.perf_counter() - tm) * 1000
        self.last_timings = timings
        return out

    def _resampled_reference(self, reference: np.ndarray) -> np.ndarray:
        """The golden image at the network's resolution, resampled once per distinct image (as it is prepared)."""
        key = (reference.shape, reference.dtype.str, zlib.crc32(np.ascontiguousarray(reference).data))
        if self._resampled_ref is None or self._resampled_ref[0] != key:
            self._resampled_ref = (key, _resampled(reference, self._resample))
        return self._resampled_ref[1]

    def _prepared_reference(self, reference: np.ndarray, domain) -> np.ndarray:
        """The golden image in the model's domain, prepared once per distinct image, not once per board.

        The key is the image's bytes' CRC plus its shape and type (a fraction of a millisecond), so an
        edited or replaced reference is prepared afresh even when numpy reuses the same buffer.
        """
        if domain is None:
            return prepare(reference, None, "reference image")
        key = (reference.shape, reference.dtype.str, zlib.crc32(np.ascontiguousarray(reference).data))
        hit = self._ref_cache.get(key)
        if hit is None:
            hit = prepare(reference, domain, "reference image")
            if len(self._ref_cache) >= 4:  # a few recipes' references at most
                self._ref_cache.clear()
            self._ref_cache[key] = hit
        return hit

    def _detect_raw(
        self,
        image: np.ndarray,
        reference: np.ndarray | None,
        floor: float,
        timings: dict[str, float],
        shrink_to: tuple[int, int] | None = None,
        mirror: bool = True,
    ):
        """Boxes, scores and output channels >= `floor` for one frame, tiled or letterboxed; with the sidecar's
        mirror pass (`tta: hflip`) unless `mirror` is false.

        With `shrink_to` (width, height) the frame is first resized to that size and boxes come back in
        its pixels. Not yet thresholded per class nor merged across tiles; adds its milliseconds to
        `timings`. Returns boxes, scores, channels and whether the frame needed more than one tile.
        """
        t0 = time.perf_counter()
        th, tw = self._info.input_size
        h, w = image.shape if shrink_to is None else (shrink_to[1], shrink_to[0])
        tiles = self._tiles(h, w)
        raw = self._in_identity and self._in_dtype == np.uint8
        direct = len(tiles) == 1 and h <= th and w <= tw and raw
        rt = self._rt
        if direct and (h, w) != (th, tw):  # a smaller frame (the reduced pass's): the graph at its size, if it runs
            rt = self._sized_runtime((w, h)) or self._rt
        if shrink_to is not None and direct:  # resized straight into padded planes, one merge into the tensor
            self._letterbox_into_input(image, reference, shrink_to, rt)
        else:
            if shrink_to is not None:
                image = cv2.resize(image, shrink_to, interpolation=cv2.INTER_LINEAR)
                if reference is not None:
                    reference = cv2.resize(reference, shrink_to, interpolation=cv2.INTER_LINEAR)
            if direct and (h, w) == (th, tw):  # the common case: one board-sized input, stacked into the tensor
                self._stack_into_input(image, reference)
            elif direct:  # smaller: letterboxed into the tensor (of the frame's own size, if any) in one copy
                self._letterbox_into_input(image, reference, None, rt)
            else:
                if reference is not None and (h < th or w < tw):  # padded alike before the tiles are cut
                    image, reference = pad_from_reference(image, reference, th, tw)
                x = self._stack(image, reference)
        pre = (time.perf_counter() - t0) * 1000
        invoke = post = 0.0
        parts_b, parts_s, parts_c = [], [], []
        for tile in tiles:
            tp = time.perf_counter()
            if not direct:
                self._write_input(x if len(tiles) == 1 and (h, w) == (th, tw) else cut(x, tile, th, tw))
            ti = time.perf_counter()
            rt.invoke()
            tq = time.perf_counter()
            if self._tta == "hflip" and mirror:
                boxes, scores, classes, flip_ms, invoke_ms = self._decode_hflip(floor, rt)
                pre += flip_ms
                invoke += invoke_ms
                post -= flip_ms + invoke_ms  # counted above; not post-processing
            else:
                boxes, scores, classes = self._decode(floor, rt)
            if len(scores):
                boxes = boxes + np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float32)
                keep = keep_owned(boxes, tile) if len(tiles) > 1 else slice(None)
                parts_b.append(boxes[keep])
                parts_s.append(scores[keep])
                parts_c.append(classes[keep])
            te = time.perf_counter()
            pre += (ti - tp) * 1000
            invoke += (tq - ti) * 1000
            post += (te - tq) * 1000
        timings["pre"] += pre
        timings["invoke"] += invoke
        timings["post"] += post
        timings["tiles"] += float(len(tiles))
        if not parts_s:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64), len(tiles) > 1
        return np.concatenate(parts_b), np.concatenate(parts_s), np.concatenate(parts_c), len(tiles) > 1

    def _sized_runtime(self, size: tuple[int, int]) -> Runtime | None:
        """The loaded graph at input size `size` (w, h), built once per size; None where it cannot run so.

        Why: the reduced pass letterboxed into the full input spends about a third of its invoke on
        padding (a 640 px board at 0.8 is 512 px); the same weights at 512 x 512 run in about 0.6 of
        the time. Its outputs must be the loaded graph's at that size (same tensors, same quantisation,
        the stride's grid), else the letterboxed pass is kept.
        """
        if size in self._sized:
            return self._sized[size]
        if len(self._sized) >= 4:  # a camera that changes its frame size must not grow this
            self._close_sized()
        w, h = size
        # Off the stride's grid the outputs could not line up with the frame: not even built.
        rt = None if h % self._stride or w % self._stride else self._rt.at_input_size(h, w)
        if rt is not None and rt is not self._rt:
            grid = (1, h // self._stride, w // self._stride)
            same = {d.index: d for d in self._rt.outputs}
            fits = len(rt.outputs) == len(same) and all(
                d.index in same
                and d.quantisation == same[d.index].quantisation
                and d.shape == (*grid, same[d.index].shape[-1])
                for d in rt.outputs
            )
            if not fits:
                log.info(
                    "%s: the graph at %dx%d gives other outputs; the reduced pass stays letterboxed",
                    self.model_path,
                    w,
                    h,
                )
                rt.close()
                rt = None
        self._sized[size] = rt
        return rt

    @property
    def sized_inputs(self) -> list[tuple[int, int]]:
        """(w, h) of the smaller frames (a reduced pass's) that ran on the graph at their own size, not letterboxed."""
        return sorted(size for size, rt in self._sized.items() if rt is not None)

    def _close_sized(self) -> None:
        for rt in self._sized.values():
            if rt is not None and rt is not self._rt:
                rt.close()
        self._sized.clear()

    def _reduced_pass(self, image, reference, s: float, multiscale, floor: float, timings: dict[str, float]):
        """One pass over the frame shrunk to `s`; keeps only its large boxes, in full-frame pixels."""
        h, w = image.shape
        size = (max(1, round(w * s)), max(1, round(h * s)))
        boxes, scores, classes, _ = self._detect_raw(
            image, reference, floor, timings, shrink_to=size, mirror=multiscale.mirror
        )
        t1 = time.perf_counter()
        if len(scores):
            fx, fy = w / size[0], h / size[1]
            boxes = boxes * np.array([fx, fy, fx, fy], np.float32)
            # The label margin is drawn at input scale, so it came out 1/s too wide; never past the centre.
            margin = multiscale.label_margin_px * (1.0 / s - 1.0)
            mx = np.minimum(margin, (boxes[:, 2] - boxes[:, 0]) / 2)
            my = np.minimum(margin, (boxes[:, 3] - boxes[:, 1]) / 2)
            boxes += np.stack([mx, my, -mx, -my], axis=1)
            longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            keep = longer >= multiscale.min_box_px
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        timings["post"] += (time.perf_counter() - t1) * 1000
        return boxes, scores, classes

    def _merge(self, boxes, scores, classes, thr: dict[int, float], w: int, h: int, nms: bool) -> list[Detection]:
        if scores.size == 0:  # nothing above the floor, or every candidate outside the part its tile owns
            return []
        ids = self._class_ids[classes]
        limits = np.array([thr.get(int(c), 0.5) for c in range(int(ids.max()) + 1)], np.float32)
        ok = scores >= limits[ids]
        boxes, scores, ids = boxes[ok], scores[ok], ids[ok]
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        if nms and len(scores) > 1:
            keep = nms_classwise(boxes, scores, ids, self._info.nms_iou)
            boxes, scores, ids = boxes[keep], scores[keep], ids[keep]
        runner_cls = runner_score = None
        cross = self.meta.cross_class if self.meta is not None else None
        if cross is not None and len(scores) > 1:  # one class per defect (`cross_class`)
            boxes, scores, ids, runner_cls, runner_score = suppress_cross_class(
                boxes, scores, ids, cross.iou, cross.min_score
            )
        join = self.meta.join_fragments if self.meta is not None else None
        if join is not None and len(scores) > 1:  # unions of touching pieces, after the pieces (`fragments`)
            boxes, scores, ids = join_touching(
                boxes, scores, ids, min_score=join.min_score, max_gap_px=join.max_gap_px, max_part_iou=join.max_part_iou
            )
        runners: list[tuple[int, float] | None] = [None] * len(scores)
        if runner_cls is not None:  # unions come after the pieces and have no runner-up
            for i, (rc, rs) in enumerate(zip(runner_cls.tolist(), runner_score.tolist())):
                if rc >= 0:
                    runners[i] = (int(rc), float(rs))
        return [
            Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), int(c), float(s), r)
            for b, s, c, r in zip(boxes.tolist(), scores.tolist(), ids.tolist(), runners)
        ]

    def close(self) -> None:
        self._close_sized()
        if self._rt is not None:
            self._rt.close()
        self._rt = None
        if self.backend is not None:
            self.backend.delegate = None


def _resampled(image: np.ndarray, s: float) -> np.ndarray:
    """`image` scaled by `s` (area-averaged when shrinking: a pixel takes its share of the board)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


class _Dequantised:
    """An int8 tensor that `decode` indexes like an array; only the gathered cells are dequantised.

    `decode` reads the regression at a handful of peaks, so converting all H*W*4 values would be
    wasted work on every board.
    """

    __slots__ = ("q", "scale", "zero_point")

    def __init__(self, q: np.ndarray, scale: float, zero_point: int):
        self.q, self.scale, self.zero_point = q, np.float32(scale), np.float32(zero_point)

    def __getitem__(self, index) -> np.ndarray:
        return (self.q[index].astype(np.float32) - self.zero_point) * self.scale

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.q.shape


__all__ = ["PackagedDetector", "Tile"]
