"""`pcb-inspector calibrate intrinsics|scale|threshold|reference|check|history`.

Registered through the `pcb_inspector.commands` entry point (`calibrate = "calibration.cli:register"`),
so `inspector` never imports this package. Each sub-command stores its result as the station's
active calibration of its kind (history kept) unless `--no-save`; `--json` prints one object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError

from inspector.cli import CommandError
from inspector.image_file import ImageFileError, decode_image, read_image_file

from .errors import CalibrationError, RegistrationError
from .health import OpticsLimits, compare, measure_optics, median_sample
from .intrinsics import calibrate_intrinsics, load_views
from .pattern import Pattern, gray8
from .registration import BoardRegistrar, RegistrationSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="camera intrinsics, mm per pixel, golden reference, optics check")
    csub = p.add_subparsers(dest="calibrate_cmd", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser, save: bool = True) -> None:
        q.add_argument("--config", help="station.toml (station id and database; default: the demo station)")
        q.add_argument("--db", metavar="URL", help="records database URL (overrides the config)")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        if save:
            q.add_argument("--no-save", action="store_true", help="compute and print only; store nothing")
            q.add_argument("--operator", help="who calibrates (default: $PCB_INSPECTOR_OPERATOR or the login)")

    q = csub.add_parser("intrinsics", help="lens intrinsics and distortion from pattern views")
    q.add_argument("--images", required=True, metavar="DIR", help="folder of views of the pattern")
    q.add_argument("--pattern", required=True, metavar="SPEC", help="checkerboard:9x6:5mm or charuco:11x8:5mm:3.75mm")
    q.add_argument("--min-views", type=int, default=8, help="fewest usable views (default 8)")
    q.add_argument("--max-blur", type=float, default=4.0, metavar="PX", help="reject views with wider edges")
    q.add_argument("--min-coverage", type=float, default=0.05, help="reject views covering less of the frame")
    q.add_argument("--free-k3", action="store_true", help="fit the 6th-order radial term (wide-angle lenses)")
    common(q)
    q.set_defaults(func=cmd_intrinsics)

    q = csub.add_parser("scale", help="mm per pixel from a pattern or an object of known size")
    q.add_argument("--image", required=True, metavar="FILE", help="the target lying flat in the fixture")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--pattern", metavar="SPEC", help="pattern laid flat, e.g. checkerboard:9x6:5mm")
    g.add_argument("--object", metavar="WxHmm", help="object of known outline, e.g. 100x80mm")
    q.add_argument("--no-undistort", action="store_true", help="ignore the active intrinsics")
    common(q)
    q.set_defaults(func=cmd_scale)

    q = csub.add_parser(
        "threshold", help="where the model's preparation splits copper from laminate, from golden boards and designs"
    )
    q.add_argument(
        "--image",
        required=True,
        action="append",
        metavar="FILE",
        help="a golden board's capture (repeat, each with its --design; boards of several designs average out)",
    )
    q.add_argument(
        "--design",
        required=True,
        action="append",
        metavar="FILE",
        help="that board's copper layer as a two-level image at the camera's pixels (copper in the model's copper "
        "level: dark for the shipped model), e.g. rasterised from the Gerber file",
    )
    q.add_argument("--no-undistort", action="store_true", help="ignore the active intrinsics")
    common(q)
    q.set_defaults(func=cmd_threshold)

    q = csub.add_parser("reference", help="store a recipe's golden reference image and its optics baseline")
    q.add_argument("--recipe", required=True, help="recipe name")
    q.add_argument("--image", required=True, metavar="FILE", help="capture of a defect-free board")
    q.add_argument(
        "--good-board",
        action="append",
        default=[],
        metavar="FILE",
        help="a capture of another defect-free board of the design (repeat; 4 recommended): the optics baseline is "
        "the median over these and the golden image, which one board's own surface and height cannot skew",
    )
    q.add_argument("--no-undistort", action="store_true", help="ignore the active intrinsics")
    q.add_argument("--focus-drop", type=float, help="alarm limit for focus loss (fraction, default 0.35)")
    q.add_argument("--brightness-change", type=float, help="alarm limit for light change (fraction, default 0.2)")
    q.add_argument("--drop-ready", action="store_true", help="optics drift drops READY (default: alarm only)")
    common(q)
    q.set_defaults(func=cmd_reference)

    q = csub.add_parser("check", help="compare captures with the recipe's baseline (focus, light, registration)")
    q.add_argument("--recipe", help="recipe name (default: the active recipe)")
    q.add_argument("--image", required=True, nargs="+", metavar="FILE", help="captures to check")
    q.add_argument("--no-undistort", action="store_true", help="ignore the active intrinsics")
    common(q, save=False)
    q.set_defaults(func=cmd_check)

    q = csub.add_parser("history", help="list the station's calibrations (newest first)")
    q.add_argument("--kind", help="intrinsics, scale, threshold or reference:<recipe>")
    common(q, save=False)
    q.set_defaults(func=cmd_history)

    q = csub.add_parser("activate", help="make an earlier calibration the active one of its kind (roll back)")
    q.add_argument("id", type=int, help="calibration id (see `calibrate history`)")
    common(q, save=False)
    q.add_argument("--operator", help="who decides (default: $PCB_INSPECTOR_OPERATOR or the login)")
    q.set_defaults(func=cmd_activate)


# ---------------------------------------------------------------- helpers
def _config(args: argparse.Namespace):
    from inspector.config import StationConfig, load_config

    cfg = load_config(getattr(args, "config", None))
    if getattr(args, "db", None):
        data = cfg.model_dump()
        data["storage"]["database_url"] = args.db
        cfg = StationConfig.model_validate(data)
    return cfg


def _store(cfg):
    from .store import CalibrationStore

    return CalibrationStore.open(cfg, audit_source="cli")


def _pattern(spec: str) -> Pattern:
    try:
        return Pattern.parse(spec)
    except CalibrationError as exc:
        raise CommandError(f"--pattern: {exc}") from None


def _read(path: str) -> tuple[np.ndarray, bytes]:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"{path}: file not found")
    data = p.read_bytes()
    try:  # the station's strict reader: an empty file was a cv2.error traceback, a truncated one half gray
        img = decode_image(data) if data else None
    except ImageFileError as exc:
        raise CommandError(f"{path}: {exc}") from None
    if img is None:
        raise CommandError(f"{path}: file is empty (0 bytes)")
    return img, data


def _undistorter(args, store, image: np.ndarray):
    if getattr(args, "no_undistort", False) or store is None:
        return None
    und = store.undistorter()
    if und is not None and und.image_size != (image.shape[1], image.shape[0]):
        raise CommandError(
            f"the active intrinsics are for {und.image_size[0]}x{und.image_size[1]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}; recalibrate intrinsics or pass --no-undistort"
        )
    return und


def _emit(args, obj: dict, text: str) -> None:
    if args.json:
        print(json.dumps(obj), flush=True)
    else:
        print(text)


def _guard(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (CalibrationError, RegistrationError) as exc:
            raise CommandError(str(exc)) from None

    return run


# ---------------------------------------------------------------- commands
@_guard
def cmd_intrinsics(args: argparse.Namespace) -> int:
    pattern = _pattern(args.pattern)
    if args.min_views < 3:
        raise CommandError(f"--min-views {args.min_views}: at least 3 views are needed to fit a camera")
    views = load_views(Path(args.images))
    result = calibrate_intrinsics(
        views,
        pattern,
        min_views=args.min_views,
        max_blur_px=args.max_blur,
        min_coverage=args.min_coverage,
        fix_k3=not args.free_k3,
    )
    out = result.to_json()
    stale: list[str] = []
    if not args.no_save:
        with _store(_config(args)) as store:
            info = store.save("intrinsics", out, args.operator)
            out["calibration_id"] = info.id
            # What was measured through the lens calibration this one replaces: golden references and the scale.
            stale = sorted(
                r.kind for r in store.history() if r.active and (r.kind == "scale" or r.kind.startswith("reference:"))
            )
    K = result.camera_matrix
    text = [
        f"intrinsics from {result.views_used} of {len(views)} views ({pattern.spec}), "
        f"{result.image_size[0]}x{result.image_size[1]}",
        f"  fx {K[0, 0]:.2f}  fy {K[1, 1]:.2f}  cx {K[0, 2]:.2f}  cy {K[1, 2]:.2f} px",
        "  distortion (k1 k2 p1 p2 k3): " + " ".join(f"{v:.5f}" for v in result.dist_coeffs),
        f"  RMS reprojection error {result.rms_px:.3f} px; frame coverage {result.coverage:.0%}",
    ]
    text += [f"  view {n}: {e:.3f} px" for n, e in result.per_view_error_px.items()]
    text += [f"  rejected {r.name}: {r.reason}" for r in result.rejected]
    if result.coverage < 0.6:
        text.append("  warning: views cover little of the frame; add views with the target near the edges")
    if "calibration_id" in out:
        text.append(f"  stored as calibration {out['calibration_id']} (active from the station's next start)")
    if stale:
        # Found in a review: golden board first, lens second is the usual bring-up order, and the station then compared
        # undistorted boards with a distorted golden image: known-good boards REJECTed, nothing said why.
        text.append(
            "  warning: measured through the previous lens calibration (or none): "
            + ", ".join(stale)
            + ". Take them again (calibrate reference / calibrate scale), and capture the recipes' golden images again,"
            " before the station's next start: it undistorts every frame from then on"
        )
        out["stale"] = stale
    _emit(args, out, "\n".join(text))
    return 0


def _parse_object(spec: str) -> tuple[float, float]:
    s = spec.lower().removesuffix("mm")
    try:
        w, h = (float(v) for v in s.split("x"))
    except ValueError:
        raise CommandError(f"--object {spec!r}: expected WIDTHxHEIGHTmm, e.g. 100x80mm") from None
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0:  # float() reads "nan" and "inf"
        raise CommandError(f"--object {spec!r}: sizes must be positive numbers")
    return w, h


@_guard
def cmd_scale(args: argparse.Namespace) -> int:
    from .scale import scale_from_object, scale_from_pattern

    image, _ = _read(args.image)
    cfg = _config(args)
    store = None if (args.no_save and args.no_undistort) else _store(cfg)
    try:
        und = _undistorter(args, store, image)
        if args.pattern:
            result = scale_from_pattern(image, _pattern(args.pattern), und)
        else:
            w, h = _parse_object(args.object)
            result = scale_from_object(image, w, h, und)
        out = result.to_json() | {"image": str(args.image), "undistorted": und is not None}
        from .station import scale_problem

        problem = scale_problem(cfg, result.mm_per_px)
        if problem and not args.no_save:  # the station would refuse it at start: never store it
            raise CommandError(f"scale not stored: {problem}")
        if not args.no_save:
            out["calibration_id"] = store.save("scale", out, args.operator).id
    finally:
        if store is not None:
            store.close()
    text = [
        f"{result.mm_per_px:.6f} mm/px ({1 / result.mm_per_px:.3f} px/mm) from {result.method}",
        f"  axes {result.mm_per_px_x:.6f} / {result.mm_per_px_y:.6f} mm/px (anisotropy {result.anisotropy:+.2%})",
    ]
    text += [f"  warning: {w}" for w in result.warnings]
    if problem:
        text.append(f"  warning: the station would refuse this scale: {problem}")
    # The model learnt boards at one resolution (sidecar input_domain.px_per_mm); told this one, the station resamples.
    text.append(f"  for the model: [detector] camera_px_per_mm = {1 / result.mm_per_px:.2f}")
    if "calibration_id" in out:
        text.append(
            f"  stored as calibration {out['calibration_id']} (active from the station's next start); recipes may now "
            "use min_defect_mm"
        )
    _emit(args, out, "\n".join(text))
    return 0


@_guard
def cmd_threshold(args: argparse.Namespace) -> int:
    from inspector.detect.package import ModelError, station_input_domain

    from .store import THRESHOLD
    from .threshold import calibrate_threshold, station_line, threshold_record

    if len(args.image) != len(args.design):
        raise CommandError(
            f"{len(args.image)} --image but {len(args.design)} --design: give each golden capture its design"
        )
    cfg = _config(args)
    try:
        spec = station_input_domain(cfg.detector)
    except ModelError as exc:
        raise CommandError(f"[detector] model: {exc}") from None
    store = None if (args.no_save and args.no_undistort) else _store(cfg)
    try:
        pairs = []
        for image_path, design_path in zip(args.image, args.design, strict=True):
            image, _ = _read(image_path)
            design, _ = _read(design_path)
            und = _undistorter(args, store, image)
            pairs.append((und.apply(image) if und is not None else image, design))
        names = [f"{i} (design {d})" for i, d in zip(args.image, args.design, strict=True)]
        try:
            fit = calibrate_threshold(pairs, spec, names)
        except CalibrationError as exc:
            raise CommandError(str(exc)) from None
        out = threshold_record(fit, args.image, args.design)
        if not args.no_save:
            out["calibration_id"] = store.save(THRESHOLD, out, args.operator).id
    finally:
        if store is not None:
            store.close()
    text = [
        f"threshold position {fit.position:.2f} (0: laminate's level, 1: copper's) from {fit.boards} golden board(s), "
        f"{fit.edge_px} px of copper edge",
        f"  at the midpoint (0.5) the copper edges lie {abs(fit.offset_at_midpoint_px):.2f} px "
        + ("inward of" if fit.offset_at_midpoint_px < 0 else "outward of")
        + " the design's",
        f"  for the model: {station_line(fit.position)}",
    ]
    if "calibration_id" in out:
        text.append(f"  stored as calibration {out['calibration_id']} (active from the station's next start)")
    _emit(args, out, "\n".join(text))
    return 0


@_guard
def cmd_reference(args: argparse.Namespace) -> int:
    from .store import reference_kind

    cfg = _config(args)
    try:
        recipe = cfg.recipe(args.recipe)
    except KeyError:
        names = ", ".join(r.name for r in cfg.recipes)
        raise CommandError(f"--recipe {args.recipe!r}: no such recipe (configured: {names})") from None
    image, data = _read(args.image)
    store = _store(cfg)
    try:
        und = _undistorter(args, store, image)
        if und is not None:
            image = und.apply(image)
        ok, encoded = cv2.imencode(".png", image)
        data = encoded.tobytes() if ok else data
        gray = gray8(image)
        if float(gray.std()) < 8:
            raise CommandError(
                f"{args.image}: almost no contrast (std {gray.std():.1f}); is the board in view and lit?"
            )
        # The golden image must itself be registrable: shift it by a known amount and find it again.
        shifted = cv2.warpAffine(
            gray, np.float32([[1, 0, 3.5], [0, 1, -2.25]]), gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE
        )
        try:
            reg = BoardRegistrar().estimate(shifted, gray)
            m = reg.reference_to_image()
            self_err = float(np.hypot(m[0, 2] - 3.5, m[1, 2] + 2.25))
        except RegistrationError as exc:
            raise CommandError(f"{args.image}: this image cannot serve as a reference: {exc}") from None
        if self_err > 0.5:
            raise CommandError(
                f"{args.image}: too little structure to register boards against (self-test error {self_err:.2f} px)"
            )
        optics = measure_optics(image)
        boards = [optics]
        for path in args.good_board:
            other, _ = _read(path)
            if other.shape[:2] != image.shape[:2]:
                raise CommandError(
                    f"{path}: {other.shape[1]}x{other.shape[0]}, the golden image {image.shape[1]}x{image.shape[0]}: "
                    "a good board for the baseline is a capture by the same camera"
                )
            if und is not None:
                other = und.apply(other)
            if float(gray8(other).std()) < 8:
                raise CommandError(f"{path}: almost no contrast; is the board in view and lit?")
            boards.append(measure_optics(other))
        optics = median_sample(boards)
        limit_args = {"drop_ready": args.drop_ready}
        if args.focus_drop is not None:
            limit_args["focus_drop"] = args.focus_drop
        if args.brightness_change is not None:
            limit_args["brightness_change"] = args.brightness_change
        try:
            limits = OpticsLimits(**limit_args)
        except ValidationError as exc:  # one line per bad option, named as typed (not pydantic's four-line dump)
            raise CommandError(
                "; ".join(
                    f"--{str(e['loc'][0]).replace('_', '-')} {e.get('input')}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()
                )
            ) from None
        out = {
            "recipe": recipe.name,
            "image": str(args.image),
            "size": [int(image.shape[1]), int(image.shape[0])],
            "sha256": hashlib.sha256(data).hexdigest(),
            "undistorted": und is not None,
            "optics": optics.to_json(),
            "optics_boards": [str(args.image), *args.good_board],
            "limits": limits.model_dump(),
            "registration_self_test_px": self_err,
        }
        if not args.no_save:
            path = store.store_reference_image(recipe.name, data)
            out["reference"] = str(path)
            out["calibration_id"] = store.save(reference_kind(recipe.name), out, args.operator).id
    finally:
        store.close()
    text = [
        f"reference for recipe {recipe.name!r}: {out['size'][0]}x{out['size'][1]}, "
        f"sharpness {optics.sharpness:.3g}, focus {optics.focus:.0f}, light {optics.brightness:.0f}, "
        f"uniformity {optics.uniformity:.2f}"
        + (f", R/G {optics.colour[0]:.3f} B/G {optics.colour[1]:.3f}" if optics.colour else ""),
        f"  registration self-test error {self_err:.3f} px",
        f"  optics baseline: median of {len(boards)} boards"
        if len(boards) > 1
        else "  optics baseline: the golden board alone (add --good-board FILE for 4 more boards of the design: each "
        "board's own surface and height move one board's sharpness, and with it the focus alarm)",
    ]
    if "reference" in out:
        text.append(
            f"  stored {out['reference']} as calibration {out['calibration_id']} (active from the station's next start)"
        )
        if recipe.reference is None or Path(recipe.reference).resolve() != Path(out["reference"]):
            text.append(f'  set in station.toml, recipe {recipe.name!r}: reference = "{out["reference"]}"')
    _emit(args, out, "\n".join(text))
    return 0


@_guard
def cmd_check(args: argparse.Namespace) -> int:
    from .store import reference_kind

    cfg = _config(args)
    name = args.recipe or cfg.active_recipe
    store = _store(cfg)
    try:
        info = store.active(reference_kind(name))
        known = [r.name for r in cfg.recipes]
        if info is None and name not in known:
            raise CommandError(
                f"recipe {name!r} is not one of the station's recipes ({', '.join(known)}): check --recipe / --config"
            )
        if info is None:
            raise CommandError(
                f"recipe {name!r} has no reference calibration: run "
                f"`pcb-inspector calibrate reference --recipe {name} --image FILE` first"
            )
        baseline = store.baseline(name)
        ref_path = info.results.get("reference")
        reference = None
        if ref_path and Path(ref_path).is_file():
            try:
                reference = gray8(read_image_file(Path(ref_path)))
            except ImageFileError as exc:
                raise CommandError(f"stored reference image {ref_path}: {exc}") from None
        reports, failures = [], 0
        for f in args.image:
            image, _ = _read(f)
            und = _undistorter(args, store, image)
            if und is not None:
                image = und.apply(image)
            sample = measure_optics(image)
            drift = compare(sample, *baseline) if baseline else []
            rep = {"image": f, "optics": sample.to_json(), "drift": drift}
            if reference is not None:
                try:
                    reg = BoardRegistrar(RegistrationSettings()).estimate(image, reference)
                    rep["registration"] = {
                        "quality": reg.quality,
                        "shift_px": list(reg.shift_px),
                        "rotation_deg": reg.rotation_deg,
                        "scale": reg.scale,
                    }
                except RegistrationError as exc:
                    rep["registration"] = {"error": str(exc), "quality": exc.quality}
                    drift = drift + [f"registration: {exc}"]
                    rep["drift"] = drift
            rep["ok"] = not drift
            failures += bool(drift)
            reports.append(rep)
    finally:
        store.close()
    out = {"recipe": name, "ok": failures == 0, "images": reports}
    lines = []
    for r in reports:
        o = r["optics"]
        head = (
            f"{r['image']}: {'OK' if r['ok'] else 'DRIFT'} sharpness {o['sharpness']:.3g} focus {o['focus']:.0f} "
            f"light {o['brightness']:.0f}"
        )
        if "registration" in r and "error" not in r["registration"]:
            head += f" registration {r['registration']['quality']:.3f}"
        lines.append(head)
        lines += [f"  {d}" for d in r["drift"]]
    _emit(args, out, "\n".join(lines))
    return 0 if failures == 0 else 1


@_guard
def cmd_activate(args: argparse.Namespace) -> int:
    """Roll back (or forward) to a stored calibration: audited as calibration.activate, checked as a new one would be.

    Why: a calibration stored by mistake could only be replaced by measuring again; the one it replaced, kept in the
    history, could not be made active (models have `model rollback`)."""
    from .station import scale_problem
    from .store import SCALE

    cfg = _config(args)
    with _store(cfg) as store:
        rows = {r.id: r for r in store.history()}
        chosen = rows.get(args.id)
        if chosen is None:
            raise CommandError(
                f"calibration {args.id} is not one of this station's ({cfg.station.id}): see `calibrate history`"
            )
        before = next((r for r in rows.values() if r.kind == chosen.kind and r.active), None)
        if chosen.kind == SCALE:
            problem = scale_problem(cfg, float(chosen.results["mm_per_px"]))
            if problem:
                raise CommandError(f"calibration {args.id} not activated: {problem}")
        if before is not None and before.id == chosen.id:
            print(f"calibration {chosen.id} ({chosen.kind}) is already the active one")
            return 0
        store.activate(chosen.id, args.operator)
    was = f" (was {before.id})" if before is not None else ""
    print(f"calibration {chosen.id} ({chosen.kind}) active from the station's next start{was}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .store import INTRINSICS, SCALE, THRESHOLD

    if args.kind and args.kind not in (INTRINSICS, SCALE, THRESHOLD) and not args.kind.startswith("reference:"):
        raise CommandError(f"--kind {args.kind!r}: one of intrinsics, scale, threshold or reference:<recipe>")
    with _store(_config(args)) as store:
        rows = store.history(args.kind)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "kind": r.kind,
                        "created_at": r.created_at.isoformat(),
                        "created_by": r.created_by,
                        "active": r.active,
                        "results": r.results,
                    }
                    for r in rows
                ]
            )
        )
        return 0
    if not rows:
        print("no calibrations stored for this station", file=sys.stderr)
    for r in rows:
        key = {INTRINSICS: "rms_px", SCALE: "mm_per_px", THRESHOLD: "threshold_position"}.get(r.kind, "sha256")
        print(
            f"{r.id:5d} {r.created_at:%Y-%m-%d %H:%M} {r.kind:24s} {'*' if r.active else ' '} {r.created_by:12s} "
            f"{key}={r.results.get(key)}"
        )
    return 0
