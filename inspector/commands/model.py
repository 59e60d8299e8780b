"""`pcb-inspector model ...`: install, roll back, sign and verify model packages.

Why install goes through files and not a control port: the running station watches its
`detector.model` (`STORE/active/<file>`) and hot-swaps when the `active` link moves, so an install
works the same whether the station runs or not, and there is no extra network endpoint that could
change a line's model. The command confirms the swap through `/health` when the station serves it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import StationConfig
    from ..model_store import ModelStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="install, roll back, sign and verify model packages")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", help="station.toml (trusted keys, model path, database for the audit log)")
        q.add_argument(
            "--store", type=Path, help="model store folder (default: from detector.model = STORE/active/FILE)"
        )
        q.add_argument("--station-url", help="running station's metrics address, e.g. http://127.0.0.1:9108")
        q.add_argument("--user", help="who is doing this, for the audit log (default: the login name)")

    q = msub.add_parser("install", help="verify, warm up and activate a model package (hot-swaps a running station)")
    q.add_argument("package", type=Path, help="a .tflite with its .json/.md/.sig beside it, or a .tar.gz of them")
    q.add_argument("--allow-unsigned", action="store_true", help="development only: no trusted keys configured")
    q.add_argument("--no-warm-up", action="store_true", help="skip loading the model here (not recommended)")
    q.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the running station to switch")
    common(q)
    q.set_defaults(func=install)

    q = msub.add_parser("rollback", help="switch back to the previous model")
    q.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the running station to switch")
    common(q)
    q.set_defaults(func=rollback)

    q = msub.add_parser("status", help="show the active and previous models")
    common(q)
    q.set_defaults(func=status)

    q = msub.add_parser("keygen", help="create an Ed25519 key pair for the plant's model releases")
    q.add_argument("private_key", type=Path, help="where to write the private key (keep it off the stations)")
    q.add_argument("public_key", type=Path, help="where to write the public key (goes to detector.trusted_keys)")
    q.set_defaults(func=keygen)

    q = msub.add_parser("sign", help="sign a model package (.tflite + .json + .md) with the release key")
    q.add_argument("model", type=Path, help="the .tflite; its sidecar and card beside it are signed with it")
    q.add_argument("--key", type=Path, required=True, help="the release private key")
    q.add_argument("--tar", type=Path, help="also write the signed package as this .tar.gz")
    q.set_defaults(func=sign)

    q = msub.add_parser("verify", help="check a package's signature against public keys")
    q.add_argument("model", type=Path)
    q.add_argument("--key", type=Path, action="append", default=[], help="public key (repeatable; default: config's)")
    q.add_argument("--config", help="station.toml whose detector.trusted_keys to use")
    q.set_defaults(func=verify)
    q = msub.add_parser(
        "encrypt", help="encrypt a model package for one station (machine id + station key) or for the fleet"
    )
    q.add_argument("package", type=Path, help="the .tflite; its .json and .md beside it are copied along")
    q.add_argument("--key-file", type=Path, required=True, help="the plant model key (from the plant key service)")
    q.add_argument("--machine-id", help="the station's machine id (/etc/machine-id on the station)")
    q.add_argument("--station-key", type=Path, help="the station's key file (storage.station_key)")
    q.add_argument("--binding", type=Path, help="the station's binding file (`pcb-inspector model binding`)")
    q.add_argument("--fleet", action="store_true", help="for every station holding the plant key")
    q.add_argument("--out", type=Path, required=True, help="folder for the encrypted package (not the source's)")
    q.add_argument("--sign-key", type=Path, help="release private key: sign the encrypted package too")
    q.set_defaults(func=encrypt)

    q = msub.add_parser("binding", help="write this station's device binding for the plant key service (secret)")
    q.add_argument("--config", help="station.toml (storage.station_key, detector.machine_id_file)")
    q.add_argument("--out", type=Path, required=True, help="binding file to write (mode 0600)")
    q.set_defaults(func=binding)

    q = msub.add_parser("plant-key", help="create a plant model key file (what the plant key service hands out)")
    q.add_argument("key_file", type=Path)
    q.set_defaults(func=plant_key)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _cfg(args):
    """The station file; its [detector] must run a model package (these commands manage packages)."""
    from ..cli import CommandError
    from ..detect.settings import PackagedModelSettings
    from .common import station_config

    cfg = station_config(argparse.Namespace(config=args.config))
    if not isinstance(cfg.detector, PackagedModelSettings):
        raise CommandError(
            f"detector.type = {cfg.detector.type!r} runs no model package; the model commands need a "
            "packaged-model type (litert, onnxruntime, ...)"
        )
    return cfg


def _store(args, cfg):
    from ..cli import CommandError
    from ..model_store import ModelStore

    root = args.store
    if root is None:
        found = ModelStore.for_model_path(cfg.detector.model)
        if found is None:
            raise CommandError(
                f"detector.model = {cfg.detector.model} is not in a model store (STORE/active/FILE); "
                "pass --store DIR and then set detector.model to DIR/active/<file>"
            )
        root = found.root
    return ModelStore(
        root,
        database_url=cfg.storage.database_url,
        station_id=cfg.station.id,
        station_key=cfg.storage.station_key_path(),
    )


def _loaded_name(cfg: StationConfig, store: ModelStore) -> str | None:
    """The model file name the station loads from `store` (`detector.model = STORE/active/<file>`).

    Why: install and rollback refuse a package whose model file has another name, since the station
    would find nothing to load after the switch. None when `detector.model` lies outside this store
    (`--store` for a store the station does not use yet): no name to hold the package to.
    """
    from ..model_store import ModelStore

    model = Path(cfg.detector.model)
    found = ModelStore.for_model_path(model)
    if found is None or found.root.resolve() != Path(store.root).resolve():
        return None
    return model.name


def _station_model(url: str | None) -> str | None:
    if not url:
        return None
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as r:
            return json.loads(r.read()).get("model_id")
    except urllib.error.HTTPError as exc:  # 503 = NOT READY, the body still says which model runs
        try:
            return json.loads(exc.read()).get("model_id")
        except Exception:
            return None
    except (OSError, ValueError):
        return None


def _station_url(args, cfg) -> str | None:
    if args.station_url:
        return args.station_url
    if cfg.metrics.listen:
        host, _, port = cfg.metrics.listen.rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]", "::") else host
        return f"http://{host}:{port}"
    return None


def _confirm(args, cfg, model_id: str, wait: float) -> None:
    url = _station_url(args, cfg)
    before = _station_model(url)
    if before is None:
        print("no running station answered; the model is used at the next start")
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _station_model(url) == model_id:
            print(f"running station switched to {model_id}")
            return
        time.sleep(0.5)
    print(f"warning: the running station still reports {_station_model(url)} after {wait:.0f} s", file=sys.stderr)


def _warm_up(cfg):
    from ..detect.factory import create_detector

    def run(model: Path) -> str:
        det = create_detector(cfg.detector.model_copy(update={"model": model}))
        try:
            info = det.load()
            ms = det.warm_up()
            print(f"warm-up: {info.model_id} on {info.backend}, {ms:.1f} ms/inference")
            return info.model_id
        finally:
            det.close()

    return run


def install(args) -> int:
    cfg = _cfg(args)
    store = _store(args, cfg)
    keys = list(cfg.detector.trusted_keys)
    inst = store.install(
        args.package,
        trusted_keys=keys,
        warm_up=None if args.no_warm_up else _warm_up(cfg),
        require_signature=not args.allow_unsigned,
        who=args.user,
        model_name=_loaded_name(cfg, store),
    )
    print(f"installed {inst.model_id} as {store.root / 'active'} ({'signature verified' if keys else 'UNSIGNED'})")
    _confirm(args, cfg, inst.model_id, args.wait)
    return 0


def rollback(args) -> int:
    cfg = _cfg(args)
    store = _store(args, cfg)
    inst = store.rollback(
        trusted_keys=list(cfg.detector.trusted_keys), who=args.user, model_name=_loaded_name(cfg, store)
    )
    print(f"rolled back to {inst.model_id}")
    _confirm(args, cfg, inst.model_id, args.wait)
    return 0


def status(args) -> int:
    from ..model_store import _describe

    cfg = _cfg(args)
    store = _store(args, cfg)
    print(f"store:    {store.root}")
    print(f"active:   {_describe(store.active_dir())}")
    print(f"previous: {_describe(store.previous_dir())}")
    running = _station_model(_station_url(args, cfg))
    if running:
        print(f"running:  {running}")
    return 0


def keygen(args) -> int:
    from ..cli import CommandError
    from ..signing import generate_keypair

    try:
        kid = generate_keypair(args.private_key, args.public_key)
    except FileExistsError as exc:
        raise CommandError(str(exc)) from None
    print(f"key id {kid}: private {args.private_key} (mode 0600), public {args.public_key}")
    return 0


def sign(args) -> int:
    import tarfile

    from ..signing import package_files, sign_model

    sig = sign_model(args.model, args.key)
    print(f"signed: {sig}")
    if args.tar:
        with tarfile.open(args.tar, "w:gz") as tar:
            for p in [*package_files(args.model), sig]:
                tar.add(p, arcname=p.name)
        print(f"package: {args.tar}")
    return 0


def verify(args) -> int:
    from ..cli import CommandError
    from ..signing import verify_model

    keys = list(args.key)
    if not keys and args.config:
        keys = list(_cfg(args).detector.trusted_keys)
    if not keys:
        raise CommandError("give --key PUBLIC.pem or --config with detector.trusted_keys")
    info = verify_model(args.model, keys)
    print(f"OK: {args.model.name} signed by key {info.key_id} ({', '.join(sorted(info.files))})")
    return 0


def encrypt(args) -> int:
    import base64
    import shutil

    from ..cli import CommandError
    from ..model_crypt import device_binding, is_encrypted, read_plant_key
    from ..model_crypt import encrypt as seal
    from ..signing import package_files, sign_model

    station = args.machine_id is not None or args.station_key is not None
    if sum([bool(args.fleet), station, args.binding is not None]) != 1:
        raise CommandError("give exactly one of --fleet, --binding FILE, or --machine-id ID with --station-key FILE")
    if station and (args.machine_id is None or args.station_key is None):
        raise CommandError("--machine-id and --station-key go together (the station's device binding)")
    src = args.package
    if not src.is_file() or not src.with_suffix(".json").is_file():
        raise CommandError(f"{src}: not a model file with its sidecar .json beside it")
    from ..detect.base import ModelError
    from ..detect.package import read_meta

    try:
        named = read_meta(src).file  # the model file is the one the sidecar names (.tflite, .onnx)
    except ModelError as exc:
        raise CommandError(str(exc)) from None
    if named != src.name:
        raise CommandError(f"{src}: its sidecar describes {named!r}; encrypt that file")
    plain = src.read_bytes()
    if is_encrypted(plain):
        raise CommandError(f"{src}: already encrypted")
    if args.out.resolve() == src.parent.resolve():
        raise CommandError(f"--out {args.out} is the package's own folder; give another folder")
    plant = read_plant_key(args.key_file)
    bind = None
    if station:
        bind = device_binding(args.station_key, args.machine_id.strip())
    elif args.binding is not None:
        try:
            bind = base64.b64decode(json.loads(args.binding.read_text())["binding"], validate=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(
                f"{args.binding}: not a binding file from `pcb-inspector model binding` ({exc})"
            ) from None
    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.out / src.name
    dest.write_bytes(seal(plain, plant, bind))
    for p in package_files(src):
        if p != src:
            shutil.copy2(p, args.out / p.name)
    scope = "fleet" if bind is None else "this station only"
    print(f"encrypted ({scope}): {dest}")
    if args.sign_key:
        print(f"signed: {sign_model(dest, args.sign_key)}")
    else:
        print("not signed: sign the encrypted package with `pcb-inspector model sign` before installing it")
    return 0


def binding(args) -> int:
    import base64
    import os

    from ..cli import CommandError
    from ..model_crypt import ModelKeys, device_binding, read_machine_id

    cfg = _cfg(args)
    key_file = cfg.storage.station_key_path()
    bind = device_binding(key_file, read_machine_id(cfg.detector.machine_id_file))
    doc = {
        "format": 1,
        "station_id": cfg.station.id,
        "binding": base64.b64encode(bind).decode(),
        "binding_id": ModelKeys(b"-" * 32, bind).binding_id,
    }
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{args.out} exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
    print(
        f"device binding {doc['binding_id']} of station {cfg.station.id}: {args.out} (secret: give it to the key service only)"
    )
    return 0


def plant_key(args) -> int:
    from ..model_crypt import new_plant_key

    new_plant_key(args.key_file)
    print(f"plant model key: {args.key_file} (mode 0600)")
    return 0
