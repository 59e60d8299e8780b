"""Model weights at rest: a package's `.tflite` encrypted for one station or for a plant's fleet.

Why: the trained weights are the plant's know-how; a copied disk, a backup or a pulled container
image must not hand them over. The `.tflite` is replaced by an AES-256-GCM envelope (same file name,
so the model store, the sidecar and the package signature work unchanged); the station decrypts it
into memory and gives the bytes straight to LiteRT (`model_content=`), never to a file.

Keys (HKDF-SHA256, nothing derived is ever stored):
- fleet:   K = HKDF(plant key, info = "pcb-inspector model fleet v1"); every station holding the plant's
  key file (from the plant key service) can run the package;
- station: K = HKDF(plant key, salt = device binding, info = "pcb-inspector model station v1"), where
  the device binding = HKDF(secret derived from the station key, salt = machine id). Only the device
  with that machine id *and* that station key (storage.station_key) can run it; another station,
  a copied disk on other hardware, or the same hardware after its station key was replaced cannot.
  The plant gets a station's binding once with `pcb-inspector model binding` (run on the station),
  or computes it from the station key file and machine id.

The envelope: MAGIC, a 4-byte big-endian header length, the JSON header, then ciphertext + tag.
The header (authenticated as GCM associated data) names the plant key id and the binding id (short
hashes, not secrets), so a package made for another station or plant is refused with a message
that says which, before any decryption is tried.

What this does not protect against: root on the running station can read the key files and the
process memory (docs/security.md: where a TEE would hold the keys instead).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .detect.base import ModelError

MAGIC = b"PCBMENC1"
FORMAT = 1
_FLEET_INFO = b"pcb-inspector model fleet v1"
_STATION_INFO = b"pcb-inspector model station v1"
_BINDING_INFO = b"pcb-inspector device binding v1"
#: Label of the secret the station key contributes (inspector.station_key.StationKey.derive).
STATION_KEY_LABEL = "pcb-inspector model encryption"
MIN_PLANT_KEY_BYTES = 32


class ModelKeyError(ModelError):
    """A key file, machine id or binding that cannot be used; the message names which and why."""


def _hkdf(ikm: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _short_id(secret: bytes) -> str:
    return hashlib.sha256(b"id:" + secret).hexdigest()[:16]


def is_encrypted(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def read_plant_key(path: Path) -> bytes:
    """The plant key file's bytes (any format; at least 32 bytes of secret), or ModelKeyError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelKeyError(f"plant model key {path} does not exist (detector.model_key)") from None
    except OSError as exc:
        raise ModelKeyError(f"plant model key {path}: cannot read it ({exc.strerror})") from None
    raw = raw.strip()
    if len(raw) < MIN_PLANT_KEY_BYTES:
        raise ModelKeyError(f"plant model key {path} holds {len(raw)} bytes; at least {MIN_PLANT_KEY_BYTES} needed")
    return raw


def new_plant_key(path: Path) -> None:
    """Write a new random plant key (what the plant key service hands out), mode 0600, never over a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ModelKeyError(f"{path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(os.urandom(32)) + b"\n")


def read_machine_id(path: Path) -> str:
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ModelKeyError(
            f"machine id file {path}: cannot read it ({exc.strerror}) (detector.machine_id_file)"
        ) from None
    if not text:
        raise ModelKeyError(f"machine id file {path} is empty (detector.machine_id_file)")
    return text


def station_secret(station_key_file: Path) -> bytes:
    """The station key's contribution: an HKDF secret derived from its private key (the key itself never leaves)."""
    from .station_key import StationKeyError, load

    try:
        return load(Path(station_key_file)).derive(STATION_KEY_LABEL)
    except StationKeyError as exc:
        raise ModelKeyError(str(exc)) from None


def device_binding(station_key_file: Path, machine_id: str) -> bytes:
    """This device's binding secret: station key + machine id. The plant needs it to encrypt for the station."""
    return _hkdf(station_secret(station_key_file), _BINDING_INFO, salt=machine_id.encode())


@dataclass(frozen=True)
class ModelKeys:
    """What a station holds to open encrypted packages."""

    plant_key: bytes
    binding: bytes | None = None
    """None: this station opens fleet packages only."""

    @property
    def plant_key_id(self) -> str:
        return _short_id(self.plant_key)

    @property
    def binding_id(self) -> str | None:
        return _short_id(self.binding) if self.binding is not None else None

    @classmethod
    def for_station(
        cls, plant_key_file: Path, machine_id_file: Path | None = None, station_key_file: Path | None = None
    ) -> ModelKeys:
        """The keys of this station; without a station key or machine id only fleet packages open."""
        binding = None
        if station_key_file is not None and machine_id_file is not None and Path(station_key_file).exists():
            binding = device_binding(station_key_file, read_machine_id(machine_id_file))
        return cls(read_plant_key(plant_key_file), binding)

    def key_for(self, scope: str) -> bytes:
        if scope == "fleet":
            return _hkdf(self.plant_key, _FLEET_INFO)
        if self.binding is None:
            raise ModelKeyError(
                "this package is encrypted for one station, but this station has no device binding "
                "(storage.station_key missing or detector.machine_id_file unreadable)"
            )
        return _hkdf(self.plant_key, _STATION_INFO, salt=self.binding)


def _header(blob: bytes, what: str) -> tuple[dict, bytes, bytes]:
    if not is_encrypted(blob) or len(blob) < len(MAGIC) + 4:
        raise ModelError(f"{what}: not an encrypted model package")
    (n,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
    end = len(MAGIC) + 4 + n
    try:
        header = json.loads(blob[len(MAGIC) + 4 : end])
        if header.get("format") != FORMAT or header.get("cipher") != "AES-256-GCM":
            raise ValueError(f"format {header.get('format')} / {header.get('cipher')} not supported")
        if header.get("scope") not in ("fleet", "station"):
            raise ValueError(f"scope {header.get('scope')!r}")
    except (ValueError, AttributeError) as exc:
        raise ModelError(f"{what}: unreadable encryption header ({exc})") from None
    return header, blob[:end], blob[end:]


def encrypt(plain: bytes, plant_key: bytes, binding: bytes | None = None) -> bytes:
    """The envelope of `plain` for the fleet (binding None) or for the station whose binding is given."""
    keys = ModelKeys(plant_key, binding)
    scope = "fleet" if binding is None else "station"
    nonce = os.urandom(12)
    header = {
        "format": FORMAT,
        "cipher": "AES-256-GCM",
        "kdf": "HKDF-SHA256",
        "scope": scope,
        "plant_key_id": keys.plant_key_id,
        "binding_id": keys.binding_id,
        "nonce": base64.b64encode(nonce).decode(),
    }
    raw = json.dumps(header, sort_keys=True).encode()
    aad = MAGIC + struct.pack(">I", len(raw)) + raw
    return aad + AESGCM(keys.key_for(scope)).encrypt(nonce, plain, aad)


def decrypt(blob: bytes, keys: ModelKeys | None, what: str) -> bytes:
    """The plaintext model, in memory; ModelError saying which key does not fit when it is not for this station."""
    header, aad, body = _header(blob, what)
    scope = header["scope"]
    if keys is None:
        raise ModelError(
            f"{what}: the model is encrypted ({scope} package) and this station has no model key; "
            "set detector.model_key to the plant key file"
        )
    if header.get("plant_key_id") != keys.plant_key_id:
        raise ModelError(
            f"{what}: encrypted with plant key {header.get('plant_key_id')}, this station holds plant key "
            f"{keys.plant_key_id} (detector.model_key): the package is for another plant or an older key"
        )
    if scope == "station" and keys.binding is not None and header.get("binding_id") != keys.binding_id:
        raise ModelError(
            f"{what}: encrypted for the station with device binding {header.get('binding_id')}, this station is "
            f"{keys.binding_id} (machine id + station key): the package was made for another station"
        )
    try:
        key = keys.key_for(scope)
        return AESGCM(key).decrypt(base64.b64decode(header["nonce"]), body, aad)
    except ModelKeyError as exc:
        raise ModelError(f"{what}: {exc}") from None
    except (InvalidTag, KeyError, ValueError):
        raise ModelError(f"{what}: decryption failed: the file was altered or truncated after encryption") from None
