"""The OPC UA server's application instance certificate: self-signed, made once, kept on disk.

Why self-signed on first start: Basic256Sha256 needs a certificate before the first PLC connects,
and a plant's PKI is rarely there on day one. The PLC's engineer trusts this certificate once in the
PLC (or replaces both files with one the plant's CA signed: the paths are in the config). The key
is written 0600; an existing pair is never overwritten.

The built-in line PLC simulator gets a pair too, made in memory for one run and never written: the
station trusts it for that run only (plc/opcua/server.py), so no file in `trusted_clients` outlives it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

VALID_DAYS = 5 * 365


def ensure_certificate(
    cert_path: Path,
    key_path: Path,
    app_uri: str,
    host: str,
    *,
    role: str = "server",
    named_by: str = "plc.certificate / plc.private_key",
    trust_in: str = "the PLC",
) -> tuple[Path, Path]:
    """Both files, created if both are missing (a lone certificate without its key is useless).

    `role` ('server', or 'line PLC simulator' for `pcb-inspector plc-sim`), `named_by` (the keys or options
    that name the files) and `trust_in` (who must trust it) only shape the messages."""
    cert_path, key_path = Path(cert_path), Path(key_path)
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    if cert_path.exists() != key_path.exists():
        missing = key_path if cert_path.exists() else cert_path
        raise FileNotFoundError(
            f"OPC UA certificate pair incomplete: {missing} is missing ({named_by}); "
            "restore it or remove the other file to have a new self-signed pair made"
        )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, app_uri, host, f"PCB Inspector OPC UA {role}")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    log.warning(
        "OPC UA: created a self-signed %s certificate %s (key %s, valid %d days, SHA-1 thumbprint %s); "
        "trust it in %s once",
        role,
        cert_path,
        key_path,
        VALID_DAYS,
        cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 (what OPC UA tools show as the thumbprint)
        trust_in,
    )
    return cert_path, key_path


def memory_pair(app_uri: str, host: str, common_name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate (DER) and its key (PEM), in memory only: an application that lives for
    one run (the built-in simulator) and must leave nothing behind that a client could reuse."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, app_uri, host, common_name)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.DER), pem


def _self_signed(key: rsa.RSAPrivateKey, app_uri: str, host: str, common_name: str) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pcb-inspector"),
        ]
    )
    alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri), x509.DNSName(socket.gethostname())]
    try:
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
