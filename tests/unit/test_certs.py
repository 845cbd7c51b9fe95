"""The TLS lab's throwaway CA (svclab/certs.py), made for real in a temporary state folder: made
once and reused, the certificates it issues checked with `cryptography` (and with `openssl
verify` when this machine has openssl), the private keys and their folder readable by the user
only, certificates made again when they near expiry or their CA changed, and two probes issuing
at once ending with one CA."""

import datetime
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from svclab import certs
from svclab.certs import CA_NAME, LabCA

SHOP, BLOG = "shop.tls.svclab.test", "blog.tls.svclab.test"


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:   # InvalidSignature; ValueError when the issuer name differs
        return False
    return True


# ------------------------------------------------------------------ the CA

def test_the_ca_is_made_on_first_use(tmp_path):
    root = tmp_path / "tls"
    ca = LabCA(root)
    assert not root.exists()                     # nothing made before it is needed
    pem = ca.pem()
    assert ca.cert_path == root / "ca.pem"
    assert pem == (root / "ca.pem").read_text() and pem.startswith("-----BEGIN CERTIFICATE-----")
    cert = _cert(root / "ca.pem")
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CA_NAME == "svclab lab CA"
    assert _signed_by(cert, cert)                # self-signed
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.key_encipherment
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=30, minutes=5)
    key = load_pem_private_key((root / "ca.key").read_bytes(), password=None)
    assert key.public_key() == cert.public_key()


def test_the_ca_is_reused(tmp_path):
    root = tmp_path / "tls"
    first = LabCA(root).pem()
    cert_bytes, key_bytes = (root / "ca.pem").read_bytes(), (root / "ca.key").read_bytes()
    assert LabCA(root).pem() == first            # another LabCA on the same folder: the same CA
    LabCA(root).issue(SHOP)
    assert (root / "ca.pem").read_bytes() == cert_bytes and (root / "ca.key").read_bytes() == key_bytes


def test_keys_and_their_folder_are_the_users_only(tmp_path):
    root = tmp_path / "state" / "tls"
    LabCA(root).issue(SHOP)
    assert _mode(root) == 0o700
    assert _mode(root / "ca.key") == 0o600
    assert _mode(root / f"{SHOP}.key") == 0o600


def test_a_key_file_left_readable_is_made_private(tmp_path):
    root = tmp_path / "tls"
    root.mkdir(mode=0o700)
    (root / f"{SHOP}.key").write_text("stale")
    (root / f"{SHOP}.key").chmod(0o644)
    issued = LabCA(root).issue(SHOP)
    assert _mode(root / f"{SHOP}.key") == 0o600
    assert issued.key_pem.startswith("-----BEGIN PRIVATE KEY-----")


# ------------------------------------------------------------------ the certificates it issues

def test_an_issued_certificate_is_a_server_certificate_for_its_host(tmp_path):
    root = tmp_path / "tls"
    issued = LabCA(root).issue(SHOP)
    assert issued.host == SHOP
    assert issued.cert_pem == (root / f"{SHOP}.pem").read_text()
    assert issued.key_pem == (root / f"{SHOP}.key").read_text()
    ca, cert = _cert(root / "ca.pem"), x509.load_pem_x509_certificate(issued.cert_pem.encode())
    cert.verify_directly_issued_by(ca)           # raises if not signed by the CA
    assert cert.issuer == ca.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SHOP
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [SHOP]
    assert list(san) == [x509.DNSName(SHOP)]     # its only name
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=7, minutes=5)
    assert load_pem_private_key(issued.key_pem.encode(), password=None).public_key() == cert.public_key()


def test_a_certificate_is_reused_while_valid(tmp_path):
    root = tmp_path / "tls"
    first = LabCA(root).issue(SHOP)
    assert LabCA(root).issue(SHOP) == first
    other = LabCA(root).issue(BLOG)
    assert other.cert_pem != first.cert_pem and other.key_pem != first.key_pem


def test_hosts_do_not_share_a_key(tmp_path):
    root = tmp_path / "tls"
    shop, blog = LabCA(root).issue(SHOP), LabCA(root).issue(BLOG)
    assert shop.key_pem != blog.key_pem
    assert _cert(root / f"{BLOG}.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [BLOG]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_verifies_the_chain_and_the_host(tmp_path):
    root = tmp_path / "tls"
    LabCA(root).issue(SHOP)

    def verify(*args):
        return subprocess.run(["openssl", "verify", "-CAfile", str(root / "ca.pem"), *args, str(root / f"{SHOP}.pem")],
                              capture_output=True, text=True, timeout=30)

    done = verify()
    assert done.returncode == 0 and done.stdout.strip() == f"{root / SHOP}.pem: OK", done.stdout + done.stderr
    done = verify("-purpose", "sslserver", "-verify_hostname", SHOP)
    assert done.returncode == 0, done.stdout + done.stderr
    assert verify("-verify_hostname", BLOG).returncode != 0
    assert verify("-purpose", "sslclient").returncode != 0     # serverAuth only
    LabCA(tmp_path / "other").pem()                               # another cluster's CA
    other = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "other" / "ca.pem"),
                            str(root / f"{SHOP}.pem")], capture_output=True, text=True, timeout=30)
    assert other.returncode != 0


# ------------------------------------------------------------------ made again

def _later(monkeypatch, days: float) -> None:
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    monkeypatch.setattr(certs, "_now", lambda: now)


def test_a_certificate_a_day_from_expiry_is_made_again(tmp_path, monkeypatch):
    root = tmp_path / "tls"
    first = LabCA(root).issue(SHOP)
    ca_bytes = (root / "ca.pem").read_bytes()
    _later(monkeypatch, 5.5)
    assert LabCA(root).issue(SHOP) == first      # more than a day left
    _later(monkeypatch, 6.5)
    again = LabCA(root).issue(SHOP)
    assert again.cert_pem != first.cert_pem and again.key_pem != first.key_pem
    assert (root / "ca.pem").read_bytes() == ca_bytes
    assert _signed_by(x509.load_pem_x509_certificate(again.cert_pem.encode()), _cert(root / "ca.pem"))


def test_a_ca_a_day_from_expiry_is_made_again(tmp_path, monkeypatch):
    root = tmp_path / "tls"
    first = LabCA(root).pem()
    _later(monkeypatch, 29.5)
    assert LabCA(root).pem() != first
    issued = LabCA(root).issue(SHOP)
    assert _signed_by(x509.load_pem_x509_certificate(issued.cert_pem.encode()), _cert(root / "ca.pem"))


def test_a_certificate_whose_ca_changed_is_made_again(tmp_path):
    root = tmp_path / "tls"
    first = LabCA(root).issue(SHOP)
    (root / "ca.pem").unlink()
    (root / "ca.key").unlink()
    again = LabCA(root).issue(SHOP)
    assert again.cert_pem != first.cert_pem
    assert _signed_by(x509.load_pem_x509_certificate(again.cert_pem.encode()), _cert(root / "ca.pem"))


def test_a_certificate_of_another_ca_is_made_again(tmp_path):
    """Another CA's certificate for the host (with another issuer name) is not kept."""
    root = tmp_path / "tls"
    LabCA(root).pem()
    other = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some other CA")])
    key, leaf_key = certs._new_key(), certs._new_key()
    leaf = certs._build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SHOP)]), leaf_key.public_key(),
                        issuer=other, signer=key, days=7, ca=False, host=SHOP)
    (root / f"{SHOP}.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
    (root / f"{SHOP}.key").write_text(certs._key_pem(leaf_key))
    issued = LabCA(root).issue(SHOP)
    assert issued.cert_pem != (leaf.public_bytes(Encoding.PEM)).decode()
    assert _signed_by(x509.load_pem_x509_certificate(issued.cert_pem.encode()), _cert(root / "ca.pem"))


# ------------------------------------------------------------------ probes side by side

def test_two_threads_issuing_at_once_share_one_ca(tmp_path, monkeypatch):
    """Key generation slowed down, so that without the module's lock both threads would find no CA
    and each make one."""
    real_new_key = certs._new_key

    def slow_new_key():
        time.sleep(0.05)
        return real_new_key()

    monkeypatch.setattr(certs, "_new_key", slow_new_key)
    root = tmp_path / "tls"
    start, issued, errors = threading.Barrier(2), {}, []

    def issue(host):
        try:
            start.wait(timeout=10)
            issued[host] = LabCA(root).issue(host)   # a LabCA each, as two probes make them
        except Exception as e:                       # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=issue, args=(h,)) for h in (SHOP, BLOG)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and set(issued) == {SHOP, BLOG}
    ca = _cert(root / "ca.pem")
    for host, got in issued.items():
        assert _signed_by(x509.load_pem_x509_certificate(got.cert_pem.encode()), ca), host
        assert got.cert_pem == (root / f"{host}.pem").read_text()
    assert load_pem_private_key((root / "ca.key").read_bytes(), password=None).public_key() == ca.public_key()
