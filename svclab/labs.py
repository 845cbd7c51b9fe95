"""Labs as data: ``labs/<id>/lab.yaml`` names its manifests and its probes, each probe with the
expectation that holds for every provider (``expect``) or for one (``expect_by_provider``).

Running a lab applies its manifests into the lab's own namespace, waits for its workloads, runs
the probes concurrently and turns each observation into a verdict.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import string
import time
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from . import probes, resources
from .errors import SvclabError, UsageError
from .config import pins
from .kube import load_manifests, poll
from .mirror import fetch
from .lifecycle import SYSTEM_NAMESPACE, Environment, agnhost_image

__all__ = ["Lab", "Probe", "Result", "LABS_DIR", "available_labs", "lab_ids", "load_lab", "run_lab", "start_lab", "run_probe"]

LABS_DIR = resources.labs_dir()
_REQUIRED = {
    "service": ("service", "field"),
    "http": ("service", "via"),
    "dns": ("service",),
    "health-check": ("service",),
    "addresses": (),
    "policy-flip": ("service",),
    "rejects": ("manifest",),
    "pending": ("service",),
    "failover": ("service",),
}


@dataclasses.dataclass(frozen=True)
class Probe:
    id: str
    claim: str
    path: str
    spec: Mapping[str, Any]

    def expectation(self, provider: str) -> dict[str, Any]:
        by_provider = self.spec.get("expect_by_provider") or {}
        return dict(by_provider.get(provider, self.spec.get("expect") or {}))

    @property
    def predict(self) -> str:
        """The question step mode asks before observing (empty when the lab has none)."""
        return str(self.spec.get("predict") or "").strip()

    @property
    def why(self) -> str:
        """Step mode's short explanation of what was observed (empty when the lab has none)."""
        return str(self.spec.get("why") or "").strip()


@dataclasses.dataclass(frozen=True)
class Lab:
    id: str
    title: str
    claims: tuple[str, ...]
    manifests: tuple[str, ...]
    deployments: tuple[str, ...]
    probes: tuple[Probe, ...]
    directory: Traversable
    disruptive: bool = False    # changes the cluster on purpose (stops a node): runs last
    upstream: tuple[str, ...] = ()  # pinned upstream manifests (pins.toml sections) applied first
    needs_ingress: bool = False     # probes the cluster's Ingress controller (cluster.up --ingress)

    @property
    def namespace(self) -> str:
        return f"svclab-{self.id}"


@dataclasses.dataclass
class Result:
    lab: str
    probe: str
    claim: str
    path: str
    expected: str
    observed: str
    evidence: list[str]
    passed: bool
    problems: list[str]
    seconds: float
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)


def lab_ids() -> list[str]:
    """Every lab folder's id, without loading the definitions."""
    return sorted(p.name for p in LABS_DIR.iterdir() if (p / "lab.yaml").is_file())


def available_labs() -> list[str]:
    """Lab ids in the order lab.all runs them: disruptive labs last."""
    return sorted(lab_ids(), key=lambda lab_id: load_lab(lab_id).disruptive)


def _bad(lab: str, message: str) -> UsageError:
    return UsageError(f"labs/{lab}/lab.yaml: {message}", hint="fix the lab definition")


def parse_lab(lab_id: str, data: Any, directory: Traversable) -> Lab:
    if not isinstance(data, dict):
        raise _bad(lab_id, "expected a mapping")
    for key in ("title", "probes"):
        if key not in data:
            raise _bad(lab_id, f"missing {key!r}")
    parsed = []
    seen = set()
    for name in data.get("upstream") or []:
        if not (pins().get(name) or {}).get("files"):
            raise _bad(lab_id, f"upstream {name!r} has no files pinned in svclab/pins.toml")
    for i, raw in enumerate(data["probes"] or []):
        if not isinstance(raw, dict) or "id" not in raw:
            raise _bad(lab_id, f"probe #{i + 1} has no id")
        pid = raw["id"]
        if pid in seen:
            raise _bad(lab_id, f"probe id {pid!r} is used twice")
        seen.add(pid)
        kind = raw.get("kind")
        if kind not in probes.PROBE_KINDS:
            raise _bad(lab_id, f"probe {pid!r}: unknown kind {kind!r} (known: {', '.join(probes.PROBE_KINDS)})")
        missing = [f for f in _REQUIRED[kind] if f not in raw]
        if missing:
            raise _bad(lab_id, f"probe {pid!r}: missing {missing[0]!r}")
        if kind == "http":
            if raw["via"] not in probes.HTTP_VIA:
                raise _bad(lab_id, f"probe {pid!r}: via must be one of {', '.join(probes.HTTP_VIA)}")
            if raw.get("from", "outside") not in probes.HTTP_FROM:
                raise _bad(lab_id, f"probe {pid!r}: from must be one of {', '.join(probes.HTTP_FROM)}")
            if raw.get("nodes", "all") not in probes.NODE_SETS:
                raise _bad(lab_id, f"probe {pid!r}: nodes must be one of {', '.join(probes.NODE_SETS)}")
        for text in ("predict", "why"):
            if text in raw and not isinstance(raw[text], str):
                raise _bad(lab_id, f"probe {pid!r}: {text} must be text")
        if not raw.get("expect") and not raw.get("expect_by_provider"):
            raise _bad(lab_id, f"probe {pid!r} has no expectation")
        for expect in [raw.get("expect") or {}, *(raw.get("expect_by_provider") or {}).values()]:
            try:
                probes.check_expectation(expect, {})
            except UsageError as e:
                raise _bad(lab_id, f"probe {pid!r}: {e.message}") from None
        parsed.append(Probe(pid, str(raw.get("claim", "")), str(raw.get("path", pid)), raw))
    return Lab(
        id=lab_id, title=str(data["title"]), claims=tuple(data.get("claims") or ()),
        manifests=tuple(data.get("manifests") or ()), deployments=tuple(data.get("deployments") or ()),
        probes=tuple(parsed), directory=directory, disruptive=bool(data.get("disruptive", False)),
        upstream=tuple(data.get("upstream") or ()), needs_ingress=bool(data.get("needs_ingress", False)),
    )


def load_lab(lab_id: str) -> Lab:
    path = LABS_DIR / lab_id / "lab.yaml"
    if not path.is_file():
        raise UsageError(f"unknown lab {lab_id!r}", hint=f"choose one of {', '.join(available_labs())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise _bad(lab_id, "not valid YAML") from None
    return parse_lab(lab_id, data, LABS_DIR / lab_id)


@dataclasses.dataclass
class ProbeContext:
    """What a probe may use: the cluster, the lab's namespace, and the topology seen before probing."""

    env: Environment
    lab: Lab
    topology: probes.Topology
    client_pod: str

    @property
    def kube(self):
        return self.env.kube

    @property
    def settings(self):
        return self.env.settings

    @property
    def namespace(self) -> str:
        return self.lab.namespace

    @property
    def outside(self):
        return self.env.outside

    def render(self, manifest: str) -> str:
        return render_manifest(self.lab, manifest)


def render_manifest(lab: Lab, manifest: str) -> str:
    """The text of one of LAB's manifests (its own folder first, then manifests/), placeholders filled."""
    for base in (lab.directory, resources.manifests_dir()):
        path = base / manifest
        if path.is_file():
            break
    else:
        raise UsageError(f"lab {lab.id}: manifest {manifest} not found in labs/{lab.id}/ or manifests/")
    try:
        return string.Template(path.read_text()).substitute(
            AGNHOST_IMAGE=agnhost_image(), TRAEFIK_IMAGE=pins()["traefik"]["image"], NAMESPACE=lab.namespace)
    except (KeyError, ValueError) as e:
        raise UsageError(f"{path}: unknown placeholder {e}", hint="use ${AGNHOST_IMAGE}, ${TRAEFIK_IMAGE} or ${NAMESPACE}") from None


def _topology(env: Environment, namespace: str) -> tuple[probes.Topology, str]:
    core = env.kube.core
    nodes = []
    for n in core.list_node().items:
        ip = next((a.address for a in n.status.addresses if a.type == "InternalIP"), "")
        nodes.append(probes.NodeInfo(n.metadata.name, ip, n.spec.pod_cidr,
                                     (n.metadata.labels or {}).get("svclab.io/backend-node") == "true"))
    pods = core.list_namespaced_pod(namespace).items
    pod_nodes = {p.metadata.name: p.spec.node_name for p in pods if p.status.phase == "Running"}
    clients = [p for p in core.list_namespaced_pod(SYSTEM_NAMESPACE,
                                                   label_selector="app.kubernetes.io/name=svclab-client").items
               if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
    if not clients:
        raise SvclabError("the in-cluster client pod is not running", hint="run `svclab cluster.up` again")
    topo = probes.Topology(nodes=sorted(nodes, key=lambda n: n.name), pod_nodes=pod_nodes,
                           client_ip=env.pool.client_ip, client_pod_ip=clients[0].status.pod_ip, pool=env.pool)
    return topo, clients[0].metadata.name


def prepare(env: Environment, lab: Lab) -> None:
    kube = env.kube
    for name in lab.upstream:
        for item in pins()[name]["files"]:
            data = fetch(item["url"], item["sha256"], cache_dir=env.settings.cache_dir, mirror=env.settings.mirror)
            kube.apply(load_manifests(data.decode()))
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lab.namespace}}])
    objects = [obj for m in lab.manifests for obj in load_manifests(render_manifest(lab, m))]
    kube.apply(objects, namespace=lab.namespace)
    for name in lab.deployments:
        kube.wait_deployment(lab.namespace, name, timeout=env.settings.wait_timeout)
    kube.wait_service_endpoints(lab.namespace, timeout=env.settings.wait_timeout)


def _observe_and_check(ctx: ProbeContext, probe: Probe, expect: dict[str, Any]) -> tuple[probes.Observation, list[str]]:
    try:
        seen = probes.observe(ctx, probe.spec | {"expect": expect})
        return seen, probes.check_expectation(expect, seen.facts)
    except SvclabError as e:
        return probes.Observation(f"probe failed: {e}", [str(e)], {}), [str(e)]
    except Exception as e:  # noqa: BLE001 - one broken probe must not hide the others' results
        return probes.Observation(f"probe failed: {type(e).__name__}", [str(e)[:300]], {}), \
            [f"{type(e).__name__}: {str(e)[:200]}"]


def settles(expect: Mapping[str, Any]) -> bool:
    """Whether a probe observes a state the cluster converges to (and may be asked again until it
    does) rather than the absence of something, which one look after convergence must show."""
    return expect.get("answers") is not False and not {"pending", "message", "recovers_within", "flips_source"} & set(expect)


def run_probe(ctx: ProbeContext, probe: Probe) -> Result:
    expect = probe.expectation(ctx.env.provider.name)
    started = time.monotonic()
    # A Service created moments ago is programmed on each node by kube-proxy (and announced by
    # the load balancer) within a few seconds: observe again until it holds or the settle time ends.
    (seen, problems), rounds = poll(lambda: _observe_and_check(ctx, probe, expect), lambda r: not r[1],
                                    timeout=ctx.settings.wait_timeout / 8 if settles(expect) else 0)
    if rounds > 1:
        seen.evidence.append(f"held after {rounds} observations ({time.monotonic() - started:.1f}s)"
                             if not problems else f"still differed after {rounds} observations")
    return Result(lab=ctx.lab.id, probe=probe.id, claim=probe.claim, path=probe.path,
                  expected=probes.describe_expectation(expect), observed=seen.observed,
                  evidence=seen.evidence, passed=not problems, problems=problems,
                  seconds=round(time.monotonic() - started, 2), facts=seen.facts | {"rounds": rounds})


def start_lab(env: Environment, lab: Lab) -> ProbeContext:
    """Applies LAB, waits for its workloads and returns what its probes need."""
    if lab.needs_ingress and env.settings.ingress == "none":
        raise UsageError(f"lab {lab.id} needs the cluster's Ingress controller, and ingress is set to 'none'",
                         hint="unset SVCLAB_INGRESS (or set it to traefik) and run the lab again")
    env.step(f"lab {lab.id}: {lab.title}")
    prepare(env, lab)
    topology, client_pod = _topology(env, lab.namespace)
    return ProbeContext(env, lab, topology, client_pod)


def run_lab(env: Environment, lab: Lab) -> list[Result]:
    ctx = start_lab(env, lab)
    # Probes that expect traffic to get through go first: once they pass, every node has
    # programmed the lab's Services, so "no answer" afterwards is an observation, not a race.
    first = [p for p in lab.probes if settles(p.expectation(env.provider.name))]
    then = [p for p in lab.probes if p not in first]
    results: dict[str, Result] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for batch in (first, then):
            for result in pool.map(lambda p: run_probe(ctx, p), batch):
                results[result.probe] = result
    return [results[p.id] for p in lab.probes]
