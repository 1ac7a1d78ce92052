"""Reading certificate and key files, checked before anything listens.

Both console scripts use it (the server's entry module passes the bytes on to server/app.py):
a missing or unreadable file, text that is not PEM, a key that does not belong to its
certificate, or a certificate outside its validity period stops start-up (and a SIGHUP reload)
with a message naming the flag and the file, instead of a TLS error on the first handshake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CertificateError(ValueError):
    """A certificate or key file cannot be used; the message names the flag and the file."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate chain (leaf first) and its private key, as PEM bytes, checked together."""

    cert_pem: bytes
    key_pem: bytes
    cert_path: Path
    key_path: Path


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from exc


def read_certificates(path: Path, flag: str, now: datetime | None = None) -> bytes:
    """The PEM bytes of path: one or more certificates, each valid now.

    Raises:
        CertificateError: unreadable, not PEM certificates, expired or not yet valid.
    """
    data = _read(path, flag)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(f"{flag} {path}: not a PEM certificate file") from exc
    moment = now or datetime.now(UTC)
    for certificate in certificates:
        if certificate.not_valid_after_utc < moment:
            raise CertificateError(
                f"{flag} {path}: certificate {certificate.subject.rfc4514_string()!r} expired "
                f"on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
            )
        if certificate.not_valid_before_utc > moment:
            raise CertificateError(
                f"{flag} {path}: certificate {certificate.subject.rfc4514_string()!r} is not "
                f"valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
            )
    return data


def read_key_pair(cert_path: Path, key_path: Path, cert_flag: str, key_flag: str) -> KeyPair:
    """The certificate chain of cert_path and the unencrypted private key of key_path.

    Raises:
        CertificateError: either file is unusable, or the key is not the certificate's.
    """
    cert_pem = read_certificates(cert_path, cert_flag)
    key_pem = _read(key_path, key_flag)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"{key_flag} {key_path}: not an unencrypted PEM private key"
        ) from exc
    leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    if leaf.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise CertificateError(
            f"{key_flag} {key_path}: the key does not match the certificate in {cert_path}"
        )
    return KeyPair(cert_pem=cert_pem, key_pem=key_pem, cert_path=cert_path, key_path=key_path)
