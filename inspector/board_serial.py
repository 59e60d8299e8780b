"""The board serial read from the image: a DataMatrix, QR or Code 128 printed on the board.

Why the station reads it itself: a serial that exists only when the PLC writes it is lost whenever
the PLC is off or not wired for it, and a PLC that writes the wrong one (a board skipped on the
conveyor, a board turned round) silently files a verdict under another board. Reading the code from
the same frame that is inspected ties the verdict to the board it was made on; when the PLC gives
a serial too, the two must agree or the board is a REJECT.

Why the decode runs beside the detector: zxing-cpp releases the GIL, so the decode in a helper
thread overlaps the detector's invoke and adds nothing to the cycle on a multi-core station
(`pcb-inspector bench` prints its own row). With a recipe `region` only that small crop is searched.

Why defects on the code do not count (`ignore_defects`): every board carries a different code, so
the code always differs from the golden reference and the detector sees "defects" there. Only around a
code that was read: where none was read, every defect counts (a region is where to look, not an area
exempt from inspection), and a region whose search area covers more than `MAX_CODE_AREA_FRACTION` of
the board is refused where recipes are compiled (`inspector.decision.code_area_problem`).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .config import BoardCode
from .domain import Detection, Verdict

#: Reason prefixes (the PLC's RESULT_CODE and the UI's translations key on them; never reword).
SERIAL_MISMATCH = "serial mismatch"
CODE_UNREADABLE = "board code unreadable"

#: The largest share of the board a code region's search area (region and margin, on the board) may cover:
#: a code and its quiet zone take a few per cent of a board; a larger region is a typing mistake (a
#: board-sized region, a margin of hundreds of px). Leave `region` out to search the whole board.
MAX_CODE_AREA_FRACTION = 0.10

_FORMAT_NAMES = {"datamatrix": "DataMatrix", "qr": "QRCode", "code128": "Code128"}


def _zxing():
    try:
        import zxingcpp
    except ImportError as exc:  # a dependency of the package; a broken install must say which
        raise RuntimeError(f"reading board codes needs the zxing-cpp package ({exc}); pip install zxing-cpp") from None
    return zxingcpp


@dataclass(frozen=True, slots=True)
class CodeRead:
    """What the decoder found on one board."""

    text: str | None
    """The decoded text (the serial), or None when no code of the wanted types was found."""
    symbology: str | None
    box: tuple[float, float, float, float] | None
    """The code's bounding box in frame pixels (x1, y1, x2, y2)."""
    searched: tuple[int, int, int, int]
    """The frame area searched (x1, y1, x2, y2)."""
    ms: float


@dataclass(frozen=True, slots=True)
class SerialCheck:
    """The decision's amendments: the serial to file, the defects that still count, a reject reason."""

    serial: str | None
    kept: list[Detection]
    reason: str | None

    def verdict(self, verdict: Verdict) -> Verdict:
        return Verdict.REJECT if self.reason else verdict


class CodeReader:
    """Decodes one recipe's board code; `start` runs the decode in a helper thread."""

    def __init__(self, spec: BoardCode):
        zx = _zxing()
        self.spec = spec
        self._formats = [getattr(zx.BarcodeFormat, _FORMAT_NAMES[s]) for s in spec.symbologies]
        self._pool: ThreadPoolExecutor | None = None

    def search_area(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The frame area searched (x1, y1, x2, y2): the region and its margin, clipped to the frame.

        Empty (x1 == x2 or y1 == y2) when the region lies outside this frame (a board smaller than the golden
        image, seen before it could be registered): no code can be read there, and the board still gets its own
        verdict and reason, instead of an exception that would skip it (and, in `inspect`, the images after it).
        """
        h, w = int(shape[0]), int(shape[1])
        if self.spec.region is None:
            return 0, 0, w, h
        x, y, rw, rh = self.spec.region
        m = self.spec.margin_px
        x1, y1 = min(w, max(0, x - m)), min(h, max(0, y - m))
        x2, y2 = max(x1, min(w, x + rw + m)), max(y1, min(h, y + rh + m))
        return x1, y1, x2, y2

    def read(self, image: np.ndarray) -> CodeRead:
        """Decode the first code of the wanted types in the search area (uint8 gray or BGR image)."""
        t0 = time.perf_counter()
        x1, y1, x2, y2 = area = self.search_area(image.shape)
        if x2 <= x1 or y2 <= y1:  # the region is not in this frame: nothing to read
            return CodeRead(None, None, None, area, (time.perf_counter() - t0) * 1000)
        crop = np.ascontiguousarray(image[y1:y2, x1:x2])
        found = _zxing().read_barcodes(crop, formats=self._formats)
        ms = (time.perf_counter() - t0) * 1000
        for code in found:
            if not code.valid or not code.text:
                continue
            p = code.position
            xs = [q.x for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
            ys = [q.y for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
            box = (float(min(xs) + x1), float(min(ys) + y1), float(max(xs) + x1), float(max(ys) + y1))
            return CodeRead(code.text, str(code.format), box, area, ms)
        return CodeRead(None, None, None, area, ms)

    def start(self, image: np.ndarray) -> Future[CodeRead]:
        """Decode in the helper thread; the caller collects the result after its own work."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="board-code")
        return self._pool.submit(self.read, image)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # ------------------------------------------------------------------ decision
    def _ignored_area(self, read: CodeRead) -> tuple[float, float, float, float] | None:
        """Where defects do not count: around the code that was read (its box and quiet zone), nowhere when none
        was read.

        Why not the whole search area: a board without a readable code (not printed, smudged, another product)
        would otherwise have every defect in the region and its margin ignored, and a region drawn too large
        switched off the inspection of the whole board while the board PASSED.
        """
        if read.box is None:
            return None
        x1, y1, x2, y2 = read.box
        pad = 0.25 * max(x2 - x1, y2 - y1)  # the quiet zone around the symbol differs from the reference too
        return x1 - pad, y1 - pad, x2 + pad, y2 + pad

    def check(self, read: CodeRead, detections: list[Detection], plc_serial: str | None) -> SerialCheck:
        """The serial to file and whether the code makes the board a REJECT.

        The decoded text wins over the PLC's serial (it is what is printed on this board); when both
        exist and differ, the board is a REJECT naming both.
        """
        kept = list(detections)
        if self.spec.ignore_defects and (area := self._ignored_area(read)) is not None:
            ax1, ay1, ax2, ay2 = area
            kept = [
                d
                for d in kept
                if not (ax1 <= (d.box[0] + d.box[2]) / 2 <= ax2 and ay1 <= (d.box[1] + d.box[3]) / 2 <= ay2)
            ]
        plc_serial = plc_serial or None
        if read.text is None:
            reason = None
            if self.spec.require_code:
                kinds = "/".join(_FORMAT_NAMES[s] for s in self.spec.symbologies)
                where = "in the code region" if self.spec.region is not None else "on the board"
                reason = f"{CODE_UNREADABLE}: no {kinds} {where}"
            return SerialCheck(plc_serial, kept, reason)
        if plc_serial is not None and plc_serial != read.text:
            return SerialCheck(read.text, kept, f"{SERIAL_MISMATCH}: code {read.text!r}, PLC {plc_serial!r}")
        return SerialCheck(read.text, kept, None)


def reader_for(spec: BoardCode | None) -> CodeReader | None:
    return CodeReader(spec) if spec is not None else None


class SerialStep:
    """The code reader of the current recipe, for a loop that inspects board after board.

    Rebuilt only when the recipe's `code` section changes (a recipe switch), so the helper thread
    lives as long as the recipe does.
    """

    def __init__(self) -> None:
        self._spec: BoardCode | None = None
        self._reader: CodeReader | None = None

    def reader(self, spec: BoardCode | None) -> CodeReader | None:
        if spec != self._spec or (spec is not None and self._reader is None):
            self.close()
            self._spec, self._reader = spec, reader_for(spec)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None


def render_code(text: str, symbology: str = "datamatrix", module_px: int = 3) -> np.ndarray:
    """The code as a uint8 image (black on white, quiet zone included), made by zxing-cpp's encoder.

    For test boards and for checking a printer's label layout; the station itself only reads codes.
    """
    zx = _zxing()
    if symbology not in _FORMAT_NAMES:
        raise ValueError(f"symbology {symbology!r} is not one of {', '.join(_FORMAT_NAMES)}")
    code = zx.create_barcode(text, getattr(zx.BarcodeFormat, _FORMAT_NAMES[symbology]))
    return np.ascontiguousarray(np.asarray(code.to_image(scale=module_px, add_quiet_zones=True), np.uint8))


def paste_code(image: np.ndarray, text: str, at: tuple[int, int], symbology: str = "datamatrix", module_px: int = 3):
    """A copy of `image` with the code's top-left corner at `at` (x, y); and the pasted box (x1, y1, x2, y2)."""
    code = render_code(text, symbology, module_px)
    out = image.copy()
    x, y = at
    h, w = code.shape
    if x < 0 or y < 0 or y + h > out.shape[0] or x + w > out.shape[1]:
        raise ValueError(f"a {w}x{h} code at {at} does not fit the {out.shape[1]}x{out.shape[0]} image")
    out[y : y + h, x : x + w] = code if out.ndim == 2 else code[:, :, None]
    return out, (x, y, x + w, y + h)
