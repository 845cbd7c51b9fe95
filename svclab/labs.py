"""Labs as data: ``<id>/lab.yaml`` names its manifests and its probes, each probe with the
expectation that holds for every provider (``expect``) or for one (``expect_by_provider``); the
format is svclab.schema's model, and svclab/probes/ holds the probe kinds.

Labs come from folders of lab folders: svclab's own (resources.labs_dir()), then each folder in
SVCLAB_LABS (separated by ``:``), whose claims.yaml may add claims. A lab id already taken by an
earlier folder is refused for the later one.

Running a lab applies its manifests into the lab's own namespace, waits for its workloads, runs
the probes (side by side where they only look, one at a time where they change the cluster) and
turns each observation into a verdict.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from . import lab_times, probes, render, resources, schema
from .cancel import WaitCancelled, Workers, bound_cancel
from .config import pins
from .errors import SvclabError, UsageError
from .kube import load_manifests, poll
from .lifecycle import SYSTEM_NAMESPACE, Environment
from .mirror import fetch
from .probes import Expectation, ProbeSpec
from .probes.outage import cutter
from .probes.shared_cut import SharedCut
from .probes.traffic import CLIENT_LABEL

__all__ = ["Lab", "Probe", "Result", "LabFolder", "lab_folders", "available_labs", "lab_ids", "load_lab",
           "load_lab_dir", "load_claims", "run_lab", "run_labs", "run_labs_timed", "open_lab", "run_batches",
           "start_lab", "run_probe", "run_order", "topology_record", "topology_now"]

LABS_ENV = "SVCLAB_LABS"
LAB_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?")
Probe = ProbeSpec   # a probe as its lab defines it: one of the kinds' Spec models


def namespace_of(lab_id: str) -> str:
    """The namespace lab LAB_ID works in (and nothing else of svclab's does)."""
    return f"svclab-{lab_id}"


@dataclasses.dataclass(frozen=True)
class Lab:
    id: str
    title: str
    claims: tuple[str, ...]
    manifests: tuple[str, ...]
    deployments: tuple[str, ...]
    probes: tuple[ProbeSpec, ...]
    directory: Traversable
    disruptive: bool = False    # changes the cluster on purpose (stops a node): those probes run last
    alone: bool = False         # measures what other labs' traffic would disturb: never side by side
    daemonsets: tuple[str, ...] = ()  # waited for as the deployments are, a ready pod on each node
    upstream: tuple[str, ...] = ()  # pinned upstream manifests (pins.toml sections) applied first
    needs_ingress: bool = False     # probes the cluster's Ingress controller (cluster.up --ingress)
    source: str = ""                # where the definition came from, as errors name it

    @property
    def namespace(self) -> str:
        return namespace_of(self.id)


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


# ------------------------------------------------------------------ where labs come from

@dataclasses.dataclass(frozen=True)
class LabFolder:
    """A folder of lab folders, with the name errors use for it ("labs" for svclab's own)."""

    root: Traversable
    label: str

    def lab_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "lab.yaml").is_file())


def lab_folders(env: Mapping[str, str] | None = None) -> list[LabFolder]:
    """svclab's own labs first, then each folder SVCLAB_LABS names."""
    env = os.environ if env is None else env
    extra = [p for p in (env.get(LABS_ENV) or "").split(os.pathsep) if p]
    for path in extra:
        if not Path(path).is_dir():
            raise UsageError(f"{LABS_ENV}: {path} is not a folder", hint="give folders that hold lab folders (<id>/lab.yaml)")
    return [LabFolder(resources.labs_dir(), "labs"), *(LabFolder(Path(p), p.rstrip("/")) for p in extra)]


def _index(env: Mapping[str, str] | None = None) -> dict[str, LabFolder]:
    found: dict[str, LabFolder] = {}
    for folder in lab_folders(env):
        for lab_id in folder.lab_ids():
            found.setdefault(lab_id, folder)
    return found


def lab_ids(env: Mapping[str, str] | None = None) -> list[str]:
    """Every lab's id, without loading the definitions (ENV: where SVCLAB_LABS is read)."""
    return sorted(_index(env))


def available_labs() -> list[str]:
    """Lab ids in the order lab.all runs them: disruptive labs last (one that does not load
    counts as not disruptive; loading it again says what is wrong)."""
    def disruptive(lab_id: str) -> bool:
        try:
            return load_lab(lab_id).disruptive
        except UsageError:
            return False

    return sorted(lab_ids(), key=disruptive)


def load_claims(*folders: Traversable) -> dict[str, Any]:
    """The claims table: svclab's own, extended by each FOLDER's claims.yaml (a folder of labs)."""
    table = dict(_read_yaml(resources.claims_file(), "labs/claims.yaml") or {})
    for folder in folders:
        path = folder / "claims.yaml"
        if path.is_file():
            more = _read_yaml(path, str(path))
            if not isinstance(more, dict):
                raise UsageError(f"{path}: expected a mapping of claim ids to claims")
            table.update(more)
    return table


def _read_yaml(path: Traversable, source: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise schema.LabDefinitionError(f"{source}: not valid YAML{where}") from None


def load_lab(lab_id: str) -> Lab:
    index = _index()
    if lab_id not in index:
        raise UsageError(f"unknown lab {lab_id!r}", hint=f"choose one of {', '.join(sorted(index))}")
    folder = index[lab_id]
    extra = [folder.root] if folder.label != "labs" else []
    return load_lab_dir(folder.root / lab_id, source=f"{folder.label}/{lab_id}/lab.yaml", claims=load_claims(*extra))


def load_lab_dir(directory: Traversable, *, source: str | None = None, claims: Mapping[str, Any] | None = None) -> Lab:
    """The lab defined in DIRECTORY/lab.yaml (its id is the folder's name)."""
    source = source or str(directory / "lab.yaml")
    path = directory / "lab.yaml"
    if not path.is_file():
        raise UsageError(f"{source}: no such file", hint="a lab is a folder with a lab.yaml")
    return parse_lab(directory.name, _read_yaml(path, source), directory, source=source,
                     claims=load_claims() if claims is None else claims)


def parse_lab(lab_id: str, data: Any, directory: Traversable, *, source: str | None = None,
              claims: Mapping[str, Any] | None = None) -> Lab:
    source = source or f"labs/{lab_id}/lab.yaml"
    if not LAB_ID.fullmatch(lab_id):
        raise schema.LabDefinitionError(
            f"{source}: the folder's name {lab_id!r} is the lab's id (task lab.<id>, namespace svclab-<id>): "
            "use lowercase letters, digits and dashes, at most 50")
    checked = schema.parse(
        data, source=source, claims=load_claims() if claims is None else claims,
        manifest_exists=lambda name: _manifest_file(directory, name) is not None,
        pinned=lambda name: bool((pins().get(name) or {}).get("files")))
    return Lab(id=lab_id, title=checked.title, claims=tuple(checked.claims), manifests=tuple(checked.manifests),
               deployments=tuple(checked.deployments), daemonsets=tuple(checked.daemonsets), probes=tuple(checked.probes), directory=directory,
               disruptive=checked.disruptive, alone=checked.alone, upstream=tuple(checked.upstream), needs_ingress=checked.needs_ingress,
               source=source)


def _manifest_file(directory: Traversable, name: str) -> Traversable | None:
    for base in (directory, resources.manifests_dir()):
        path = base / name
        if path.is_file():
            return path
    return None


@dataclasses.dataclass
class ProbeContext:
    """What a probe may use: the cluster, the lab's namespace, and the topology seen before probing."""

    env: Environment
    lab: Lab
    topology: probes.Topology
    client_pod: str
    shared_cut: Any = None   # probes.shared_cut.SharedCut: in lab.all's last stage, one node cut for several labs

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
    path = _manifest_file(lab.directory, manifest)
    if path is None:
        raise UsageError(f"lab {lab.id}: manifest {manifest} not found in its folder or in svclab's manifests/")
    own = (lab.directory / manifest).is_file()
    source = f"{lab.source.rpartition('/')[0]}/{manifest}" if own else f"manifests/{manifest}"
    return render.render_file(path, render.context(namespace=lab.namespace), source=source)


def _topology(env: Environment, namespace: str) -> tuple[probes.Topology, str]:
    kube = env.kube
    backend = env.target.backend_node if getattr(env, "target", None) is not None else None
    nodes = [topology_node(n, backend) for n in kube.list("v1", "Node")]
    pods = kube.list("v1", "Pod", namespace)
    # A lab's own client pods (labelled svclab.io/client) make requests: they are not backends.
    pod_nodes = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods
                 if (p.get("status") or {}).get("phase") == "Running"
                 and ((p["metadata"].get("labels") or {}).get(CLIENT_LABEL) != "true")}
    clients = [p for p in kube.list("v1", "Pod", SYSTEM_NAMESPACE, label_selector="app.kubernetes.io/name=svclab-client")
               if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    if not clients:
        raise SvclabError("the in-cluster client pod is not running", hint="run `svclab cluster.up` again")
    topo = probes.Topology(nodes=sorted(nodes, key=lambda n: n.name), pod_nodes=pod_nodes,
                           client_ip=env.pool.client_ip, client_pod_ip=clients[0]["status"]["podIP"], pool=env.pool)
    return topo, clients[0]["metadata"]["name"]


def topology_node(node: dict[str, Any], backend_node: str | None = None) -> probes.NodeInfo:
    """A Node (the API's JSON) as the probes see it: its name, InternalIP, pod range, and whether
    svclab placed backends on it (its label, or on a cluster svclab did not make, BACKEND_NODE's
    hostname)."""
    addresses = (node.get("status") or {}).get("addresses") or []
    ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "")
    labels = node["metadata"].get("labels") or {}
    backend = (labels.get("kubernetes.io/hostname") == backend_node if backend_node is not None
               else labels.get("svclab.io/backend-node") == "true")
    return probes.NodeInfo(node["metadata"]["name"], ip, (node.get("spec") or {}).get("podCIDR"), backend)


def topology_record(topo: probes.Topology) -> dict[str, Any]:
    """TOPO as the results JSON records it per lab (what the HTML report draws)."""
    pool = topo.pool
    return {"nodes": [{"name": n.name, "ip": n.ip, "pod_cidr": n.pod_cidr, "backend": n.backend} for n in topo.nodes],
            "pods": dict(topo.pod_nodes), "client_ip": topo.client_ip, "client_pod_ip": topo.client_pod_ip,
            "pool": {"subnet": pool.subnet, "range": pool.range} if pool is not None else None}


def topology_now(env: Environment, lab: Lab) -> dict[str, Any] | None:
    """LAB's topology_record as the cluster shows it now (step mode's, read after the lab's
    probes), or None when it cannot be read."""
    try:
        return topology_record(_topology(env, lab.namespace)[0])
    except SvclabError:
        return None


def prepare(env: Environment, lab: Lab) -> None:
    kube = env.kube
    for name in lab.upstream:
        for item in pins()[name]["files"]:
            data = fetch(item["url"], item["sha256"], cache_dir=env.settings.cache_dir, mirror=env.settings.mirror)
            kube.apply(load_manifests(data.decode()))
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lab.namespace}}])
    objects = [obj for m in lab.manifests for obj in load_manifests(render_manifest(lab, m))]
    if env.target is not None:   # svclab labels no node of a cluster it did not make
        from .target import pin_backends

        objects = pin_backends(objects, env.target.backend_node)
    if env.provider.one_name_at_a_time and (names := load_balancer_names(lab)):
        if taken := name_taken_elsewhere(names, lab.namespace, kube.list("v1", "Service")):
            raise UsageError(f"lab {lab.id}: {env.provider.name} serves one LoadBalancer Service of a name at a time, "
                             f"and {', '.join(taken)} already exists",
                             hint=f"delete it (kubectl -n NAMESPACE delete service NAME) or rename lab {lab.id}'s Service")
    applied = time.time()
    kube.apply(objects, namespace=lab.namespace)
    for name in lab.deployments:
        kube.wait_deployment(lab.namespace, name, timeout=env.settings.wait_timeout, since=applied)
    for name in lab.daemonsets:
        kube.wait_daemonset(lab.namespace, name, timeout=env.settings.wait_timeout, since=applied)
    kube.wait_service_endpoints(lab.namespace, timeout=env.settings.wait_timeout)


def _observe_and_judge(ctx: ProbeContext, probe: ProbeSpec, expect: Expectation) -> tuple[probes.Observation, list[str]]:
    try:
        seen = probes.observe(ctx, probe)
        return seen, probes.judge(probe, seen.facts, expect, ctx.topology)
    except SvclabError as e:
        return probes.Observation(f"probe failed: {e}", [str(e)], {}), [str(e)]
    except Exception as e:  # noqa: BLE001 - one broken probe must not hide the others' results
        return probes.Observation(f"probe failed: {type(e).__name__}", [str(e)[:300]], {}), \
            [f"{type(e).__name__}: {str(e)[:200]}"]


def run_probe(ctx: ProbeContext, probe: ProbeSpec) -> Result:
    expect = probe.expectation(ctx.env.provider.name, ctx.env.kube_proxy_mode)
    started = time.monotonic()
    # A Service created moments ago is programmed on each node by kube-proxy (and announced by
    # the load balancer) within a few seconds: observe again until it holds or the settle time ends.
    (seen, problems), rounds = poll(lambda: _observe_and_judge(ctx, probe, expect), lambda r: not r[1],
                                    timeout=ctx.settings.wait_timeout / 8 if expect.settles else 0)
    if rounds > 1:
        seen.evidence.append(f"held after {rounds} observations ({time.monotonic() - started:.1f}s)"
                             if not problems else f"still differed after {rounds} observations")
    return Result(lab=ctx.lab.id, probe=probe.id, claim=probe.claim, path=probe.path,
                  expected=expect.describe(), observed=seen.observed,
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


def run_order(lab: Lab, provider: str, proxy_mode: str) -> list[list[ProbeSpec]]:
    """LAB's probes in the batches they run in, each batch side by side:
    1. those that expect traffic to get through (or another state the cluster converges to):
       once they pass, every node has programmed the lab's Services;
    2. those that expect an absence (no answer, no address), so that "nothing" is an
       observation, not a race with kube-proxy;
    3. those that change the cluster (patch a Service, create objects, stop a node), one per
       batch, in the lab's order, so that no other probe looks while they do."""
    looking = [p for p in lab.probes if not p.changes_cluster()]
    converging = [p for p in looking if p.expectation(provider, proxy_mode).settles]
    absent = [p for p in looking if p not in converging]
    return [b for b in (converging, absent) if b] + [[p] for p in lab.probes if p.changes_cluster()]


def open_lab(env: Environment, lab: Lab, topologies: dict[str, Any] | None = None) -> ProbeContext:
    """start_lab; TOPOLOGIES, when given, gets the lab's topology_record under its id."""
    ctx = start_lab(env, lab)
    if topologies is not None:
        topologies[lab.id] = topology_record(ctx.topology)
    return ctx


def run_batches(ctx: ProbeContext, batches: Sequence[Sequence[ProbeSpec]]) -> list[Result]:
    """The results of BATCHES (see run_order), each batch side by side, in the lab's probe order."""
    results: dict[str, Result] = {}
    # The probe threads' waits stop at their next round when the run is interrupted.
    with Workers(f"lab-{ctx.lab.id}") as workers:
        for batch in batches:
            for future in [workers.submit(run_probe_cutting if cuts_a_node(p) and ctx.shared_cut else run_probe,
                                          ctx, p) for p in batch]:
                result = future.result()
                results[result.probe] = result
    return in_probe_order(ctx.lab, list(results.values()))


def cuts_a_node(probe: ProbeSpec) -> bool:
    """Whether PROBE cuts a node without a backend off the network (CutOffSpec's cut_off)."""
    return getattr(probe, "cut_off", False) is True


def run_probe_cutting(ctx: ProbeContext, probe: ProbeSpec) -> Result:
    """run_probe for a probe that cuts a node, as one of the parties of CTX's shared cut."""
    with ctx.shared_cut.member():
        return run_probe(ctx, probe)


def run_lab(env: Environment, lab: Lab, topologies: dict[str, Any] | None = None) -> list[Result]:
    """LAB's results; TOPOLOGIES, when given, gets the lab's topology_record under its id."""
    ctx = open_lab(env, lab, topologies)
    return run_batches(ctx, run_order(lab, env.provider.name, env.kube_proxy_mode))


SIDE_BY_SIDE = 6   # labs at a time, each in its own namespace: on 2 cores 6 beat 3 (lab.all 83 s vs 97 s after
                   # `up`, 44 s vs 54 s warm); most of a lab's time is waiting, not work


def run_labs(env: Environment, selected: Sequence[Lab], topologies: dict[str, Any] | None = None, *,
             side_by_side: int = SIDE_BY_SIDE, times: Mapping[str, float] | None = None,
             took: dict[str, float] | None = None) -> list[Result]:
    """The results of the SELECTED labs, in their order. Each lab lives in its own namespace, so
    up to SIDE_BY_SIDE of them run at once, started longest first by TIMES (lab id -> seconds it
    took before: lab_times.py); TOOK, when given, gets each lab's seconds. What disturbs the
    others runs after them: the probes of a disruptive lab that change the cluster (they cut a
    node off; the lab's other probes run with the other labs) and a lab the others would disturb
    (alone: it measures what their traffic would change). Labs whose changing probes only cut a
    node without a backend off watch one shared cut of it together (probes/shared_cut.py); the
    rest run by themselves, in the labs' order. Where
    the provider serves one LoadBalancer Service of a name at a time, labs whose LoadBalancer
    Services share a name take turns."""
    together = [lab for lab in selected if not lab.alone]
    names = ({lab.id: load_balancer_names(lab) for lab in together}
             if env is not None and env.provider.one_name_at_a_time else {})
    done: dict[str, list[Result]] = {}
    later: dict[str, tuple[ProbeContext, list[list[ProbeSpec]]]] = {}   # a disruptive lab's batches that change the cluster
    waiting = lab_times.longest_first(together, times or {})   # not started yet, in the order to start them
    running: list[Lab] = []
    turns = threading.Condition()

    def free(lab: Lab) -> bool:
        mine = names.get(lab.id, frozenset())
        return len(running) < max(1, side_by_side) and not any(mine & names.get(o.id, frozenset()) for o in running)

    def may_start(lab: Lab) -> bool:
        return free(lab) and not any(free(ahead) for ahead in waiting[:waiting.index(lab)])

    def timed(lab: Lab, part: Callable[[], list[Result]]) -> list[Result]:
        started = time.monotonic()
        try:
            return part()
        finally:
            if took is not None:
                took[lab.id] = time.monotonic() - started

    def looking_part(lab: Lab) -> list[Result]:
        if not lab.disruptive:
            return run_lab(env, lab, topologies)
        ctx = open_lab(env, lab, topologies)
        batches = run_order(lab, env.provider.name, env.kube_proxy_mode)
        later[lab.id] = (ctx, [b for b in batches if b[0].changes_cluster()])
        return run_batches(ctx, [b for b in batches if not b[0].changes_cluster()])

    def take_turn(lab: Lab) -> list[Result]:
        cancel = bound_cancel()
        with turns:
            # a lab still waiting its turn when the run stops never starts
            while not turns.wait_for(lambda: may_start(lab), timeout=0.2):
                if cancel and cancel.is_set():
                    waiting.remove(lab)
                    raise WaitCancelled()
            waiting.remove(lab)
            running.append(lab)
        try:
            return timed(lab, lambda: looking_part(lab))
        finally:
            with turns:
                running.remove(lab)
                turns.notify_all()

    with Workers("labs") as workers:
        for lab, future in [(lab, workers.submit(take_turn, lab)) for lab in together]:
            done[lab.id] = future.result()
    # The labs whose cluster-changing probes are one batch that only cuts a node off run it together, on one cut.
    cutting = [lab for lab in selected if lab.id in later and len(later[lab.id][1]) == 1
               and all(cuts_a_node(p) for p in later[lab.id][1][0])]
    if len(cutting) > 1:
        shared = SharedCut(sum(len(b) for lab in cutting for b in later[lab.id][1]), cutter(later[cutting[0].id][0]))
        for lab in cutting:
            later[lab.id][0].shared_cut = shared
        with Workers("cut") as workers:
            for lab, future in [(lab, workers.submit(run_batches, *later.pop(lab.id))) for lab in cutting]:
                done[lab.id] = in_probe_order(lab, done[lab.id] + future.result())
    for lab in selected:
        if lab.alone:
            done[lab.id] = timed(lab, lambda: run_lab(env, lab, topologies))
        elif lab.id in later:
            done[lab.id] = in_probe_order(lab, done[lab.id] + run_batches(*later[lab.id]))
    return [result for lab in selected for result in done[lab.id]]


def run_labs_timed(env: Environment, selected: Sequence[Lab], topologies: dict[str, Any] | None = None) -> list[Result]:
    """run_labs, started longest first by the times kept for ENV's cluster (lab_times.py), which
    this run's times then update."""
    folder, took = lab_times.folder_of(env), {}
    results = run_labs(env, selected, topologies, times=lab_times.load(folder), took=took)
    lab_times.save(folder, took)
    return results


def in_probe_order(lab: Lab, results: Sequence[Result]) -> list[Result]:
    """RESULTS (of LAB's probes) in the order LAB lists its probes."""
    by_id = {r.probe: r for r in results}
    return [by_id[p.id] for p in lab.probes if p.id in by_id]


def load_balancer_names(lab: Lab) -> frozenset[str]:
    """The names of the LoadBalancer Services LAB's manifests create for the cluster's provider
    (those of another loadBalancerClass are no business of the provider's)."""
    return frozenset(obj["metadata"]["name"] for m in lab.manifests for obj in load_manifests(render_manifest(lab, m))
                     if obj.get("kind") == "Service" and (spec := obj.get("spec") or {}).get("type") == "LoadBalancer"
                     and not spec.get("loadBalancerClass"))


def name_taken_elsewhere(names: frozenset[str], namespace: str, services: Sequence[Mapping[str, Any]]) -> list[str]:
    """'NAMESPACE/NAME' of each LoadBalancer Service among SERVICES (of no other class) that is
    outside NAMESPACE and has one of NAMES."""
    return sorted(f"{meta['namespace']}/{meta['name']}" for svc in services
                  if (meta := svc.get("metadata") or {}).get("name") in names and meta.get("namespace") != namespace
                  and (spec := svc.get("spec") or {}).get("type") == "LoadBalancer" and not spec.get("loadBalancerClass"))


# ------------------------------------------------------------------ checking lab folders

def check_path(path: Path) -> list[tuple[str, str | None]]:
    """Every lab at PATH (a lab folder, or a folder of lab folders), each as (where, the one-line
    refusal or None when it loads). Claims come from svclab's table and the claims.yaml beside
    the lab folders."""
    path = Path(path)
    if (path / "lab.yaml").is_file():
        folders, parent = [path], path.parent
    elif path.is_dir() and (found := sorted(p for p in path.iterdir() if (p / "lab.yaml").is_file())):
        folders, parent = found, path
    else:
        return [(str(path), f"{path}: not a lab folder (no lab.yaml in it or in its sub-folders)")]
    try:
        claims = load_claims(parent)
    except UsageError as e:
        return [(str(path), e.message)]
    checked = []
    for folder in folders:
        try:
            load_lab_dir(folder, source=str(folder / "lab.yaml"), claims=claims)
            checked.append((str(folder), None))
        except UsageError as e:
            checked.append((str(folder), e.message))
    return checked
