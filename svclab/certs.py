"""Throwaway TLS certificates for the TLS lab: one certificate authority per cluster and one
certificate per host name, made with the `cryptography` package in the cluster's state folder
(private keys readable by the user only) and never anywhere else.

    <state>/tls/ca.pem, ca.key            the lab CA (ECDSA P-256, valid 30 days)
    <state>/tls/<host>.pem, <host>.key    a server certificate for HOST signed by it (valid 7 days),
                                          HOST as its only subject alternative name

A certificate that is close to expiry (a day) or whose CA has changed is made again.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
from pathlib import Path

__all__ = ["Issued", "LabCA"]

CA_DAYS, CERT_DAYS, RENEW_BEFORE = 30, 7, datetime.timedelta(days=1)
CA_NAME = "svclab lab CA"
_making = threading.Lock()   # probes run side by side: one CA, each certificate made once


@dataclasses.dataclass(frozen=True)
class Issued:
    host: str
    cert_pem: str
    key_pem: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LabCA:
    """The CA in ROOT (made on first use) and the certificates it issues."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def cert_path(self) -> Path:
        return self.root / "ca.pem"

    def pem(self) -> str:
        with _making:
            return self._ca()[0].public_bytes(_serialization().Encoding.PEM).decode()

    def issue(self, host: str) -> Issued:
        with _making:
            return self._issue(host)

    def _issue(self, host: str) -> Issued:
        from cryptography import x509

        ca_cert, ca_key = self._ca()
        cert_path, key_path = self.root / f"{host}.pem", self.root / f"{host}.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if _signed_by(cert, ca_cert) and cert.not_valid_after_utc - RENEW_BEFORE > _now():
                return Issued(host, cert_path.read_text(), key_path.read_text())
        key = _new_key()
        cert = _build(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, host)]), key.public_key(),
                      issuer=ca_cert.subject, signer=ca_key, days=CERT_DAYS, ca=False, host=host)
        self._write(key_path, _key_pem(key))
        cert_path.write_text(cert.public_bytes(_serialization().Encoding.PEM).decode())
        return Issued(host, cert_path.read_text(), key_path.read_text())

    def _ca(self):
        from cryptography import x509

        key_path = self.root / "ca.key"
        if self.cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            if cert.not_valid_after_utc - RENEW_BEFORE > _now():
                return cert, _serialization().load_pem_private_key(key_path.read_bytes(), password=None)
        key = _new_key()
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, CA_NAME)])
        cert = _build(name, key.public_key(), issuer=name, signer=key, days=CA_DAYS, ca=True)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(key_path, _key_pem(key))
        self.cert_path.write_text(cert.public_bytes(_serialization().Encoding.PEM).decode())
        return cert, key

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)


def _signed_by(cert, ca_cert) -> bool:
    """Whether CA_CERT signed CERT (every lab CA has the same name: the signature tells them apart)."""
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (InvalidSignature, ValueError, TypeError):   # another CA's signature, or another key type
        return False


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> str:
    s = _serialization()
    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode()


def _build(subject, public_key, *, issuer, signer, days: int, ca: bool, host: str | None = None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = _now()
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signer, hashes.SHA256())
