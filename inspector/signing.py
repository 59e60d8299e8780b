"""Ed25519 signatures on model packages: the station runs only models its plant released.

Why sign the package and not just trust the sidecar's sha256: the sidecar proves the `.tflite` is
the file the sidecar describes, but anyone who can write the model folder can write a new sidecar
too. The signature binds the `.tflite`, its sidecar and its model card to a key held by the plant's
release process; stations hold only the public keys (`detector.trusted_keys`).

Signature file: `<model>.sig` beside the model, JSON:
`{"format_version": 1, "algorithm": "ed25519", "key_id": "...", "files": {name: sha256}, "signature": b64}`.
The signed bytes are the canonical JSON of everything but `signature`. Every file of the package
(same stem as the model: .tflite, .json, .md) must be listed and must match; an extra unsigned file
with that stem is refused too, so a swapped-in model card cannot ride along.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .detect.base import Detector, DetectorInfo, ModelError

log = logging.getLogger(__name__)

SIG_FORMAT = 1
SIG_SUFFIX = ".sig"
PACKAGE_SUFFIXES = (".tflite", ".json", ".md")


class SignatureError(ModelError):
    """Unsigned, tampered, or signed by a key this plant does not trust."""


@dataclass(frozen=True)
class SignatureInfo:
    key_id: str
    key_file: Path | None
    files: dict[str, str]


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private key mode 0600, PKCS#8 PEM); returns the key id."""
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists():
            raise FileExistsError(f"{p}: exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key_id(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: cannot read the private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"{path}: cannot read the public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: not an Ed25519 public key")
    return key


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def signature_path(model: Path) -> Path:
    return Path(model).with_suffix(SIG_SUFFIX)


def package_files(model: Path) -> list[Path]:
    """The package's files beside `model`: the model, its sidecar, its card (when present)."""
    model = Path(model)
    found = [p for s in PACKAGE_SUFFIXES if (p := model.with_suffix(s)).is_file()]
    # The model file is whatever the sidecar names (.tflite, .onnx, ...): always part of its package.
    return found if model in found or not model.is_file() else [model, *found]


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in doc.items() if k != "signature"}, sort_keys=True, separators=(",", ":")
    ).encode()


def sign_model(model: Path, private_key: Path | Ed25519PrivateKey) -> Path:
    """Sign the package of `model` (its .tflite, .json and .md); writes and returns `<model>.sig`."""
    model = Path(model)
    if not model.is_file():
        raise SignatureError(f"{model}: model file not found")
    if not model.with_suffix(".json").is_file():
        raise SignatureError(f"{model.with_suffix('.json')}: sidecar not found; a package needs its metadata")
    key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    doc: dict[str, Any] = {
        "format_version": SIG_FORMAT,
        "algorithm": "ed25519",
        "key_id": key_id(key.public_key()),
        "files": {p.name: _sha256(p) for p in package_files(model)},
    }
    doc["signature"] = base64.b64encode(key.sign(_canonical(doc))).decode()
    out = signature_path(model)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


def verify_model(model: Path, trusted_keys: Iterable[Path | Ed25519PublicKey]) -> SignatureInfo:
    """Check `<model>.sig` against the plant's public keys; SignatureError naming the file and the problem."""
    model = Path(model)
    if not model.is_file():
        # Said first: without the model the signature is beside the point, and "not signed" would send
        # the operator looking for a key problem when the file the station loads is simply not there.
        raise SignatureError(f"{model}: model file missing; nothing to verify or load")
    sig = signature_path(model)
    keys: list[tuple[Ed25519PublicKey, Path | None]] = [
        (k, None) if isinstance(k, Ed25519PublicKey) else (load_public_key(k), Path(k)) for k in trusted_keys
    ]
    if not keys:
        raise SignatureError("no trusted public keys configured (detector.trusted_keys is empty)")
    if not sig.is_file():
        raise SignatureError(f"{sig}: model package is not signed (signature file missing); refusing {model.name}")
    try:
        doc = json.loads(sig.read_text())
        files = dict(doc["files"])
        signature = base64.b64decode(doc["signature"], validate=True)
        if doc.get("format_version") != SIG_FORMAT or doc.get("algorithm") != "ed25519":
            raise ValueError(f"format {doc.get('format_version')}/{doc.get('algorithm')} not supported")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{sig}: unreadable signature file ({exc})") from None
    message = _canonical(doc)
    signer: tuple[Ed25519PublicKey, Path | None] | None = None
    for pub, path in keys:
        try:
            pub.verify(signature, message)
            signer = (pub, path)
            break
        except InvalidSignature:
            continue
    if signer is None:
        raise SignatureError(
            f"{sig}: signature does not verify with any trusted key (key id {doc.get('key_id')!r}; "
            f"trusted: {', '.join(key_id(k) for k, _ in keys)}); the package was tampered with or signed by "
            "another plant"
        )
    for required in (model.name, model.with_suffix(".json").name):
        if required not in files:
            raise SignatureError(f"{sig}: {required} is not covered by the signature")
    for name, digest in files.items():
        if Path(name).name != name:
            raise SignatureError(f"{sig}: file name {name!r} is not a plain name")
        path = model.parent / name
        if not path.is_file():
            raise SignatureError(f"{path}: signed file is missing")
        actual = _sha256(path)
        if actual != digest:
            raise SignatureError(f"{path}: sha256 {actual[:12]}... differs from the signed {digest[:12]}...: tampered")
    unsigned = [p.name for p in package_files(model) if p.name not in files]
    if unsigned:
        raise SignatureError(f"{sig}: package file(s) {unsigned} are not covered by the signature")
    return SignatureInfo(key_id(signer[0]), signer[1], files)


class VerifiedDetector(Detector):
    """Wraps a detector: `load` first checks the package signature, then loads the inner detector.

    Why at `load` and not at build time: `load` runs in the inference thread (and again for a hot
    swap), so a refused model turns the model lamp red and every board into a REJECT with the reason,
    instead of stopping the process before the PLC and the UI can say why.
    """

    def __init__(self, inner: Detector, model: Path, trusted_keys: list[Path]):
        self.inner = inner
        self.model = Path(model)
        self.trusted_keys = list(trusted_keys)
        self.signature: SignatureInfo | None = None

    def load(self) -> DetectorInfo:
        self.signature = verify_model(self.model, self.trusted_keys)
        log.info("model %s signed by key %s", self.model.name, self.signature.key_id)
        return self.inner.load()

    def warm_up(self, runs: int = 3) -> float:
        return self.inner.warm_up(runs)

    def detect(self, image, reference=None, thresholds=None):
        return self.inner.detect(image, reference, thresholds)

    @property
    def info(self) -> DetectorInfo:
        return self.inner.info

    @property
    def last_timings(self) -> dict[str, float]:  # type: ignore[override]
        return getattr(self.inner, "last_timings", {})

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Benchmark and UI read extras such as `backend` or `warm_up_ms` from the real detector.
        return getattr(self.__dict__["inner"], name)


def guard_detector(detector_cfg: Any, detector: Detector) -> Detector:
    """The detector to run: signature-checked when the plant configured trusted keys."""
    keys = list(getattr(detector_cfg, "trusted_keys", []) or [])
    if isinstance(detector, VerifiedDetector):
        return detector  # `create_detector` already guards; callers that guard again get the same detector
    from .detect.settings import PackagedModelSettings

    if not isinstance(detector_cfg, PackagedModelSettings):
        return detector  # not a model package (the classical baseline loads no model file)
    if not keys:
        log.warning("model signatures are not checked: detector.trusted_keys is empty (development set-up)")
        return detector
    return VerifiedDetector(detector, detector_cfg.model, keys)
