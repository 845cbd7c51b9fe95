"""What kube-proxy programmed on each node for one Service.

In iptables mode kube-proxy writes chains named after a hash (KUBE-SVC-…, KUBE-SEP-…) and marks
most rules with a comment naming the Service ("ns/name", "ns/name:port cluster IP", "ns/name
has no local endpoints"). The filter below keeps the rules whose comment names the Service and
every rule of the per-Service chains they jump to, followed to the end. In nftables mode the
per-Service chains carry "ns/name/" in their own names, and the shared maps hold one element per
Service port.

In ipvs mode the forwarding is in the kernel's IPVS table, not in iptables: one virtual server per
address and port the Service answers on (its ClusterIP:port, each node address:nodePort, each
external or load-balancer address:port), with its endpoints as real servers:

    TCP  10.96.14.20:80 rr
      -> 10.244.1.7:8080              Masq    1      0          0

(`ipvsadm -Ln`, or the same in hex from /proc/net/ip_vs on a node without ipvsadm; svclab/ipvs.py
parses both). The virtual servers are kept by address and port, since they carry no names. The nat
rules of this mode match ipsets that all Services share (KUBE-CLUSTER-IP, KUBE-NODE-PORT-TCP,
KUBE-LOAD-BALANCER, ...), so few of them name one Service.

The filtering functions are pure (text in, lines out); ``node_rules`` reads the text from the
nodes.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict

import yaml

from . import ipvs
from .cluster import node_containers
from .errors import SvclabError, UsageError

__all__ = ["NodeRules", "iptables_rules", "nft_rules", "names_service", "parse_service", "node_rules",
           "ipvs_table", "proxy_mode", "render"]

SERVICE_CHAINS = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SVL-")
NFT_SERVICE_CHAINS = ("service-", "external-", "local-", "endpoint-", "firewall-", "cluster-")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_SERVICE_ARG = re.compile(rf"^({_DNS_LABEL})/({_DNS_LABEL})$")
_COMMENT = re.compile(r'--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))')
_TARGET = re.compile(r"\s(?:-j|-g|--jump|--goto) (\S+)")
_RULE = re.compile(r"^-A (\S+) ")
_NFT_BLOCK = re.compile(r"^\s*(chain|map|set) (\S+) \{\s*$")
_NFT_JUMP = re.compile(r"\b(?:jump|goto) ([^\s,;}]+)")


def parse_service(arg: str | None) -> tuple[str, str]:
    """NAMESPACE/NAME from the command line, checked."""
    match = _SERVICE_ARG.match(arg or "")
    if not match:
        raise UsageError(f"--service must be NAMESPACE/NAME, got {arg!r}",
                         hint="for example --service svclab-nodeport/echo")
    return match.group(1), match.group(3)


def names_service(comment: str, service: str) -> bool:
    """Whether a kube-proxy rule comment is about SERVICE ("ns/name"): "ns/name", "ns/name:port
    …", "… for ns/name …", but not another Service whose name starts the same ("ns/name-2")."""
    return re.search(rf"(?:^|\s){re.escape(service)}(?::[\w-]+)?(?=\s|$)", comment) is not None


def _comment(line: str) -> str:
    match = _COMMENT.search(line)
    return (match.group(1) if match.group(1) is not None else match.group(2)) if match else ""


def _target(line: str) -> str | None:
    match = _TARGET.search(line)
    return match.group(1) if match else None


def _follow(rules: list[tuple[str, str]], service: str) -> list[str]:
    """The rules (chain, line) about SERVICE plus all rules of the per-Service chains they reach."""
    by_chain: dict[str, list[int]] = defaultdict(list)
    for i, (chain, _) in enumerate(rules):
        by_chain[chain].append(i)
    keep = {i for i, (_, line) in enumerate(rules) if names_service(_comment(line), service)}
    pending = [c for i in keep for c in (rules[i][0], _target(rules[i][1])) if c and c.startswith(SERVICE_CHAINS)]
    visited: set[str] = set()
    while pending:  # each chain is visited once, so this ends after at most len(by_chain) rounds
        chain = pending.pop()
        if chain in visited:
            continue
        visited.add(chain)
        for i in by_chain.get(chain, []):
            keep.add(i)
            target = _target(rules[i][1])
            if target and target.startswith(SERVICE_CHAINS) and target not in visited:
                pending.append(target)
    return [rules[i][1] for i in sorted(keep)]


def iptables_rules(text: str, service: str) -> dict[str, list[str]]:
    """From iptables-save output, per table, the rules that implement SERVICE ("ns/name")."""
    tables: dict[str, list[tuple[str, str]]] = {}
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            tables.setdefault(table, [])
        elif table is not None and (match := _RULE.match(line)):
            tables[table].append((match.group(1), line))
    kept = {name: _follow(rules, service) for name, rules in tables.items()}
    return {name: lines for name, lines in kept.items() if lines}


def _nft_blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(kind, name, body lines) of each chain, map and set in `nft list table` output."""
    blocks, current = [], None
    for line in text.splitlines():
        if current is None:
            if match := _NFT_BLOCK.match(line):
                current = (match.group(1), match.group(2), [])
        elif line.strip() == "}":
            blocks.append(current)
            current = None
        else:
            current[2].append(line.strip())
    return blocks


def _nft_elements(body: list[str]) -> list[str]:
    """The elements of a map or set body: `elements = { a : goto x, b : goto y }` over lines."""
    text = " ".join(body)
    match = re.search(r"elements = \{(.*)\}", text)
    return [e.strip() for e in match.group(1).split(",") if e.strip()] if match else []


def nft_rules(text: str, service: str) -> list[str]:
    """From `nft list table ip kube-proxy` output, what implements SERVICE ("ns/name"): its
    chains (named "<kind>-<hash>-ns/name/proto/port…"), the chains they reach, and the elements
    of the shared maps and sets that send traffic to them."""
    marker = re.compile(rf"^(?:{'|'.join(NFT_SERVICE_CHAINS)})[A-Z0-9]+-{re.escape(service)}/")
    blocks = _nft_blocks(text)
    chains = {name: body for kind, name, body in blocks if kind == "chain"}
    pending = [name for name in chains if marker.match(name)]
    visited: set[str] = set()
    while pending:  # each chain once
        name = pending.pop()
        if name in visited:
            continue
        visited.add(name)
        for line in chains[name]:
            pending.extend(t for t in _NFT_JUMP.findall(line) if t in chains and t.startswith(NFT_SERVICE_CHAINS))
    out = []
    for kind, name, body in blocks:
        if kind == "chain" and name in visited:
            out.append(f"chain {name} {{")
            out.extend(f"\t{line}" for line in body)
            out.append("}")
        elif kind in ("map", "set"):
            out.extend(f"{kind} {name}: {element}" for element in _nft_elements(body)
                       if any(t in visited for t in _NFT_JUMP.findall(element))
                       or names_service(_nft_comment(element), service))
        elif kind == "chain":
            out.extend(f"chain {name}: {line}" for line in body if names_service(_nft_comment(line), service))
    return out


def _nft_comment(line: str) -> str:
    match = re.search(r'comment "((?:[^"\\]|\\.)*)"', line)
    return match.group(1) if match else ""


# ---------------------------------------------------------------- reading the nodes

@dataclasses.dataclass
class NodeRules:
    node: str
    mode: str
    sections: dict[str, list]  # "nat", "filter" or "nftables" → lines; "ipvs" → ipvs.VirtualServer


def proxy_mode(kube) -> str:
    """kube-proxy's mode from its ConfigMap (an empty mode means iptables on Linux)."""
    try:
        cm = kube.get("v1", "ConfigMap", "kube-proxy", "kube-system") or {}
        config = yaml.safe_load((cm.get("data") or {}).get("config.conf") or "") or {}
    except Exception:  # noqa: BLE001 - no ConfigMap or unreadable: kube-proxy's default applies
        return "iptables"
    return str(config.get("mode") or "iptables")


def _exec(container, argv: list[str]) -> str:
    result = container.exec_run(argv)
    output = result.output.decode(errors="replace")
    if result.exit_code != 0:
        last = output.strip().splitlines()[-1] if output.strip() else f"exit {result.exit_code}"
        raise SvclabError(f"`{' '.join(argv)}` failed on node {container.name}: {last[:200]}")
    return output


def ipvs_table(container) -> list[ipvs.VirtualServer]:
    """The node's IPVS table: from ipvsadm where the node has it, else from the kernel's own listing."""
    if container.exec_run(["sh", "-c", "command -v ipvsadm"]).exit_code == 0:
        return ipvs.parse_ipvsadm(_exec(container, ["ipvsadm", "-Ln"]))
    return ipvs.parse_proc_ip_vs(_exec(container, ["cat", "/proc/net/ip_vs"]))


def node_rules(container, mode: str, service: str, svc: dict | None = None) -> NodeRules:
    """Reads one node's rules (CONTAINER: its docker container) and keeps SERVICE's ("ns/name").
    In ipvs mode SVC, the Service object, says which virtual servers are its."""
    if mode == "nftables":
        text = _exec(container, ["nft", "list", "table", "ip", "kube-proxy"])
        return NodeRules(container.name, mode, {"nftables": nft_rules(text, service)})
    if mode == "ipvs":
        if svc is None:
            raise ValueError("node_rules in ipvs mode needs the Service object")
        nat = iptables_rules(_exec(container, ["iptables-save", "-t", "nat"]), service).get("nat", [])
        return NodeRules(container.name, mode, {"nat": nat, "ipvs": ipvs.service_virtual_servers(ipvs_table(container), svc)})
    sections = {}
    for table in ("nat", "filter"):
        text = _exec(container, ["iptables-save", "-t", table])
        sections[table] = iptables_rules(text, service).get(table, [])
    return NodeRules(container.name, mode, sections)


def render(rules: list[NodeRules]) -> str:
    """Plain text: per node, per table, the kept lines (or a note that there are none)."""
    out = []
    for node in rules:
        out.append(f"== node {node.node} (kube-proxy {node.mode})")
        for section, lines in node.sections.items():
            out.append(f"-- {section}")
            if section == "ipvs":
                out.extend(ipvs.format_table(lines) or ["(no IPVS virtual server for this Service)"])
            elif not lines and node.mode == "ipvs":
                out.append("(none names this Service: in ipvs mode these rules match ipsets shared by all Services)")
            else:
                out.extend(lines or ["(no rules for this Service)"])
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def collect(settings, service_arg: str | None, node: str | None = None) -> tuple[str, list[NodeRules]]:
    """A one-line summary of the Service and the rules each node (or NODE only) holds for it:
    read inside each node's container on svclab's own clusters, inside each node's kube-proxy pod
    on a cluster svclab did not make (see KubeProxyPod)."""
    namespace, name = parse_service(service_arg)
    if settings.targets_own_cluster:
        from .kube import Kube
        from .network import docker_client

        if not settings.own_kubeconfig.exists():
            raise UsageError(f"cluster {settings.cluster_name} is not up", hint="run `svclab cluster.up` first")
        kube, where = Kube(settings.own_kubeconfig), f"cluster {settings.cluster_name}"
        svc = _service(kube, namespace, name, where)
        nodes = sorted(node_containers(docker_client(), settings.cluster_name, stopped=False), key=lambda c: c.name)
        return _summary(svc), _read(kube, nodes, node, where, svc, "see the node names with `svclab cluster.status`")
    from . import target

    made = settings.cluster_dir.exists()
    try:
        kube = target.kube_for(settings)
        target.check_reachable(kube, settings)
        where = f"the cluster of context {settings.context}"
        svc = _service(kube, namespace, name, where)
        nodes = sorted((KubeProxyPod(kube, pod) for pod in kube_proxy_pods(kube)), key=lambda p: p.name)
        if not nodes:
            raise UsageError(f"no kube-proxy pod runs in kube-system on {where}, so there are no rules of its to read",
                             hint="without kube-proxy (a replacement such as Cilium's; k3s runs it inside its own "
                                  "agent) the Service rules live elsewhere: read them on the node itself")
        return _summary(svc), _read(kube, nodes, node, where, svc, "see them with `kubectl get nodes`")
    finally:
        if not made:   # only the discovery cache of this one read: leave no state folder behind
            target.forget(settings)


def _service(kube, namespace: str, name: str, where: str) -> dict:
    svc = kube.get("v1", "Service", name, namespace)
    if svc is None:
        raise UsageError(f"Service {namespace}/{name} does not exist in {where}",
                         hint="check the name; a lab's Services live in namespace svclab-<lab>")
    return svc


def _read(kube, nodes: list, node: str | None, where: str, svc: dict, names_hint: str) -> list[NodeRules]:
    if node is not None:
        nodes = [n for n in nodes if n.name == node]
        if not nodes:
            raise UsageError(f"{where} has no running node {node!r}", hint=names_hint)
    mode = proxy_mode(kube)
    service = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
    return [node_rules(n, mode, service, svc) for n in nodes]


def kube_proxy_pods(kube) -> list[dict]:
    """The running kube-proxy pods (kube-system, label k8s-app=kube-proxy, as kubeadm, kind and
    most distributions deploy it)."""
    pods = kube.list("v1", "Pod", "kube-system", label_selector="k8s-app=kube-proxy")
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and (p.get("spec") or {}).get("nodeName")]


class KubeProxyPod:
    """A node's kube-proxy pod, commanded as node_rules commands a kind node's container. It runs
    in the node's own network namespace (hostNetwork) and its image carries iptables-save and nft
    for its own work, so running them there (`kubectl exec`, needing pods/exec in kube-system)
    reads the node's rules and adds nothing to the cluster."""

    def __init__(self, kube, pod: dict):
        self.kube, self.pod = kube, pod["metadata"]["name"]
        self.name = pod["spec"]["nodeName"]

    def exec_run(self, argv: list[str]):
        import types

        code, output = self.kube.exec("kube-system", self.pod, argv)
        return types.SimpleNamespace(exit_code=code, output=output.encode())


def _summary(svc: dict) -> str:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    ports = ", ".join(f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                      for p in spec.get("ports") or [])
    ingress = [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]
    line = (f"Service {meta['namespace']}/{meta['name']}: type {spec.get('type')}, "
            f"ClusterIP {spec.get('clusterIP')}, ports {ports or 'none'}")
    if ingress:
        line += f", external {', '.join(ingress)}"
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        line += f", externalTrafficPolicy {spec.get('externalTrafficPolicy')}"
    return line
