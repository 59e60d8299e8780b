"""The station key: one Ed25519 private key per station, kept in a file outside the records database.

Why a key outside the database: the audit trail and the result records live in the database, so
anyone who can write the database could rewrite a record *and* its checksum. A signature made with a
key the database does not hold turns "someone edited a row" into something `audit verify` and
`db verify` can prove. Why Ed25519 rather than an HMAC secret: verifying needs only the public half,
so the plant (and an auditor) can check records without being able to forge them.

The file is PKCS#8 PEM, mode 0600, created on the station's first start (`load_or_create`). Its
public half is written beside it (`<key>.pub`) and is what the plant keeps. Other features that need
a station-bound secret (for example decrypting model packages for this device) derive one with
`derive(label)` (HKDF-SHA256), so one file stays the single secret to protect and rotate.

Retired keys keep their public half in `<key folder>/station-keys/<key id>.pub`, so records and
audit events signed before a rotation still verify.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RETIRED_DIR = "station-keys"


class StationKeyError(Exception):
    """The station key file is missing, unreadable, of the wrong kind or too open; the message names the file."""


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise StationKeyError(f"{path}: cannot read the public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise StationKeyError(f"{path}: not an Ed25519 public key")
    return key


@dataclass
class Verifier:
    """Public keys by key id: what `audit verify`, `db verify` and the plant check signatures with."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    def add(self, public: Ed25519PublicKey) -> str:
        kid = key_id_of(public)
        self.keys[kid] = public
        return kid

    def add_file(self, path: Path) -> str:
        return self.add(load_public_key(path))

    def check(self, key_id: str | None, signature: str | None, data: bytes) -> str | None:
        """None when `signature` (base64) over `data` is valid for key `key_id`; else why not."""
        if not signature:
            return "not signed"
        pub = self.keys.get(key_id or "")
        if pub is None:
            return f"signed by unknown key {key_id!r}"
        try:
            pub.verify(base64.b64decode(signature), data)
        except (InvalidSignature, ValueError):
            return f"signature does not match (key {key_id})"
        return None

    @classmethod
    def from_files(cls, paths: list[Path]) -> Verifier:
        v = cls()
        for p in paths:
            v.add_file(p)
        return v


@dataclass
class StationKey:
    """The loaded private key; `sign` is thread-safe (the cryptography key object is immutable)."""

    path: Path
    private: Ed25519PrivateKey
    public: Ed25519PublicKey = field(init=False, repr=False)
    key_id: str = field(init=False)
    """First 16 hex digits of SHA-256 of the raw public key; computed once (deriving the public key
    costs a scalar multiplication, more than the signature itself)."""

    def __post_init__(self) -> None:
        self.public = self.private.public_key()
        self.key_id = key_id_of(self.public)

    def sign(self, data: bytes) -> str:
        """Base64 Ed25519 signature of `data` (88 characters)."""
        return base64.b64encode(self.private.sign(data)).decode("ascii")

    def derive(self, label: str, length: int = 32) -> bytes:
        """A symmetric secret bound to this station key and `label` (HKDF-SHA256); never stored."""
        raw = self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(raw)

    def verifier(self) -> Verifier:
        """This key plus every retired key kept beside it."""
        v = Verifier()
        v.add(self.public)
        retired = self.path.parent / RETIRED_DIR
        if retired.is_dir():
            for p in sorted(retired.glob("*.pub")):
                v.add_file(p)
        return v


def load(path: Path) -> StationKey:
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StationKeyError(f"station key {path} does not exist (storage.station_key)") from None
    except OSError as exc:
        raise StationKeyError(f"station key {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StationKeyError(
            f"station key {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise StationKeyError(f"station key {path}: cannot read it ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        raise StationKeyError(f"station key {path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise StationKeyError(f"station key {path}: not an Ed25519 key")
    return StationKey(path, key)


def create(path: Path) -> StationKey:
    """Write a new key (0600, never over an existing file) and its public half beside it."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Written whole to a private temporary name, then hard-linked into place: a second process
    # starting at the same moment sees either no key or a complete one, never a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        raise StationKeyError(f"station key {path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise StationKeyError(f"cannot create the station key {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").write_bytes(public_pem(key.public_key()))
    return StationKey(path, key)


def load_or_create(path: Path) -> StationKey:
    """The station's key; created on first start. An existing but unreadable key is an error, never replaced."""
    path = Path(path)
    if not path.exists():
        try:
            return create(path)
        except StationKeyError:
            if not path.exists():
                raise
    return load(path)


def rotate(path: Path) -> tuple[StationKey, StationKey]:
    """Retire the current key (its public half stays in `station-keys/`) and create a new one.

    Returns (old, new). The private half of the old key is deleted: nothing can be signed with it
    any more, but everything it signed still verifies.
    """
    old = load(path)
    retired = old.path.parent / RETIRED_DIR
    retired.mkdir(exist_ok=True)
    (retired / f"{old.key_id}.pub").write_bytes(public_pem(old.public))
    tmp = old.path.with_name(old.path.name + ".new")
    if tmp.exists():
        tmp.unlink()
    new = create(tmp)
    os.replace(tmp, old.path)
    os.replace(tmp.with_name(tmp.name + ".pub"), old.path.with_name(old.path.name + ".pub"))
    return old, StationKey(old.path, new.private)


def default_path(database_url: str, spool_dir: Path) -> Path:
    """Beside the SQLite file; for a server database, in the station's data folder (the spool's parent)."""
    from .storage.db import sqlite_path

    p = sqlite_path(database_url)
    return (p.parent if p is not None else Path(spool_dir).parent) / "station.key"
