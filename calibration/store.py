"""Calibrations per station, with history: the records database's `calibrations` table.

Why the database and not files beside the config: the active calibration must be the same for the
station, the UI (which shows it) and the audit trail (who calibrated, when, with what result), and
the plant's PostgreSQL keeps it with the inspection records. Saving a calibration makes it the
active one of its kind; the previous ones stay as history (`inspector.storage.save_calibration`).

Kinds: `intrinsics`, `scale`, and per recipe `reference:<recipe>` (reference image, its checksum,
and the optics baseline measured on it with its limits).
"""

from __future__ import annotations

import getpass
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspector.config import StationConfig
from inspector.storage import CalibrationInfo, Database, activate_calibration, open_database
from inspector.storage import active_calibration as _active
from inspector.storage import calibration_history as _history
from inspector.storage import save_calibration as _save

from .errors import CalibrationError
from .health import OpticsLimits, OpticsSample
from .intrinsics import IntrinsicsResult
from .undistort import Undistorter

INTRINSICS = "intrinsics"
SCALE = "scale"
THRESHOLD = "threshold"
MAX_KIND = 50  # width of calibrations.kind


def reference_kind(recipe: str) -> str:
    kind = f"reference:{recipe}"
    if len(kind) > MAX_KIND:
        raise CalibrationError(f"recipe name {recipe!r} is too long to key a reference calibration (max 40 chars)")
    return kind


def current_operator() -> str:
    """Who calibrates: PCB_INSPECTOR_OPERATOR, else the login name."""
    who = os.environ.get("PCB_INSPECTOR_OPERATOR")
    if who:
        return who
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class CalibrationStore:
    """The station's calibrations; a thin, typed layer over `inspector.storage`."""

    def __init__(self, db: Database, *, references_dir: Path | None = None, owns_db: bool = False):
        self.db = db
        self.station_id = db.station_id
        self.references_dir = Path(references_dir or "data/references")
        self._owns = owns_db

    @classmethod
    def open(cls, cfg: StationConfig, *, audit_source: str = "") -> CalibrationStore:
        from inspector.station_key import load_or_create

        try:
            key = load_or_create(cfg.storage.station_key_path())  # signs the calibration's audit event
            db = open_database(cfg.storage.database_url, station_id=cfg.station.id, station_key=key)
            db.audit_source = audit_source
        except Exception as exc:
            raise CalibrationError(f"cannot open the records database to store calibrations: {exc}") from None
        refs = Path(cfg.storage.archive_dir).parent / "references"
        return cls(db, references_dir=refs, owns_db=True)

    def close(self) -> None:
        if self._owns:
            self.db.close()

    def __enter__(self) -> CalibrationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ generic
    def save(self, kind: str, results: dict[str, Any], operator: str | None = None) -> CalibrationInfo:
        return _save(self.db, kind, results, operator or current_operator())

    def active(self, kind: str) -> CalibrationInfo | None:
        return _active(self.db, kind)

    def history(self, kind: str | None = None) -> list[CalibrationInfo]:
        return _history(self.db, kind)

    def activate(self, calibration_id: int, operator: str | None = None) -> CalibrationInfo:
        return activate_calibration(self.db, calibration_id, by=operator or current_operator())

    # ------------------------------------------------------------------ typed
    def intrinsics(self) -> IntrinsicsResult | None:
        info = self.active(INTRINSICS)
        return IntrinsicsResult.from_json(info.results) if info else None

    def undistorter(self) -> Undistorter | None:
        """Maps for the capture path, from the active intrinsics (None when the station has none)."""
        r = self.intrinsics()
        return r.undistorter() if r else None

    def mm_per_px(self) -> float | None:
        """What `RecipeRules(recipe, mm_per_px=...)` takes; None without a scale calibration."""
        info = self.active(SCALE)
        return float(info.results["mm_per_px"]) if info else None

    def reference(self, recipe: str) -> CalibrationInfo | None:
        return self.active(reference_kind(recipe))

    def baseline(self, recipe: str) -> tuple[OpticsSample, OpticsLimits] | None:
        info = self.reference(recipe)
        if info is None or "optics" not in info.results:
            return None
        return OpticsSample.from_json(info.results["optics"]), OpticsLimits(**info.results.get("limits", {}))

    def store_reference_image(self, recipe: str, data: bytes, suffix: str = ".png") -> Path:
        """Keep the golden image under the references folder, never overwriting an older one (history)."""
        self.references_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        digest = hashlib.sha256(data).hexdigest()[:12]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in recipe)
        path = self.references_dir / f"{safe}-{stamp}-{digest}{suffix}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path.resolve()
