"""tls: HTTPS terminated in front of the Services, at the Ingress controller or at an HAProxy beside
the cluster. svclab makes a throwaway CA and a certificate per host (svclab/certs.py); for the
Ingress controller it stores each as the Secret the lab's Ingress names, for HAProxy it copies them
into its container. The outside client then asks each host over HTTPS, verifying the chain against
the lab CA and the name against the SNI it sent, and the backend reports the X-Forwarded-Proto
header it got over plain HTTP; a host without a certificate shows what the terminator does then."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from ...certs import CA_NAME, LabCA
from ...errors import SvclabError
from ...kube import poll
from ..base import HOST_NAME, NAME, Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import external_ip, lab_address, node_port, outside_run, service, wait_external_ip
from .haproxy import KUBE_PROXY_HEALTH, TLS_PORT, _stats, haproxy_config, settled

USES_OUTSIDE = True   # sends from the outside client


def own_cluster(spec: "Spec") -> str | None:
    return "runs HAProxy beside svclab's own nodes" if spec.terminator == "haproxy" else None


EXAMPLE = """
- id: ingress-terminates
  claim: C27
  path: "outside client → Ingress controller :443 (SNI shop.tls.svclab.test) → echo over HTTP"
  kind: tls
  terminator: ingress
  service: echo
  hosts: [shop.tls.svclab.test, blog.tls.svclab.test]
  expect: {verified: true, forwarded_proto: https, wrong_host_verified: false}
"""

# In the outside client, one of each per probe (probes of a lab run side by side).
CA_FILE = "/tmp/svclab-ca-{probe}.pem"
BODY_FILE = "/tmp/svclab-tls-body-{probe}"


def secret_name(host: str) -> str:
    """The Secret the lab's Ingress names for HOST's certificate: its first label and -tls."""
    return f"{host.split('.', 1)[0]}-tls"


class Expect(Expectation):
    verified: bool | None = Field(None, description=(
        "Every host's certificate chain verifies against the lab CA and names the host the client asked for (SNI)."))
    forwarded_proto: str | None = Field(
        None, pattern=r"^[a-z]+$", description="The X-Forwarded-Proto header the backend got with every request.")
    wrong_host_verified: bool | None = Field(
        None, description="A host without a certificate still gets one that verifies (false: it does not).")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "verified": lambda: "each host's certificate verifies" if value else "no certificate verifies",
            "forwarded_proto": lambda: f"backend gets X-Forwarded-Proto: {value}",
            "wrong_host_verified": lambda: "an unknown host verifies" if value else "an unknown host does not verify",
        }[key]()

    def prediction(self) -> Prediction | None:
        if self.forwarded_proto in ("https", "http"):
            return Prediction(("https", "http"), self.forwarded_proto)
        return None


class Spec(ProbeSpec[Expect]):
    """Terminates TLS for HOSTS at TERMINATOR in front of SERVICE and asks each host over HTTPS
    from the outside client, then WRONG_HOST."""

    kind: Literal["tls"]
    terminator: Literal["ingress", "haproxy"] = Field(description=(
        "ingress: the Ingress controller (the lab's Ingress names the Secret HOST's first label + '-tls'); "
        "haproxy: an HAProxy beside the cluster in front of SERVICE's nodePort on every node."))
    service: str = Field(pattern=NAME, description="The lab's Service behind the terminator.")
    hosts: list[Annotated[str, StringConstraints(pattern=HOST_NAME)]] = Field(
        min_length=1, max_length=4, description="Host names to make certificates for.")
    wrong_host: str = Field("unknown.svclab.test", pattern=HOST_NAME, description="A host with no certificate.")

    @model_validator(mode="after")
    def _one_secret_per_host(self):
        names = [secret_name(h) for h in self.hosts]
        if len(set(names)) < len(names):
            raise ValueError("hosts: two hosts share a first label, and so a Secret name (<first label>-tls)")
        if self.wrong_host in self.hosts:
            raise ValueError("wrong_host must be a host without a certificate, not one of hosts")
        return self


_SUBJECT = re.compile(r"^\*\s+subject: (.*)$", re.M)
_ISSUER = re.compile(r"^\*\s+issuer: (.*)$", re.M)
_PROBLEM = re.compile(r"^curl: \(\d+\) (.*)$", re.M)


def https_script(host: str, ip: str, port: int, *, verify: bool, probe: str) -> str:
    """One HTTPS request to HOST (SNI and Host) at IP:PORT for the backend's X-Forwarded-Proto;
    curl's verbose log, then 0x1e and the body (which has no final newline). HOST, IP and PROBE
    (an id) are validated by the caller."""
    check = f"--cacert {CA_FILE.format(probe=probe)}" if verify else "-k"
    body = BODY_FILE.format(probe=probe)
    return (f"curl -sS -v {check} -m 5 -o {body} --resolve {host}:{int(port)}:{ip} "
            f"'https://{host}:{int(port)}/header?key=X-Forwarded-Proto'; s=$?; printf '\\036%s\\n' $s; "
            f"[ $s -eq 0 ] && while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < {body}; true")


def parse_https(output: str) -> dict[str, Any]:
    log, _, rest = output.partition("\x1e")
    status, _, body = rest.partition("\n")
    subject, issuer, problem = _SUBJECT.search(log), _ISSUER.search(log), _PROBLEM.search(log)
    return {"ok": status.strip() == "0", "subject": subject.group(1).strip() if subject else None,
            "issuer": issuer.group(1).strip() if issuer else None,
            "problem": problem.group(1).strip() if problem else None, "body": body.strip()}


def _common_name(text: str | None) -> str | None:
    match = re.search(r"CN ?= ?([^,;/]+)", text or "")
    return match.group(1).strip() if match else None


def _ingress_target(ctx, spec: Spec, ca: LabCA) -> tuple[str, int, list[str]]:
    from ...ingress import NAMESPACE

    secrets = []
    for host in spec.hosts:
        issued = ca.issue(host)
        secrets.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                        "metadata": {"name": secret_name(host), "namespace": ctx.namespace},
                        "stringData": {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}})
    ctx.kube.apply(secrets)
    notes = [f"Secrets {', '.join(secret_name(h) for h in spec.hosts)}: certificates signed by {CA_NAME}"]
    traefik = service(ctx, f"{NAMESPACE}/traefik")
    port = next((p for p in traefik["spec"].get("ports") or [] if p.get("name") == "websecure"), None)
    if port is None:
        raise SvclabError("the Ingress controller's Service has no websecure (443) port",
                          hint="`svclab cluster.up` applies svclab's Traefik again")
    timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 1
    ip = wait_external_ip(ctx, f"{NAMESPACE}/traefik", timeout) if ctx.env.provider.expects_address \
        else external_ip(traefik)
    if ip:
        return ip, int(port["port"]), notes + [f"the Ingress controller terminates TLS at {ip}:{port['port']}"]
    node = ctx.topology.nodes[0]
    notes.append(f"no external address: the Ingress controller through {node.name}'s nodePort {port['nodePort']}")
    return node.ip, int(port["nodePort"]), notes


def _haproxy_target(ctx, spec: Spec, ca: LabCA) -> tuple[str, int, list[str]]:
    from ... import site
    from ...network import docker_client

    _, port = node_port(ctx, spec.service, for_what="HAProxy to send to")
    servers = [(n.name, lab_address(ctx, n.ip)) for n in ctx.topology.nodes]
    files = [("/etc/svclab/haproxy.cfg", haproxy_config(servers, port, KUBE_PROXY_HEALTH,
                                                        "/healthz", tls_certs="/etc/svclab/certs"))]
    for host in spec.hosts:
        issued = ca.issue(host)
        files.append((f"/etc/svclab/certs/{host}.pem", issued.cert_pem + issued.key_pem))
    machine = site.Machine(role=f"haproxy-tls-{ctx.lab.id}-{spec.service}", image=site.haproxy_image(),
                           user="65534:65534", argv=("haproxy", "-db", "-f", "/etc/svclab/haproxy.cfg"),
                           files=tuple(files))
    address = lab_address(ctx, site.ensure(docker_client(), cluster=ctx.settings.cluster_name,
                                           network=ctx.settings.network, machine=machine))
    poll(lambda: _stats(ctx, address), settled, timeout=ctx.settings.wait_timeout / 4, interval=0.25)
    return address, TLS_PORT, [f"HAProxy at {address}:{TLS_PORT} terminates TLS with certificates signed by "
                               f"{CA_NAME}, in front of nodePort {port} on {len(servers)} nodes"]


def observe(ctx, spec: Spec) -> Observation:
    ca = LabCA(ctx.settings.cluster_dir / "tls")
    target = _ingress_target if spec.terminator == "ingress" else _haproxy_target
    ip, port, evidence = target(ctx, spec, ca)
    ip = lab_address(ctx, ip)
    pem = ca.pem()
    if "'" in pem:
        raise SvclabError("the lab CA's certificate is not plain PEM")
    outside_run(ctx, f"printf '%s' '{pem}' > {CA_FILE.format(probe=spec.id)}", timeout=5)
    try:
        seen = _requests(ctx, spec, ip, port, evidence)
    finally:   # the outside client may be the user's own container: leave nothing in it (svclab's has no rm)
        outside_run(ctx, f"rm -f {CA_FILE.format(probe=spec.id)} {BODY_FILE.format(probe=spec.id)} 2>/dev/null || :",
                    timeout=5)
    evidence.append(f"behind the {spec.terminator}, Service {spec.service} and its pods speak plain HTTP: no key in the cluster's "
                    "traffic path" if spec.terminator == "haproxy" else
                    f"behind the {spec.terminator}, Service {spec.service} and its pods speak plain HTTP")
    facts = {"terminator": spec.terminator, "address": f"{ip}:{port}", "ca": CA_NAME,
             "hosts": {h: seen[h] for h in spec.hosts}, "wrong_host": spec.wrong_host, "wrong": seen[spec.wrong_host]}
    ok = sum(1 for h in spec.hosts if _verified_for(seen[h], h))
    return Observation(f"{ok}/{len(spec.hosts)} hosts verified at the {spec.terminator}; {spec.wrong_host} "
                       + ("verified" if seen[spec.wrong_host]["verified"] else "not verified"), evidence, facts)


def _requests(ctx, spec: Spec, ip: str, port: int, evidence: list[str]) -> dict[str, dict[str, Any]]:
    """Each host's HTTPS request, verified against the lab CA and not, as seen by the outside client."""
    seen: dict[str, dict[str, Any]] = {}
    for host in [*spec.hosts, spec.wrong_host]:
        _, strict = outside_run(ctx, https_script(host, ip, port, verify=True, probe=spec.id), timeout=8)
        _, loose = outside_run(ctx, https_script(host, ip, port, verify=False, probe=spec.id), timeout=8)
        checked, presented = parse_https(strict), parse_https(loose)
        seen[host] = {"verified": checked["ok"], "problem": checked["problem"], "subject": presented["subject"],
                      "issuer": presented["issuer"], "forwarded_proto": checked["body"] if checked["ok"] else None}
        evidence.append(f"https://{host}:{port} (SNI {host}) → certificate {_common_name(presented['subject']) or '?'}"
                        f" from {_common_name(presented['issuer']) or '?'}: "
                        + (f"verified; backend got X-Forwarded-Proto: {checked['body'] or '(none)'}" if checked["ok"]
                           else f"not verified ({checked['problem'] or 'no answer'})"))
    return seen


def _verified_for(seen: dict[str, Any], host: str) -> bool:
    return bool(seen.get("verified")) and _common_name(seen.get("subject")) == host \
        and _common_name(seen.get("issuer")) == CA_NAME


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    hosts = facts.get("hosts") or {}
    if not hosts:
        return ["no host was asked"]
    if expect.verified is not None:
        for host, seen in sorted(hosts.items()):
            good = _verified_for(seen, host)
            if good != expect.verified:
                problems.append(f"{host}: " + ("verified" if good else f"certificate {_common_name(seen.get('subject')) or '?'}"
                                               f" from {_common_name(seen.get('issuer')) or '?'}"
                                               + (f", {seen['problem']}" if seen.get("problem") else "")))
    if expect.forwarded_proto is not None:
        for host, seen in sorted(hosts.items()):
            if seen.get("forwarded_proto") != expect.forwarded_proto:
                problems.append(f"{host}: backend got X-Forwarded-Proto {seen.get('forwarded_proto') or 'none'}")
    if expect.wrong_host_verified is not None:
        wrong = facts.get("wrong") or {}
        if bool(wrong.get("verified")) != expect.wrong_host_verified:
            problems.append(f"{facts.get('wrong_host')}: " + ("verified" if wrong.get("verified") else "not verified"))
    return problems
