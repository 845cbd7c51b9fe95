"""The tls kind, without a cluster: the HTTPS script run for real by this machine's POSIX sh (dash)
inside the braces the outside client's long-lived shell wraps every command in (outside.py),
against a fake curl and, when this machine has curl, against the real one talking to a TLS
terminator on 127.0.0.1 holding certificates of a real lab CA; curl's output parsed; observe on a
fake cluster; and the judge on the facts of a real `lab.tls` run (recorded_facts.json), then on
those facts changed the way a misbehaving terminator would change them: each expectation must be
able to fail."""

import datetime
import json
import shutil
import ssl
import subprocess
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from svclab import labs
from svclab.certs import CA_NAME, LabCA
from svclab.probes import NodeInfo
from svclab.probes.base import Prediction
from svclab.probes.kinds import tls
from svclab.probes.kinds.tls import Expect, _common_name, https_script, judge, parse_https, secret_name

SAMPLES = Path(__file__).parent / "samples"
RECORDED = json.loads((SAMPLES / "recorded_facts.json").read_text())["providers"]
SHOP, BLOG, WRONG = "shop.tls.svclab.test", "blog.tls.svclab.test", "unknown.svclab.test"
LB_IP, HAPROXY_IP = "172.18.255.239", "172.18.0.19"
SELF_SIGNED = "SSL certificate problem: self-signed certificate"
NO_NAME_MATCH = f"SSL: no alternative certificate subject name matches target host name '{WRONG}'"
NODES = [NodeInfo("dev-control-plane", "172.18.0.3", "10.244.0.0/24", False),
         NodeInfo("dev-worker", "172.18.0.2", "10.244.1.0/24", True)]


def _facts(probe: str) -> dict:
    return next(r["facts"] for r in RECORDED["metallb"] if r["lab"] == "tls" and r["probe"] == probe)


def _probe(probe_id: str):
    return next(p for p in labs.load_lab("tls").probes if p.id == probe_id)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The CA and body files of the outside client, in TMP_PATH rather than this machine's /tmp."""
    monkeypatch.setattr(tls, "CA_FILE", str(tmp_path / "svclab-ca-{probe}.pem"))
    monkeypatch.setattr(tls, "BODY_FILE", str(tmp_path / "svclab-tls-body-{probe}"))
    return tmp_path


def _session(script: str, path: str, home: Path) -> str:
    """SCRIPT's output as the outside client's shell gives it back (outside.Session.run: braces,
    stdin /dev/null, stderr into stdout), checking that the shell goes on after it."""
    done = subprocess.run(["/bin/sh", "-c", f"{{ {script}\n}} </dev/null 2>&1; echo still-here $?"],
                          env={"PATH": path, "HOME": str(home)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.endswith("still-here 0\n"), done.stdout
    return done.stdout[:-len("still-here 0\n")]


# ------------------------------------------------------------------ the script, run by sh, with a fake curl

# How each terminator of the recorded runs presented itself: host → (subject, issuer, the strict
# client's problem or "", the X-Forwarded-Proto the backend got).
INGRESS = {SHOP: (f"CN={SHOP}", f"CN={CA_NAME}", "", "https"), BLOG: (f"CN={BLOG}", f"CN={CA_NAME}", "", "https"),
           WRONG: ("CN=TRAEFIK DEFAULT CERT", "CN=TRAEFIK DEFAULT CERT", SELF_SIGNED, "https")}
HAPROXY = INGRESS | {WRONG: (f"CN={BLOG}", f"CN={CA_NAME}", NO_NAME_MATCH, "https")}

_FAKE_CURL = r"""#!/bin/sh
printf '%s\n' "$*" >> @LOG@
body= ca= insecure= resolve= url= max=
while [ $# -gt 0 ]; do
  case $1 in
    -sS|-v) ;;
    -k) insecure=yes ;;
    --cacert) ca=$2; shift ;;
    -m) max=$2; shift ;;
    -o) body=$2; shift ;;
    --resolve) resolve=$2; shift ;;
    -*) printf 'curl: option %s: is unknown\n' "$1" >&2; exit 2 ;;
    *) url=$1 ;;
  esac
  shift
done
rest=${url#https://}; host=${rest%%:*}; rest=${rest#*:}; port=${rest%%/*}; path=/${rest#*/}
case $resolve in
  "$host:$port:"*) ip=${resolve#"$host:$port:"} ;;
  *) printf 'curl: (6) Could not resolve host: %s\n' "$host" >&2; exit 6 ;;
esac
if [ -z "$ip" ] || [ -z "$body" ] || [ "$max" != 5 ] || [ "$path" != "/header?key=X-Forwarded-Proto" ]; then
  printf 'curl: (2) not called as https_script calls it\n' >&2; exit 2
fi
if [ -z "$insecure" ]; then
  first=; [ -f "$ca" ] && read -r first < "$ca"
  if [ "$first" != "-----BEGIN CERTIFICATE-----" ]; then
    printf 'curl: (77) error setting certificate file: %s\n' "$ca" >&2; exit 77
  fi
fi
printf '* Added %s to DNS cache\n*   Trying %s:%s...\n' "$resolve" "$ip" "$port" >&2
printf '* Connected to %s (%s) port %s (#0)\n' "$host" "$ip" "$port" >&2
case $host in
@CASES@  *) printf 'curl: (35) OpenSSL SSL_connect: Connection reset by peer\n' >&2; exit 35 ;;
esac
if [ -z "$insecure" ] && [ -n "$problem" ]; then
  printf '* %s\n* Closing connection 0\n' "$problem" >&2
  printf 'curl: (60) %s\nMore details here: https://curl.se/docs/sslcerts.html\n\n' "$problem" >&2
  printf 'curl failed to verify the legitimacy of the server and therefore could not\n' >&2
  printf 'establish a secure connection to it.\n' >&2
  exit 60
fi
printf '* Server certificate:\n*  subject: %s\n*  start date: Dec  1 10:00:00 2026 GMT\n' "$subject" >&2
printf '*  expire date: Dec  8 10:05:00 2026 GMT\n*  subjectAltName: host "%s" matched cert\n' "$host" >&2
printf '*  issuer: %s\n' "$issuer" >&2
[ -n "$problem" ] && printf '*  SSL certificate verify result: %s, continuing anyway.\n' "$problem" >&2
printf '> GET %s HTTP/1.1\r\n> Host: %s:%s\r\n>\r\n< HTTP/1.1 200 OK\r\n<\r\n' "$path" "$host" "$port" >&2
printf '%s' "$proto" > "$body"
printf '* Connection #0 to host %s left intact\n' "$host" >&2
exit 0
"""


def _fake_curl(tmp_path: Path, presents: dict) -> Path:
    """A curl that logs its arguments, checks it was called as https_script calls it (and, when
    verifying, that the CA file holds a certificate), and answers each host as PRESENTS says:
    curl's verbose lines on stderr, the body (no final newline) in the file given with -o, or
    curl's error line and exit 60 when verifying a certificate PRESENTS says fails. Only sh
    builtins."""
    cases = "".join(f'  {host}) subject="{s}"; issuer="{i}"; problem="{p}"; proto="{f}" ;;\n'
                    for host, (s, i, p, f) in presents.items())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "curl").write_text(_FAKE_CURL.replace("@LOG@", str(tmp_path / "curl.log")).replace("@CASES@", cases))
    (bin_dir / "curl").chmod(0o755)
    return bin_dir


def _curls(tmp_path: Path) -> list[str]:
    log = tmp_path / "curl.log"
    return log.read_text().splitlines() if log.exists() else []


def _write_ca(files: Path, probe: str) -> None:
    (files / f"svclab-ca-{probe}.pem").write_text(LabCA(files / "state").pem())


def test_script_verified_reads_back_the_body_without_a_final_newline(files):
    bin_dir = _fake_curl(files, INGRESS)
    _write_ca(files, "ingress-terminates")
    output = _session(https_script(SHOP, LB_IP, 443, verify=True, probe="ingress-terminates"), str(bin_dir), files)
    assert output.endswith("\x1e0\nhttps\n")
    assert parse_https(output) == {"ok": True, "subject": f"CN={SHOP}", "issuer": f"CN={CA_NAME}",
                                   "problem": None, "body": "https"}
    assert _curls(files) == [
        f"-sS -v --cacert {files}/svclab-ca-ingress-terminates.pem -m 5 -o {files}/svclab-tls-body-ingress-terminates "
        f"--resolve {SHOP}:443:{LB_IP} https://{SHOP}:443/header?key=X-Forwarded-Proto"]


def test_script_not_verified_prints_curls_problem_and_no_stale_body(files):
    bin_dir = _fake_curl(files, INGRESS)
    _write_ca(files, "p")
    assert parse_https(_session(https_script(SHOP, LB_IP, 443, verify=True, probe="p"), str(bin_dir), files))["ok"]
    assert (files / "svclab-tls-body-p").read_text() == "https"       # left from the request before
    output = _session(https_script(WRONG, LB_IP, 443, verify=True, probe="p"), str(bin_dir), files)
    assert output.endswith("\x1e60\n")                                  # the body is not read after a failure
    assert parse_https(output) == {"ok": False, "subject": None, "issuer": None, "problem": SELF_SIGNED, "body": ""}


def test_script_without_verifying_shows_the_certificate_presented(files):
    bin_dir = _fake_curl(files, HAPROXY)
    output = _session(https_script(WRONG, HAPROXY_IP, 8443, verify=False, probe="p"), str(bin_dir), files)
    assert parse_https(output) == {"ok": True, "subject": f"CN={BLOG}", "issuer": f"CN={CA_NAME}",
                                   "problem": None, "body": "https"}
    assert _curls(files) == [f"-sS -v -k -m 5 -o {files}/svclab-tls-body-p --resolve {WRONG}:8443:{HAPROXY_IP} "
                             f"https://{WRONG}:8443/header?key=X-Forwarded-Proto"]
    strict = _session(https_script(WRONG, HAPROXY_IP, 8443, verify=True, probe="p"), str(bin_dir), files)
    assert parse_https(strict)["problem"] == "error setting certificate file: " + f"{files}/svclab-ca-p.pem"


def test_script_reads_a_body_of_several_lines(files):
    bin_dir = _fake_curl(files, {SHOP: (f"CN={SHOP}", f"CN={CA_NAME}", "", "two")})
    (bin_dir / "curl").write_text((bin_dir / "curl").read_text().replace(
        "printf '%s' \"$proto\" > \"$body\"", "printf 'first line\\n\\nlast line' > \"$body\""))
    output = _session(https_script(SHOP, LB_IP, 443, verify=False, probe="p"), str(bin_dir), files)
    assert output.endswith("\x1e0\nfirst line\n\nlast line\n")
    assert parse_https(output)["body"] == "first line\n\nlast line"


def test_script_needs_only_sh_builtins_and_curl(files):
    """With nothing but the fake curl on PATH (no cat)."""
    bin_dir = _fake_curl(files, INGRESS)
    _write_ca(files, "p")
    assert parse_https(_session(https_script(BLOG, LB_IP, 443, verify=True, probe="p"), str(bin_dir), files))[
        "body"] == "https"


def test_script_without_curl(files):
    empty = files / "empty"
    empty.mkdir()
    output = _session(https_script(SHOP, LB_IP, 443, verify=True, probe="p"), str(empty), files)
    assert output.endswith("\x1e127\n")
    assert parse_https(output) == {"ok": False, "subject": None, "issuer": None, "problem": None, "body": ""}


def test_script_files_and_integers():
    script = https_script(SHOP, LB_IP, "443", verify=True, probe="ingress-terminates")
    assert "--cacert /tmp/svclab-ca-ingress-terminates.pem" in script and " -k " not in script
    assert "-o /tmp/svclab-tls-body-ingress-terminates " in script
    assert "< /tmp/svclab-tls-body-ingress-terminates; true" in script
    assert f"--resolve {SHOP}:443:{LB_IP} 'https://{SHOP}:443/header?key=X-Forwarded-Proto'" in script
    assert " -k " in https_script(SHOP, LB_IP, 443, verify=False, probe="p") and "--cacert" not in \
        https_script(SHOP, LB_IP, 443, verify=False, probe="p")
    with pytest.raises(ValueError):
        https_script(SHOP, LB_IP, "443; rm -rf /", verify=True, probe="p")


# ------------------------------------------------------------------ parse_https, _common_name

def test_parse_of_nothing():
    assert parse_https("") == {"ok": False, "subject": None, "issuer": None, "problem": None, "body": ""}
    assert parse_https("sh: 1: curl: not found\n") == {"ok": False, "subject": None, "issuer": None,
                                                      "problem": None, "body": ""}


def test_parse_takes_the_first_certificate_lines_and_curls_own_error_line():
    log = ("* Server certificate:\n*  subject: CN=a.svclab.test\n*  subjectAltName: host \"a\" matched\n"
           "*  issuer: O=Lab; CN=svclab lab CA\n"
           "* SSL certificate problem: x\ncurl: (60) SSL certificate problem: x\nMore details here: y\n")
    assert parse_https(log + "\x1e60\n") == {"ok": False, "subject": "CN=a.svclab.test",
                                             "issuer": "O=Lab; CN=svclab lab CA",
                                             "problem": "SSL certificate problem: x", "body": ""}
    # Only the status after the separator says whether the request succeeded.
    assert parse_https("curl: (60) x\n\x1e0\nhttps\n")["ok"] is True
    assert parse_https("\x1e 0 \nhttps")["ok"] is True
    assert parse_https("\x1e00\nhttps")["ok"] is False


@pytest.mark.parametrize("text, name", [
    ("CN=shop.tls.svclab.test", "shop.tls.svclab.test"),
    ("CN=svclab lab CA", "svclab lab CA"),
    ("CN = TRAEFIK DEFAULT CERT", "TRAEFIK DEFAULT CERT"),              # OpenSSL's oneline format
    ("C=US; O=Acme; CN=shop.tls.svclab.test", "shop.tls.svclab.test"),  # curl's, older ones
    ("C = US, O = Acme, CN = blog.tls.svclab.test", "blog.tls.svclab.test"),
    ("/C=US/O=Acme/CN=shop.tls.svclab.test/emailAddress=x@y", "shop.tls.svclab.test"),
    ("CN=shop.tls.svclab.test, O=Acme", "shop.tls.svclab.test"),
    ("O=Acme", None),
    ("", None),
    (None, None),
])
def test_common_name(text, name):
    assert _common_name(text) == name


def test_secret_name_is_the_first_label_and_tls():
    assert secret_name(SHOP) == "shop-tls"
    assert secret_name(BLOG) == "blog-tls"
    assert secret_name("localhost") == "localhost-tls"


# ------------------------------------------------------------------ the real curl, a real CA

def _self_signed(root: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("traefik.default")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / "default.pem", root / "default.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Terminator:
    """HTTPS on 127.0.0.1: each host's certificate from the lab CA's folder by SNI (as the Ingress
    controller takes them from their Secrets), DEFAULT for any other host; the backend's answer to
    /header?key=X-Forwarded-Proto: https."""

    def __init__(self, ca_root: Path, default: tuple[Path, Path]):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*default)

        def by_name(sock, name, _context):
            if name and (ca_root / f"{name}.pem").exists():
                chosen = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                chosen.load_cert_chain(ca_root / f"{name}.pem", ca_root / f"{name}.key")
                sock.context = chosen

        context.sni_callback = by_name

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"https" if self.path == "/header?key=X-Forwarded-Proto" else b"404 page not found"
                self.send_response(200 if body == b"https" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _seen(host: str, port: int, files: Path) -> dict:
    """What observe records for HOST: the strict and the loose request, through the real curl."""
    path = "/usr/bin:/bin"
    checked = parse_https(_session(https_script(host, "127.0.0.1", port, verify=True, probe="p"), path, files))
    presented = parse_https(_session(https_script(host, "127.0.0.1", port, verify=False, probe="p"), path, files))
    return {"verified": checked["ok"], "problem": checked["problem"], "subject": presented["subject"],
            "issuer": presented["issuer"], "forwarded_proto": checked["body"] if checked["ok"] else None}


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
@pytest.mark.parametrize("probe_id", ["ingress-terminates", "load-balancer-terminates"])
def test_the_real_curl_gives_the_recorded_facts(files, probe_id):
    """A terminator like Traefik (a self-signed default certificate) or like HAProxy (the first
    host's certificate by default): the real curl's lines parse to what the recorded runs saw."""
    ca = LabCA(files / "state" / "tls")
    for host in (SHOP, BLOG):
        ca.issue(host)
    (files / "svclab-ca-p.pem").write_text(ca.pem())
    default = (_self_signed(files, "TRAEFIK DEFAULT CERT") if probe_id == "ingress-terminates"
               else (ca.root / f"{BLOG}.pem", ca.root / f"{BLOG}.key"))
    terminator = _Terminator(ca.root, default)
    try:
        recorded = _facts(probe_id)
        for host in (SHOP, BLOG):
            assert _seen(host, terminator.port, files) == recorded["hosts"][host], host
        wrong = _seen(WRONG, terminator.port, files)
    finally:
        terminator.close()
    # curl words a name mismatch its own way from one version to the next; the rest is exact.
    assert wrong | {"problem": None} == recorded["wrong"] | {"problem": None}
    assert wrong["problem"] and (wrong["problem"] == recorded["wrong"]["problem"]
                                 or (probe_id == "load-balancer-terminates" and WRONG in wrong["problem"]))
    facts = recorded | {"hosts": {h: recorded["hosts"][h] for h in (SHOP, BLOG)}, "wrong": wrong}
    assert judge(facts, _probe(probe_id).expectation("metallb")) == []


# ------------------------------------------------------------------ observe, on a fake cluster

class _Kube:
    def __init__(self, services: dict):
        self.services, self.applied = services, []

    def get(self, api_version, kind, name, namespace=None):
        assert (api_version, kind) == ("v1", "Service")
        return self.services.get(f"{namespace}/{name}")

    def list(self, *args, **kwargs):   # Warning events: none
        return []

    def apply(self, objects):
        self.applied += objects


def _traefik(ip: str | None) -> dict:
    return {"metadata": {"namespace": "svclab-traefik", "name": "traefik"},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "web", "port": 80, "nodePort": 30080},
                                                       {"name": "websecure", "port": 443, "nodePort": 30443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}}}


def _ctx(files: Path, presents: dict, *, lb_ip: str | None = LB_IP):
    bin_dir = _fake_curl(files, presents)
    return types.SimpleNamespace(
        kube=_Kube({"svclab-traefik/traefik": _traefik(lb_ip)}), namespace="svclab-tls",
        outside=types.SimpleNamespace(run=lambda command, timeout: (0, _session(command, str(bin_dir), files))),
        topology=types.SimpleNamespace(nodes=NODES, pool=types.SimpleNamespace(subnet="172.18.0.0/16")),
        settings=types.SimpleNamespace(wait_timeout=1, cluster_dir=files / "state"),
        env=types.SimpleNamespace(provider=types.SimpleNamespace(expects_address=lb_ip is not None)))


def test_observe_at_the_ingress_makes_the_recorded_facts(files):
    ctx = _ctx(files, INGRESS)
    probe = _probe("ingress-terminates")
    seen = tls.observe(ctx, probe)
    assert seen.facts == _facts("ingress-terminates")
    assert judge(seen.facts, probe.expectation("metallb")) == []
    assert seen.observed == f"2/2 hosts verified at the ingress; {WRONG} not verified"
    assert seen.evidence == [
        f"Secrets shop-tls, blog-tls: certificates signed by {CA_NAME}",
        f"the Ingress controller terminates TLS at {LB_IP}:443",
        *(f"https://{h}:443 (SNI {h}) → certificate {h} from {CA_NAME}: verified; "
          "backend got X-Forwarded-Proto: https" for h in (SHOP, BLOG)),
        f"https://{WRONG}:443 (SNI {WRONG}) → certificate TRAEFIK DEFAULT CERT from TRAEFIK DEFAULT CERT: "
        f"not verified ({SELF_SIGNED})",
        "behind the ingress, Service echo and its pods speak plain HTTP"]
    # The Secrets the lab's Ingress names, holding what the CA issued.
    root = files / "state" / "tls"
    assert [(s["metadata"], s["type"]) for s in ctx.kube.applied] == [
        ({"name": "shop-tls", "namespace": "svclab-tls"}, "kubernetes.io/tls"),
        ({"name": "blog-tls", "namespace": "svclab-tls"}, "kubernetes.io/tls")]
    assert ctx.kube.applied[0]["stringData"] == {"tls.crt": (root / f"{SHOP}.pem").read_text(),
                                                 "tls.key": (root / f"{SHOP}.key").read_text()}
    # The CA the strict client checks against is the lab CA.
    assert (files / "svclab-ca-ingress-terminates.pem").read_text() == (root / "ca.pem").read_text()


def test_observe_without_an_external_address_goes_through_a_nodeport(files):
    seen = tls.observe(_ctx(files, INGRESS, lb_ip=None), _probe("ingress-terminates"))
    assert seen.facts["address"] == f"{NODES[0].ip}:30443"
    assert f"no external address: the Ingress controller through {NODES[0].name}'s nodePort 30443" in seen.evidence


def test_observe_a_terminator_without_the_header(files):
    """One that sends the request on without X-Forwarded-Proto: the backend reports none."""
    probe = _probe("ingress-terminates")
    bare = {host: (s, i, p, "") for host, (s, i, p, _) in INGRESS.items()}
    seen = tls.observe(_ctx(files, bare), probe)
    assert seen.facts["hosts"][SHOP]["forwarded_proto"] == ""
    assert judge(seen.facts, probe.expectation("metallb")) == [
        f"{BLOG}: backend got X-Forwarded-Proto none", f"{SHOP}: backend got X-Forwarded-Proto none"]


# ------------------------------------------------------------------ the judge

def test_recorded_runs_pass_their_labs_expectations():
    for probe in labs.load_lab("tls").probes:
        assert judge(_facts(probe.id), probe.expectation("metallb")) == [], probe.id


def _host(facts: dict, host: str, **changes) -> dict:
    return facts | {"hosts": facts["hosts"] | {host: facts["hosts"][host] | changes}}


def test_verified():
    facts = _facts("ingress-terminates")
    assert judge(facts, Expect(verified=True)) == []
    # The Secret not picked up: the controller's default certificate for that host.
    default = _host(facts, SHOP, verified=False, problem=SELF_SIGNED, subject="CN=TRAEFIK DEFAULT CERT",
                    issuer="CN=TRAEFIK DEFAULT CERT", forwarded_proto=None)
    assert judge(default, Expect(verified=True)) == [
        f"{SHOP}: certificate TRAEFIK DEFAULT CERT from TRAEFIK DEFAULT CERT, {SELF_SIGNED}"]
    # The chain verified, but the terminator presented another host's certificate (a wildcard, say).
    other = _host(facts, SHOP, subject=f"CN={BLOG}")
    assert judge(other, Expect(verified=True)) == [f"{SHOP}: certificate {BLOG} from {CA_NAME}"]
    # Signed by another CA of the same subject shape: its issuer is not the lab CA.
    foreign = _host(facts, BLOG, issuer="CN=some other CA")
    assert judge(foreign, Expect(verified=True)) == [f"{BLOG}: certificate {BLOG} from some other CA"]
    # Nothing answered.
    silent = _host(facts, BLOG, verified=False, problem=None, subject=None, issuer=None, forwarded_proto=None)
    assert judge(silent, Expect(verified=True)) == [f"{BLOG}: certificate ? from ?"]
    assert judge(facts, Expect(verified=False)) == [f"{BLOG}: verified", f"{SHOP}: verified"]
    assert judge(default, Expect(verified=False)) == [f"{BLOG}: verified"]


def test_forwarded_proto():
    facts = _facts("load-balancer-terminates")
    assert judge(facts, Expect(forwarded_proto="https")) == []
    assert judge(facts, Expect(forwarded_proto="http")) == [f"{BLOG}: backend got X-Forwarded-Proto https",
                                                           f"{SHOP}: backend got X-Forwarded-Proto https"]
    plain = _host(facts, SHOP, forwarded_proto="http")
    assert judge(plain, Expect(forwarded_proto="https")) == [f"{SHOP}: backend got X-Forwarded-Proto http"]
    unverified = _host(facts, BLOG, verified=False, forwarded_proto=None)
    assert judge(unverified, Expect(forwarded_proto="https")) == [f"{BLOG}: backend got X-Forwarded-Proto none"]


def test_wrong_host_verified():
    for probe in ("ingress-terminates", "load-balancer-terminates"):
        facts = _facts(probe)
        assert judge(facts, Expect(wrong_host_verified=False)) == []
        assert judge(facts, Expect(wrong_host_verified=True)) == [f"{WRONG}: not verified"]
        # A terminator with a certificate that covers any name.
        covered = facts | {"wrong": facts["wrong"] | {"verified": True, "problem": None}}
        assert judge(covered, Expect(wrong_host_verified=False)) == [f"{WRONG}: verified"]
        assert judge(covered, Expect(wrong_host_verified=True)) == []
    assert judge({"hosts": {SHOP: {}}}, Expect(wrong_host_verified=True)) == ["None: not verified"]


def test_no_host_asked():
    for expect in (Expect(verified=True), Expect(forwarded_proto="https"), Expect(wrong_host_verified=False)):
        assert judge({}, expect) == ["no host was asked"]
        assert judge(_facts("ingress-terminates") | {"hosts": {}}, expect) == ["no host was asked"]


def test_the_labs_expectation_checks_every_key():
    probe = _probe("load-balancer-terminates")
    facts = _facts("load-balancer-terminates")
    problem = "SSL certificate problem: unable to get local issuer certificate"
    broken = _host(facts, SHOP, verified=False, problem=problem, issuer="CN=other", forwarded_proto=None)
    broken |= {"wrong": facts["wrong"] | {"verified": True}}
    assert judge(broken, probe.expectation("metallb")) == [
        f"{SHOP}: certificate {SHOP} from other, {problem}",
        f"{SHOP}: backend got X-Forwarded-Proto none", f"{WRONG}: verified"]


# ------------------------------------------------------------------ what the expectations say, the spec

def test_descriptions():
    assert Expect(verified=True, forwarded_proto="https", wrong_host_verified=False).describe() == (
        "each host's certificate verifies, backend gets X-Forwarded-Proto: https, an unknown host does not verify")
    assert Expect(verified=False, wrong_host_verified=True).describe() == (
        "no certificate verifies, an unknown host verifies")


def test_predictions_derive_from_the_expectation():
    assert Expect(verified=True, forwarded_proto="https").prediction() == Prediction(("https", "http"), "https")
    assert Expect(forwarded_proto="http").prediction().right == "http"
    assert Expect(verified=True, wrong_host_verified=False).prediction() is None


def test_expectation_bounds():
    for bad in ({"forwarded_proto": "HTTPS"}, {"forwarded_proto": ""}, {"verified": None}, {}, {"sni": True}):
        with pytest.raises(ValueError):
            Expect.model_validate(bad)


def _spec(**keys):
    return tls.Spec.model_validate({"id": "ingress-terminates", "claim": "C27", "kind": "tls", "terminator": "ingress",
                                    "service": "echo", "hosts": [SHOP], "expect": {"verified": True}} | keys)


def test_spec_defaults_and_bounds():
    spec = _spec()
    assert (spec.wrong_host, spec.path, spec.changes_cluster()) == (WRONG, "ingress-terminates", False)
    for bad in ({"hosts": []}, {"hosts": [f"h{i}.svclab.test" for i in range(5)]}, {"hosts": ["Shop.svclab.test"]},
                {"hosts": ["shop.svclab.test; rm"]}, {"wrong_host": "-x"}, {"terminator": "nginx"},
                {"service": "svclab-traefik/traefik"}):
        with pytest.raises(ValueError):
            _spec(**bad)
