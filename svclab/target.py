"""A cluster svclab did not make, named with --kubeconfig / --context (SVCLAB_KUBECONFIG,
SVCLAB_CONTEXT): the labs run on it as they are, and svclab touches nothing of it but its own.

What happens, in order (`connect`):
  1. the kubeconfig and context are read (an unknown context is refused in one line);
  2. the API server must answer and the user must be allowed to create namespaces (a
     SelfSubjectAccessReview), else one line, exit 3, and nothing is created;
  3. what the cluster has is detected (svclab.detect): the load balancer, the kube-proxy mode
     or its replacement, Ingress and Gateway classes, nodes and zones; each probe's expectation
     follows the detected implementation, and what cannot apply is skipped with its reason
     (svclab.plan);
  4. svclab's in-cluster client goes into its own namespace (svclab-system), and, where the
     nodes are containers of this machine's Docker (kind, k3d, minikube's docker driver), the
     outside client is a container of svclab's on the nodes' docker network, with no default
     route and an address Docker hands out; with --outside container:NAME it is the user's own
     container there, checked first (running, not a node, on that network, with curl, nc, ip
     and getent) and only ever given the probes' commands: svclab never starts, changes or
     removes it.

The lab backends that kind clusters of svclab's place by a node label (svclab.io/backend-node)
are placed by the node's hostname label here: svclab labels no node of a cluster it did not make.
State (the lock, the discovery cache) lives in svclab's state folder under the target's name,
`target-<context>`, never beside the user's kubeconfig.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import ingress, network, this_machine
from .config import Settings, agnhost_image
from .errors import PrerequisiteError, UsageError
from .kube import MANAGED_SELECTOR, Kube, api_error_message, is_managed
from .lifecycle import SYSTEM_NAMESPACE, carve, install_client_pod
from .network import Pool
from .outside import OutsideClient
from .providers import get_provider, metallb
from .ui import UI

__all__ = ["Target", "Visit", "connect", "resolve", "backend_node", "pin_backends", "target_name", "leave"]

HOSTNAME_LABEL = "kubernetes.io/hostname"
BACKEND_LABEL = "svclab.io/backend-node"


@dataclasses.dataclass(frozen=True)
class Target:
    """What svclab found on the user's cluster."""

    context: str
    kubeconfig: Path
    detected: Any                  # detect.Detected
    backend_node: str              # where labs with "one backend node" put it
    outside: str                   # the outside client: "container", "this machine", or "" (none)
    docker_network: str | None     # the nodes' docker network, when the nodes are containers here
    installs: tuple[str, ...] = () # what svclab installs there for the run, as asked (--install)
    unreachable: tuple[str, ...] = ()  # node addresses this machine cannot connect to, with why (outside: this machine)
    outside_container: str | None = None  # the user's own container as the outside client (--outside container:NAME)
    outside_routes_beyond: bool = False   # that container has a default route (svclab's own client has none)

    def as_dict(self) -> dict[str, Any]:
        return {"context": self.context, "kubeconfig": str(self.kubeconfig), "backend_node": self.backend_node,
                "outside_client": self.outside or None, "outside_container": self.outside_container,
                "outside_routes_beyond": self.outside_routes_beyond,
                "unreachable_nodes": list(self.unreachable),
                "docker_network": self.docker_network, "installs": list(self.installs),
                "detected": self.detected.as_dict()}


def target_name(context: str) -> str:
    """The name svclab's state, lock and outside client take for CONTEXT: target-<slug>."""
    slug = re.sub(r"[^a-z0-9]+", "-", context.lower()).strip("-")[:33].strip("-") or "default"
    return f"target-{slug}"


def _contexts(path: Path) -> tuple[list[str], str | None]:
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    if not path.is_file():
        raise UsageError(f"kubeconfig {path} does not exist", hint="name an existing file with --kubeconfig")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=str(path))
    except (ConfigException, OSError, ValueError) as e:
        raise UsageError(f"kubeconfig {path} cannot be read: {str(e).splitlines()[0][:120]}") from None
    return [c["name"] for c in contexts or []], (current or {}).get("name")


def resolve(settings: Settings) -> Settings:
    """SETTINGS with the context made explicit and the cluster name set to the target's (for the
    lock and the state folder); SETTINGS unchanged for svclab's own clusters."""
    if settings.targets_own_cluster:
        if settings.installs:
            raise UsageError("--install is for a cluster svclab did not make; svclab's own clusters have "
                             "their provider and Traefik already", hint="drop --install, or name that cluster with --kubeconfig/--context")
        if settings.given("outside"):
            raise UsageError("--outside is for a cluster svclab did not make; on svclab's own clusters the outside "
                             "client is its container", hint="drop --outside, or name that cluster with --kubeconfig/--context")
        return settings
    path = settings.target_kubeconfig()
    names, current = _contexts(path)
    context = settings.context or current
    if not context:
        raise UsageError(f"kubeconfig {path} has no current context", hint="name one with --context")
    if context not in names:
        raise UsageError(f"kubeconfig {path} has no context {context!r}",
                         hint=f"its contexts: {', '.join(names) or 'none'}")
    if settings.given("cluster_name"):
        raise UsageError("--name picks one of svclab's own clusters; with --kubeconfig/--context the labs run on "
                         "that cluster instead", hint="drop --name, or drop --kubeconfig/--context")
    return dataclasses.replace(settings, kubeconfig=path, context=context, cluster_name=target_name(context))


def kube_for(settings: Settings) -> Kube:
    cache = settings.make_cluster_dir()
    return Kube(settings.target_kubeconfig(), context=settings.context, cache_dir=cache)


def check_reachable(kube: Kube, settings: Settings) -> None:
    server = kube.api.configuration.host
    try:
        answer = kube.get_json("/readyz", timeout=10).strip()
    except Exception as e:  # noqa: BLE001 - any failure to reach it is the same one line
        reason = api_error_message(e) if getattr(e, "status", None) else connection_failure(str(e) or type(e).__name__)
        raise PrerequisiteError(f"cannot reach the cluster of context {settings.context} at {server}: {reason[:160]}",
                                hint=f"check `kubectl --context {settings.context} get nodes`") from None
    if answer != "ok":
        raise PrerequisiteError(f"the API server of context {settings.context} is not ready ({answer[:80]})")


def connection_failure(text: str) -> str:
    """The heart of urllib3's account of a failed connection: "HTTPSConnectionPool(host=...): Max
    retries exceeded with url: /readyz (Caused by NewConnectionError('<...>: Failed to establish a
    new connection: [Errno 111] Connection refused'))" is "connection refused"."""
    if match := re.search(r"\[Errno -?\d+\] ([^'\")]+)", text):
        return match.group(1).strip().lower()
    for words in ("timed out", "certificate verify failed", "Name or service not known", "No route to host"):
        if words.lower() in text.lower():
            return words.lower()
    return (text.splitlines() or [text])[0]


def check_may_create_namespaces(kube: Kube, settings: Settings) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "create", "resource": "namespaces"}}}
    resource = kube.dynamic.resources.get(api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview")
    answer = resource.create(body=review)
    status = answer.to_dict().get("status") if hasattr(answer, "to_dict") else answer.get("status")
    if not (status or {}).get("allowed"):
        raise PrerequisiteError(f"context {settings.context} may not create namespaces, and every lab lives in one",
                                hint="use a context with that right (`kubectl auth can-i create namespaces`)")


def _schedulable(node: dict[str, Any]) -> bool:
    taints = (node.get("spec") or {}).get("taints") or []
    return not (node.get("spec") or {}).get("unschedulable") and \
        not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints)


def backend_node(nodes: list[dict[str, Any]]) -> str:
    """The node that gets the one backend of labs that need "a node with a backend pod and nodes
    without": the first schedulable node by name that is not a control plane, else the first."""
    def control_plane(node):
        return "node-role.kubernetes.io/control-plane" in (node["metadata"].get("labels") or {})

    ordered = sorted(nodes, key=lambda n: n["metadata"]["name"])
    for fits in (lambda n: _schedulable(n) and not control_plane(n), _schedulable, lambda n: True):
        found = [n for n in ordered if fits(n)]
        if found:
            return found[0]["metadata"]["labels"].get(HOSTNAME_LABEL, found[0]["metadata"]["name"])
    raise PrerequisiteError("the cluster has no nodes")


def pin_backends(objects: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    """OBJECTS with every reference to svclab's backend-node label (a nodeSelector, a node
    affinity term) turned into one to NODE's hostname label. Changes the objects in place."""
    for obj in objects:
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        selector = spec.get("nodeSelector") or {}
        if selector.pop(BACKEND_LABEL, None) is not None:
            selector[HOSTNAME_LABEL] = node
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
        terms = [*((affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []),
                 *(p.get("preference") or {} for p in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or [])]
        for term in terms:
            for expression in term.get("matchExpressions") or []:
                if expression.get("key") == BACKEND_LABEL:
                    expression["key"] = HOSTNAME_LABEL
                    expression["values"] = [node] if expression.get("operator") in ("In", "NotIn") else []
                    if expression["operator"] in ("Exists", "DoesNotExist"):
                        expression["operator"] = "In" if expression["operator"] == "Exists" else "NotIn"
                        expression["values"] = [node]
    return objects


def _docker_network(dc, node_ips: list[str]) -> tuple[str, str] | None:
    """(name, IPv4 subnet) of the docker network every node address is on, or None when the
    nodes are not containers of this Docker engine."""
    found: dict[str, str] = {}
    for container in dc.containers.list():
        for name, endpoint in ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if endpoint.get("IPAddress"):
                found.setdefault(endpoint["IPAddress"], name)
    networks = {found.get(ip) for ip in node_ips}
    if len(networks) != 1 or None in networks:
        return None
    name = networks.pop()
    subnet, _, _ = network.network_facts(dc, name)
    return name, subnet


def _load_balancer_range(kube: Kube, subnet: str) -> tuple[str, str]:
    """The first MetalLB IPAddressPool's first range on SUBNET, else SUBNET's whole span (what
    "an address from the pool" then means: one on the nodes' network)."""
    net = ipaddress.ip_network(subnet, strict=False)
    try:
        pools = kube.list("metallb.io/v1beta1", "IPAddressPool")
    except Exception:  # noqa: BLE001 - no MetalLB: no pools
        pools = []
    for pool in pools:
        for entry in (pool.get("spec") or {}).get("addresses") or []:
            if "-" in entry:
                first, last = (part.strip() for part in entry.split("-", 1))
            else:
                block = ipaddress.ip_network(entry, strict=False)
                first, last = str(block.network_address), str(block.broadcast_address)
            if ipaddress.ip_address(first) in net:
                return first, last
    return str(net.network_address + 1), str(net.broadcast_address - 1)


def connect(settings: Settings, ui: UI):
    """The Environment of the user's cluster, checked and detected (see the module docstring);
    the in-cluster client comes with the first lab (Visit), since a run where every lab is
    skipped needs none."""
    from .lifecycle import Environment

    from . import detect

    kube = kube_for(settings)
    try:
        check_reachable(kube, settings)
        check_may_create_namespaces(kube, settings)
    except BaseException:
        forget(settings)   # refused: not even the discovery cache's folder stays
        raise
    found = detect.detect(kube)
    for line in found.lines():
        ui.step(line)
    nodes = kube.list("v1", "Node")
    node_ips = [a["address"] for n in nodes for a in (n.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"]
    dc = network.docker_client()
    on_docker = _docker_network(dc, node_ips)
    try:
        kind = outside_kind(settings.outside, on_docker is not None)
        yours = settings.user_outside_container
        your_ip, routes_beyond = user_container_address(dc, yours, on_docker[0]) if yours else (None, False)
    except BaseException:
        forget(settings)
        raise
    metallb_pool = None
    if "metallb" in settings.installs:
        if refusal := metallb.install_refusal(found.load_balancer, found.load_balancer_detail,
                                              _namespace_owner(kube, metallb.NAMESPACE), on_docker and on_docker[0]):
            forget(settings)
            raise PrerequisiteError(refusal, hint="drop --install metallb (svclab detects what the cluster has)")
        metallb_pool = carve(dc, settings, on_docker[0])
        ui.step(f"MetalLB for this run (--install metallb): pool {metallb_pool.range} on docker network {on_docker[0]}")
    client, pool, unreachable = None, None, ()
    if kind == "container":
        name, subnet = on_docker
        if yours:
            client_name, client_ip = yours, your_ip
            ui.step(f"outside client: your container {yours} at {your_ip} on docker network {name} "
                    "(svclab only runs its probes' commands in it" + ("; it has a default route, so nothing is sent "
                    "from it to the cluster's Service and pod addresses)" if routes_beyond else ")"))
        else:
            client_name = network.start_client(dc, cluster=settings.cluster_name, network_name=name,
                                               image=agnhost_image())
            client_ip = network.client_address(dc, client_name, name)
        first, last = _load_balancer_range(kube, subnet)
        pool = Pool(network=name, subnet=subnet, client_ip=client_ip, first=first, last=last)
        client = OutsideClient(dc, client_name, routes_beyond=routes_beyond)
    elif kind == "this machine":
        reached = this_machine.reach(node_ips)
        for line in reached.lines():
            ui.step(line)
        unreachable = tuple(f"{ip}: {why}" for ip, why in sorted(reached.unreachable.items()))
        client = this_machine.ThisMachine(reached.source)
        if on_docker:
            first, last = _load_balancer_range(kube, on_docker[1])
            pool = Pool(network=on_docker[0], subnet=on_docker[1], client_ip=reached.source, first=first, last=last)
        else:
            pool = dataclasses.replace(_no_outside_pool(node_ips), client_ip=reached.source)
    if metallb_pool:   # its addresses, and the outside client's address as it is
        pool = dataclasses.replace(metallb_pool, client_ip=pool.client_ip if pool else "0.0.0.0")
    target = Target(context=settings.context, kubeconfig=settings.target_kubeconfig(), detected=found,
                    backend_node=backend_node(nodes), outside=kind,
                    docker_network=on_docker[0] if on_docker else None, installs=settings.installs,
                    unreachable=unreachable, outside_container=yours, outside_routes_beyond=routes_beyond)
    provider = get_provider("metallb") if metallb_pool else provider_for(found)
    return Environment(settings, kube, pool or _no_outside_pool(node_ips), provider, client, ui, target=target)


def _namespace_owner(kube: Kube, name: str) -> str | None:
    """None where namespace NAME does not exist, 'svclab' where it carries svclab's label, else 'someone'."""
    found = kube.get("v1", "Namespace", name)
    if found is None:
        return None
    return "svclab" if is_managed(found) else "someone"


def outside_kind(asked: str, nodes_on_docker: bool) -> str:
    """The outside client for the --outside setting ASKED: "container" (svclab's or, for
    container:NAME, the user's), "this machine" or "" (none). A container needs the nodes to be
    containers of this machine's Docker."""
    if asked.startswith("container") and not nodes_on_docker:
        raise PrerequisiteError(f"--outside {asked} needs the nodes to be containers of this machine's Docker, "
                                "and they are not", hint="use --outside this-machine (or auto)")
    if asked == "auto":
        return "container" if nodes_on_docker else "this machine"
    if asked.startswith("container:"):
        return "container"
    return {"container": "container", "this-machine": "this machine", "none": ""}[asked]


# What svclab's probes run in the outside client besides sh (its own client image has them all).
CLIENT_TOOLS = ("curl", "nc", "ip", "getent")


def user_container_problem(name: str, attrs: dict | None, nodes_network: str,
                           missing_tools: Sequence[str] = ()) -> tuple[str, str] | None:
    """Why the container NAME (docker inspect's ATTRS, None: there is none) cannot be the outside
    client: (what is wrong, how to fix it), or None. It must be the user's own, running, outside
    the cluster and on the nodes' docker network NODES_NETWORK, with the tools the probes run."""
    if attrs is None:
        return (f"there is no container {name} on this Docker engine",
                f"start one on the nodes' docker network (docker run -d --network {nodes_network} ...), "
                "or use --outside container")
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if name.startswith("svclab-") or any(key.startswith("svclab.io/") for key in labels):
        return (f"container {name} is one of svclab's own", "name a container of yours, or use --outside container")
    if labels.get("io.x-k8s.kind.cluster"):
        return (f"container {name} is a node of kind cluster {labels['io.x-k8s.kind.cluster']}, not outside it",
                "name a container that is not a node")
    status = (attrs.get("State") or {}).get("Status", "unknown")
    if status != "running":
        return f"container {name} is {status}, not running", f"docker start {name}"
    if nodes_network not in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}):
        return (f"container {name} is not on the nodes' docker network {nodes_network}",
                f"docker network connect {nodes_network} {name}")
    if missing_tools:
        return (f"container {name} has no {', '.join(missing_tools)}: svclab's probes run sh, "
                f"{', '.join(CLIENT_TOOLS)} there", f"use an image that has them, such as {agnhost_image()}")
    return None


def user_container_address(dc, name: str, nodes_network: str) -> tuple[str, bool]:
    """(the address on NODES_NETWORK of the user's container NAME, whether it has a default
    route), once it is checked to serve as the outside client (user_container_problem); refuses in
    one line otherwise. svclab never starts, changes or removes that container."""
    from docker.errors import NotFound

    try:
        container = dc.containers.get(name)
        attrs = container.attrs
    except NotFound:
        container, attrs = None, None
    problem = user_container_problem(name, attrs, nodes_network)
    if problem is None:
        check = "; ".join(f"command -v {tool} >/dev/null 2>&1 || printf '%s ' {tool}" for tool in CLIENT_TOOLS)
        result = container.exec_run(["sh", "-c", check])
        missing = ["sh"] if result.exit_code not in (0, None) else result.output.decode().split()
        problem = user_container_problem(name, attrs, nodes_network, missing)
    if problem is not None:
        raise PrerequisiteError(problem[0], hint=problem[1])
    default = container.exec_run(["sh", "-c", "ip route show default"])
    routes_beyond = default.exit_code != 0 or bool(default.output.strip())
    return attrs["NetworkSettings"]["Networks"][nodes_network]["IPAddress"], routes_beyond


def _no_outside_pool(node_ips: list[str]) -> Pool:
    """A stand-in pool for a cluster svclab has no outside client on: only its node addresses."""
    first = node_ips[0] if node_ips else "127.0.0.1"
    return Pool(network="", subnet=f"{first}/32", client_ip="0.0.0.0", first=first, last=first)


class DetectedProvider:
    """A load-balancer implementation svclab found but does not install (a cloud's, k3s's
    servicelb, cloud-provider-kind): it gives addresses; svclab cannot tell which node holds them."""

    one_name_at_a_time = False

    def __init__(self, name: str, detail: str):
        self.name, self.detail = name, detail
        self.expects_address = name != "none"

    def images(self) -> list[str]:
        return []

    def install(self, ctx) -> None:
        raise UsageError(f"svclab does not install {self.name}")

    def describe(self) -> str:
        return self.detail

    def holder(self, kube, namespace: str, service: str) -> str | None:
        return None


def provider_for(found):
    """The provider whose expectations the probes follow: svclab's own kind for MetalLB,
    kube-vip and none (their holder lookups work on any cluster), a DetectedProvider otherwise."""
    if found.load_balancer in ("metallb", "kube-vip", "none"):
        return get_provider(found.load_balancer)
    return DetectedProvider(found.load_balancer, found.load_balancer_detail)


class Visit:
    """One run on the user's cluster: the census of everything outside svclab's namespaces taken
    first, and at `finish` the labs' namespaces (and svclab's clients) removed, unless kept, and
    the census taken again, as one more result: it differs when svclab changed what is not its own."""

    def __init__(self, env, namespaces: list[str]):
        from . import census

        self.env, self.namespaces = env, [*namespaces, SYSTEM_NAMESPACE]
        self.traefik = bool(namespaces) and "traefik" in env.settings.installs
        self.metallb = bool(namespaces) and "metallb" in env.settings.installs
        if self.traefik:
            self.namespaces.append(ingress.NAMESPACE)
        # MetalLB keeps its upstream namespace (its RBAC and webhooks name it), made by svclab here.
        self.own = self._own_namespaces() | ({metallb.NAMESPACE} if self.metallb else set())
        self.before = census.take(env.kube, self.own)
        self.finished = False
        try:
            if namespaces:
                install_client_pod(env)
            # Asked for by name (--install), and removed with the labs.
            if self.metallb:
                env.provider.install(env)
            if self.traefik:
                ingress.install(env)
        except BaseException:
            self.__exit__()   # nothing half-made stays
            raise

    def _own_namespaces(self) -> set[str]:
        return set(own_namespaces(self.env.kube)) | set(self.namespaces)

    def clean_up(self) -> list[str]:
        """Removes svclab's namespaces of this run and its outside client; returns what it removed."""
        from .recovery import remove_namespaces

        env = self.env
        removed = remove_namespaces(env.kube, self.namespaces, timeout=env.settings.wait_timeout)
        if self.traefik:
            removed += ingress.remove_cluster_scoped(env.kube)
        if self.metallb:
            removed += metallb.remove_from_target(env.kube, timeout=env.settings.wait_timeout)
        if env.target.outside == "container":
            removed += remove_containers(env.settings.cluster_name)
        forget(env.settings)
        return removed

    def finish(self):
        from . import census
        from .labs import Result

        self.finished = True
        env = self.env
        if env.settings.keep:
            env.ui.step(f"kept svclab's namespaces on {env.target.context}: {', '.join(self.namespaces)}")
            return None
        started = time.monotonic()
        removed = self.clean_up()
        after = census.take(env.kube, self.own | self._own_namespaces())
        changes = census.compare(self.before, after)
        counts = self.before.counts()
        kinds = sum(1 for v in counts.values() if v >= 0)
        objects = sum(v for v in counts.values() if v > 0)
        problems = changes.problems
        evidence = [f"{objects} objects of {kinds} kinds outside svclab's namespaces before the run",
                    f"removed: {', '.join(removed) or 'nothing'}", *problems,
                    *(f"the cluster itself: {line}" for line in changes.by_cluster[:20]),
                    *(f"listable only before or after: {kind}" for kind in changes.unlisted)]
        return Result(
            lab="svclab", probe="nothing-else-changed", claim="safety",
            path="every object outside svclab's namespaces, before the labs and after their clean-up",
            expected="nothing written by svclab, nothing gone",
            observed="nothing of svclab's" if not problems else f"{len(problems)} objects changed by svclab or gone",
            evidence=evidence, passed=not problems, problems=problems, seconds=round(time.monotonic() - started, 2),
            facts={"before": counts, "after": after.counts(), "written": changes.written, "gone": changes.gone,
                   "by_cluster": changes.by_cluster})

    def __enter__(self) -> "Visit":
        return self

    def __exit__(self, *exc) -> None:
        if not self.finished and not self.env.settings.keep:
            try:
                self.clean_up()
            except Exception as e:  # noqa: BLE001 - the run's own error is the one to show
                self.env.ui.warn(f"could not remove svclab's namespaces: {e}")


def forget(settings: Settings) -> None:
    """Removes svclab's state folder of the target (its discovery cache): nothing of a run stays."""
    import shutil

    shutil.rmtree(settings.cluster_dir, ignore_errors=True)


def own_namespaces(kube: Kube) -> list[str]:
    """svclab's namespaces on a cluster: named svclab-* and labelled as svclab's, both (a label
    alone could be anyone's copy of a manifest)."""
    return sorted(n["metadata"]["name"] for n in kube.list("v1", "Namespace", label_selector=MANAGED_SELECTOR)
                  if n["metadata"]["name"].startswith("svclab-"))



def remove_containers(cluster: str) -> list[str]:
    """Removes svclab's outside client of CLUSTER and the clients some probes start beside it
    (site.py's machines of that name); returns the names of what it removed."""
    from . import site

    dc = network.docker_client()
    removed = [network.client_container_name(cluster)] if network.remove_client(dc, cluster) else []
    machines = site.remove_all(dc, cluster)
    return removed + ([f"{machines} container{'s' if machines > 1 else ''} beside it"] if machines else [])


def leave(settings: Settings, ui: UI) -> list[str]:
    """`cluster.down` on the user's cluster: every namespace labelled as svclab's, and svclab's
    outside client container; nothing else. Returns what it removed."""
    from .recovery import remove_namespaces

    kube = kube_for(settings)
    check_reachable(kube, settings)
    removed = remove_namespaces(kube, own_namespaces(kube), timeout=settings.wait_timeout)
    # What --install made, if a run was killed before removing it.
    removed += ingress.remove_cluster_scoped(kube)
    removed += metallb.remove_from_target(kube, timeout=settings.wait_timeout)
    removed += remove_containers(settings.cluster_name)
    forget(settings)
    ui.done(f"removed from context {settings.context}: {', '.join(removed)}" if removed
            else f"nothing of svclab's on context {settings.context}")
    return removed
