"""Optics health: focus, illumination level and uniformity, colour balance, against the calibration baseline.

Why: a lens that slowly loses focus or a ring light that dims does not stop the station; it makes
the detector miss small defects while every lamp stays green. The baseline is measured on the
golden board when the reference is calibrated; during production the same measures on the boards
are compared with it, and drift past the limits raises an alarm (and, where configured, drops READY
through the `calibration` health component).

Measures (all on the whole frame, cheap enough for every board):
- sharpness (what the focus alarm compares): the fine detail of the frame's logarithm (variance of the Laplacian
  after a 2 px Gaussian) over its coarse contrast (variance after a 4 px Gaussian). In log a lamp's level and the
  copper/laminate contrast scale both alike and cancel; the 2 px Gaussian keeps sensor noise and JPEG blocks out of
  it. On camera renderings of training boards (`runs/s16/focus_measure3.py`: 40 pairs, a second capture of the golden
  board against the golden capture, gray line camera) the ratio's median is 0.89 in focus, 0.56 with 1.5 px of
  defocus and 0.32 with 2.5 px (harsh camera: 0.88, 0.63, 0.41);
- focus: variance of the Laplacian of the frame scaled to a mean grey of 128 (kept for the record and for baselines
  stored before sharpness existed). On a camera's frames it measures the sensor noise and the laminate's weave more
  than the edges: on the same renderings its median ratio was 1.08 in focus and 0.96 with 2.5 px of defocus (where one
  defective board in 25 with a single defect passed), and on one board's captures it alarmed as often in focus as
  out of it;
- brightness: mean grey level;
- uniformity: darkest / brightest of the 4 x 4 block levels, each block's level being its 90th
  percentile grey (the bare laminate, which reflects the light, not the copper pattern);
- colour balance (colour cameras): R/G and B/G of the mean over the brighter half of the pixels.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inspector.health import Health

from .pattern import gray8

log = logging.getLogger(__name__)

COMPONENT = "calibration"


@dataclass(frozen=True, slots=True)
class OpticsSample:
    focus: float
    brightness: float
    uniformity: float
    colour: tuple[float, float] | None = None
    """(R/G, B/G); None for a monochrome camera."""
    sharpness: float | None = None
    """Fine detail over coarse contrast, in log (see the module); None in a baseline stored before it existed."""

    def to_json(self) -> dict:
        d = asdict(self)
        d["colour"] = list(self.colour) if self.colour else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> OpticsSample:
        colour = d.get("colour")
        sharp = d.get("sharpness")
        return cls(
            float(d["focus"]),
            float(d["brightness"]),
            float(d["uniformity"]),
            tuple(colour) if colour else None,
            float(sharp) if sharp is not None else None,
        )


class OpticsLimits(BaseModel):
    """How far the optics may drift from the baseline before the alarm; stored with the baseline."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    focus_drop: float = Field(0.35, gt=0, lt=1, description="Alarm when focus falls below (1 - this) x baseline.")
    brightness_change: float = Field(0.2, gt=0, lt=1, description="Alarm when the mean level moves by this fraction.")
    uniformity_drop: float = Field(0.1, gt=0, lt=1, description="Alarm when uniformity (0..1) falls by this much.")
    colour_shift: float = Field(0.08, gt=0, lt=1, description="Alarm when R/G or B/G moves by this fraction.")
    window: int = Field(5, ge=1, le=100, description="Boards in the rolling median (one odd board is no alarm).")
    drop_ready: bool = Field(False, description="Drift drops READY (station stops) instead of only alarming.")


#: Gaussian sigmas (px) of the sharpness measure: the detail after the fine one, the contrast after the coarse one.
SHARPNESS_FINE_PX = 2.0
SHARPNESS_COARSE_PX = 4.0


def sharpness(gray: np.ndarray) -> float:
    """Fine detail over coarse contrast of an 8-bit gray frame, in log (see the module); 0 for a flat frame."""
    log_img = np.log1p(gray.astype(np.float32))
    fine = float(cv2.Laplacian(cv2.GaussianBlur(log_img, (0, 0), SHARPNESS_FINE_PX), cv2.CV_32F).var())
    coarse = float(cv2.GaussianBlur(log_img, (0, 0), SHARPNESS_COARSE_PX).var())
    return fine / coarse if coarse > 1e-9 else 0.0


def measure_optics(image: np.ndarray, blocks: int = 4) -> OpticsSample:
    gray = gray8(image)
    brightness = float(gray.mean())
    # Normalised to a mean of 128 first, so that a dimmer lamp reads as light drift, not as focus drift.
    norm = gray.astype(np.float32) * (128.0 / max(brightness, 1.0))
    focus = float(cv2.Laplacian(norm, cv2.CV_32F).var())
    h, w = gray.shape
    levels = []
    for j in range(blocks):
        for i in range(blocks):
            blk = gray[j * h // blocks : (j + 1) * h // blocks, i * w // blocks : (i + 1) * w // blocks]
            levels.append(float(np.percentile(blk, 90)))
    top = max(levels)
    uniformity = min(levels) / top if top > 0 else 0.0
    colour = None
    if image.ndim == 3 and image.shape[2] >= 3:
        bgr = image[:, :, :3].reshape(-1, 3).astype(np.float64)
        bright = gray.reshape(-1) >= np.median(gray)
        b, g, r = bgr[bright].mean(axis=0) if bright.any() else bgr.mean(axis=0)
        g = max(g, 1e-6)
        colour = (float(r / g), float(b / g))
    return OpticsSample(focus, brightness, uniformity, colour, sharpness(gray))


def compare(sample: OpticsSample, baseline: OpticsSample, limits: OpticsLimits) -> list[str]:
    """One line per measure past its limit (empty when the optics are within limits)."""
    out = []
    if baseline.sharpness and sample.sharpness is not None:
        if sample.sharpness < (1 - limits.focus_drop) * baseline.sharpness:
            # The remedy first: it is what the operator reads on the alarm banner.
            out.append(
                f"focus: check the lens focus and the board height (sharpness "
                f"{1 - sample.sharpness / baseline.sharpness:.0%} below the baseline, limit {limits.focus_drop:.0%})"
            )
    elif baseline.focus > 0 and sample.focus < (1 - limits.focus_drop) * baseline.focus:
        out.append(
            f"focus {sample.focus:.0f} is {1 - sample.focus / baseline.focus:.0%} below the baseline "
            f"{baseline.focus:.0f} (limit {limits.focus_drop:.0%}): check the lens focus and the board height"
        )
    if baseline.brightness > 0:
        change = sample.brightness / baseline.brightness - 1
        if abs(change) > limits.brightness_change:
            word = "darker" if change < 0 else "brighter"
            out.append(
                f"illumination {abs(change):.0%} {word} than the baseline ({sample.brightness:.0f} vs "
                f"{baseline.brightness:.0f}, limit {limits.brightness_change:.0%}): check the lights and exposure"
            )
    if baseline.uniformity - sample.uniformity > limits.uniformity_drop:
        out.append(
            f"illumination uniformity {sample.uniformity:.2f} vs baseline {baseline.uniformity:.2f} "
            f"(limit -{limits.uniformity_drop:.2f}): a lamp segment may have failed"
        )
    if sample.colour and baseline.colour:
        for name, now, base in zip(("R/G", "B/G"), sample.colour, baseline.colour):
            if base > 0 and abs(now / base - 1) > limits.colour_shift:
                out.append(
                    f"colour balance {name} {now:.3f} vs baseline {base:.3f} (limit {limits.colour_shift:.0%}): "
                    "check the white balance and the lights"
                )
    return out


@dataclass(slots=True)
class OpticsCheck:
    sample: OpticsSample
    """The measure compared (rolling median when monitoring)."""
    drift: list[str]

    @property
    def ok(self) -> bool:
        return not self.drift


def median_sample(samples: list[OpticsSample]) -> OpticsSample:
    """Each measure's median over `samples` (colour and sharpness only where every sample has them)."""
    colour = None
    if all(s.colour for s in samples):
        colour = (statistics.median(s.colour[0] for s in samples), statistics.median(s.colour[1] for s in samples))
    sharp = None
    if all(s.sharpness is not None for s in samples):
        sharp = statistics.median(s.sharpness for s in samples)
    return OpticsSample(
        statistics.median(s.focus for s in samples),
        statistics.median(s.brightness for s in samples),
        statistics.median(s.uniformity for s in samples),
        colour,
        sharp,
    )


class OpticsMonitor:
    """Watches production boards for optics drift; a result sink with its own worker thread.

    `submit` only keeps the newest board image (drop and count): the measures cost a few ms and must
    never slow inference. Drift reports into `Health` component `calibration`: with
    `limits.drop_ready` it fails (READY drops); without, it stays OK with the alarm in its detail
    line, and `on_alarm` listeners (UI banner, log) are called.
    """

    name = "optics"

    def __init__(self, baseline: OpticsSample, limits: OpticsLimits | None = None, health: Health | None = None):
        self.baseline = baseline
        self.limits = limits or OpticsLimits()
        self.health = health
        self._window: deque[OpticsSample] = deque(maxlen=self.limits.window)
        self._cond = threading.Condition()
        self._pending: np.ndarray | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[OpticsCheck], None]] = []
        self.dropped = 0
        self.checked = 0
        self.alarm: OpticsCheck | None = None
        if health is not None:
            health.ok(COMPONENT, "optics: no board checked yet")

    def on_alarm(self, fn: Callable[[OpticsCheck], None]) -> None:
        self._listeners.append(fn)

    # -------------------------------------------------------------- synchronous
    def check(self, image: np.ndarray) -> OpticsCheck:
        """Measure one frame, update the rolling window and the health state; returns the check."""
        self._window.append(measure_optics(image))
        med = median_sample(list(self._window))
        result = OpticsCheck(med, compare(med, self.baseline, self.limits))
        self.checked += 1
        self._report(result)
        return result

    def _report(self, result: OpticsCheck) -> None:
        was = self.alarm
        self.alarm = None if result.ok else result
        if self.health is not None:
            if result.ok:
                self.health.ok(COMPONENT, "optics within limits")
            elif self.limits.drop_ready:
                self.health.fail(COMPONENT, "optics drift: " + "; ".join(result.drift))
            else:
                self.health.ok(COMPONENT, "ALARM optics drift: " + "; ".join(result.drift))
        if not result.ok and (was is None or was.drift != result.drift):
            log.warning("optics drift: %s", "; ".join(result.drift))
            for fn in self._listeners:
                try:
                    fn(result)
                except Exception:
                    log.exception("optics alarm listener failed")

    # -------------------------------------------------------------- sink
    def submit(self, result) -> None:
        image = getattr(result, "image", None)
        if image is None:
            return
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = image
            self._cond.notify()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="optics-monitor", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._cond:
            if self._pending is not None:  # never measured: counted, like any other dropped board
                self.dropped += 1
                self._pending = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if self._pending is None:
                    self._cond.wait(0.2)
                image, self._pending = self._pending, None
            if image is None:
                continue
            try:
                self.check(image)
            except Exception:
                log.exception("optics check failed")
