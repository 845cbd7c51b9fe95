"""Bringing a lab cluster up and down.

Each thing `up` makes registers its own undo, where it is made, on one ExitStack: if a later
step fails or the user presses Ctrl-C (or sends SIGTERM) while the cluster is being created, they
run in reverse order, and a failed `up` leaves no cluster, container, network, kubeconfig or state
file behind; on success the stack lets go of them. Reusing an existing cluster of the same shape
undoes nothing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from docker.errors import DockerException, ImageNotFound

from . import ingress, ipvs, network, render, site
from .outside import OutsideClient
from .cluster import ClusterRecord, Kind, check_shape, find_tool, node_containers, shape_of, write_kind_config
from .config import DEFAULT_PROVIDER, DEFAULT_WORKERS, Settings, agnhost_image
from .errors import PrerequisiteError, SvclabError, UsageError
from .cancel import WaitCancelled, Workers
from .kube import Kube, load_manifests
from .network import Pool
from .placement import prefer_control_plane
from .providers import Provider, get_provider
from .ui import UI

__all__ = ["Environment", "up", "down", "status", "connect", "SYSTEM_NAMESPACE"]

SYSTEM_NAMESPACE = "svclab-system"
POOLS_WAIT = 30.0
CLIENT_STARTER = "svclab-client-start"


@dataclasses.dataclass
class Environment:
    """A running lab cluster and the handles probes need."""

    settings: Settings
    kube: Kube
    pool: Pool
    provider: Provider
    outside: OutsideClient | None  # commands for the outside client container, over the Docker API
    ui: UI
    target: Any = None      # target.Target: a cluster svclab did not make (None: svclab's own kind cluster)

    def step(self, message: str) -> None:
        self.ui.step(message)

    @property
    def kube_proxy_mode(self) -> str:
        """The cluster's kube-proxy mode: the one detected on a cluster svclab did not make, else
        the one svclab made it with (settings follow the cluster's record)."""
        return self.target.detected.kube_proxy_mode if self.target else self.settings.kube_proxy_mode


def _shape(settings: Settings) -> dict:
    return {**shape_of(settings), "provider": settings.provider}


def carve(dc, settings: Settings, network_name: str | None = None) -> Pool:
    """The cluster's block of load-balancer addresses on docker network NETWORK_NAME (default:
    svclab's network), carved once and kept in the cluster's folder."""
    name = network_name or settings.network
    path = settings.cluster_dir / "pool.json"
    pool = network.load_pool(path)
    if pool and pool.network == name and pool.addresses() and len(pool.addresses()) == settings.pool_size:
        return pool
    # Two `up`s of different clusters at once: each carves only while it holds this lock, and
    # saves its pool before letting go, so the second sees the first's pool as taken.
    with _pools_lock(settings.state_dir):
        subnet, gateway, used = network.network_facts(dc, name)
        pool = network.carve_pool(
            network=name, subnet=subnet, gateway=gateway, used=used, size=settings.pool_size,
            taken=[*network.taken_pools(settings.state_dir, name, except_cluster=settings.cluster_name),
                   *network.pools_in_use(dc, name, except_cluster=settings.cluster_name)],
        )
        network.save_pool(path, pool)
    return pool


@contextlib.contextmanager
def _pools_lock(state_dir):
    """An exclusive flock on the folder <state>/clusters itself for the block: no lock file is
    left behind, and the kernel drops the lock however the holder ends. Carving takes
    milliseconds: a wait of POOLS_WAIT seconds means the holder hangs."""
    import fcntl
    import time

    folder = state_dir / "clusters"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + POOLS_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SvclabError(f"another svclab has been carving an address pool for {POOLS_WAIT:.0f}s",
                                      hint="stop it, or wait for it to end") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _images_in_node(node) -> set[str]:
    """IDs of the images the node's containerd holds (for a kind node: `crictl images`)."""
    code, out = node.exec_run(["crictl", "images", "-o", "json"], demux=False)
    if code != 0:
        return set()
    return {image["id"] for image in json.loads(out).get("images", [])}


def _preload(dc, images: list[str], nodes: list, kind: Kind, ui: UI) -> None:
    """Loads into the nodes each image they lack (a test-bed node image already holds them all)."""
    local, missing = {}, []
    for image in dict.fromkeys(images):
        try:
            local[image] = dc.images.get(image).id
        except ImageNotFound:
            missing.append(image)
    for image in missing:
        ui.warn(f"{image} is not in local Docker: the nodes will pull it themselves")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        held = list(pool.map(_images_in_node, nodes))
    wanted = [image for image, image_id in local.items() if any(image_id not in ids for ids in held)]
    if wanted:
        ui.step(f"preloading {len(wanted)} images into the nodes")
        kind.load_images(wanted)


def _remove_client(dc, cluster: str, starter: Workers) -> None:
    starter.join()   # an undo must not race the start it undoes
    network.remove_client(dc, cluster)


def _together(*tasks: Callable[[], None]) -> None:
    """Runs TASKS in threads of their own until all are done or one fails. A failure or Ctrl-C
    cancels the others' waits, every thread is joined before this returns or raises (none
    outlives the undo), and the first failure is raised."""
    futures: list[concurrent.futures.Future] = []
    with Workers("svclab-install") as workers:
        futures += [workers.submit(task) for task in tasks]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        if any(f.exception() for f in futures if f.done()):
            workers.cancel.set()
    failures = [f.exception() for f in futures if not isinstance(f.exception(), (type(None), WaitCancelled))]
    if failures:
        raise failures[0]


def _undo_step(action: Callable[[], object], ui: UI) -> None:
    try:
        action()
    except Exception as e:  # noqa: BLE001 - keep undoing; report what stayed behind
        ui.warn(f"cleanup step failed: {e}")


def resolve_from_record(settings: Settings, record: ClusterRecord | None) -> Settings:
    """Settings of the cluster's shape that were not given (flag, environment, settings file)
    take the existing cluster's values, else defaults: `svclab lab.nodeport` simply uses the
    cluster that `cluster.up --workers 4 --provider none` made, with the node image it has."""
    shape = record.shape if record else {}
    follow = {key: shape[key] for key in (*shape_of(settings), "provider")
              if key in shape and shape[key] is not None and not settings.given(key)}
    settings = dataclasses.replace(settings, **follow)
    return dataclasses.replace(
        settings,
        provider=settings.provider or DEFAULT_PROVIDER,
        workers=settings.workers if settings.workers is not None else DEFAULT_WORKERS)


def preflight(settings: Settings):
    """Every prerequisite, checked before anything is created; each failure says how to fix it."""
    dc = network.docker_client()
    find_tool("kubectl", settings)  # the labs' own instructions use it
    kind = Kind(settings)
    if settings.node_image:
        try:
            dc.images.get(settings.node_image)
        except ImageNotFound:
            try:
                dc.images.pull(settings.node_image)
            except DockerException as e:
                raise PrerequisiteError(
                    f"node image {settings.node_image} is not in local Docker and cannot be pulled "
                    f"({str(e).splitlines()[0][:100]})",
                    hint=f"load it into Docker (`svclab images.load`, `docker load`), or drop "
                         f"{settings.sources.get('node_image', 'the node_image setting')} to use kind's default") from None
    return dc, kind


def preflight_new_cluster(dc, settings: Settings) -> None:
    """The prerequisites only a cluster about to be created has (a reused one already runs)."""
    if settings.kube_proxy_mode == "ipvs":
        ipvs.require(dc, settings)


def up(settings: Settings, ui: UI) -> Environment:
    if not settings.targets_own_cluster:   # bench, compare, soak: only on svclab's own clusters
        raise UsageError("this command makes or reuses a kind cluster of svclab's own, and --kubeconfig/--context "
                         "(or SVCLAB_KUBECONFIG/SVCLAB_CONTEXT) name another cluster",
                         hint="run the lab tasks on that cluster, or unset SVCLAB_KUBECONFIG/SVCLAB_CONTEXT")
    dc, kind = preflight(settings)
    kind.echo = ui.echo
    record = ClusterRecord.load(settings.cluster_dir)
    settings = resolve_from_record(settings, record)
    provider = get_provider(settings.provider)
    exists = kind.exists()
    if exists and record is None:
        raise UsageError(f"a kind cluster named {settings.cluster_name} exists but svclab did not create it",
                         hint="svclab leaves it alone; choose another --name")
    if record and not record.complete:
        raise UsageError(f"cluster {settings.cluster_name} was left half-made by an `up` that was stopped",
                         hint=f"run `svclab cluster.down --name {settings.cluster_name}`, then `up` again")
    fresh = not exists
    if fresh:
        preflight_new_cluster(dc, settings)
    if record and exists:
        check_shape(record, settings)
        if record.shape.get("provider") != settings.provider:
            raise UsageError(f"cluster {settings.cluster_name} runs provider {record.shape.get('provider')!r}",
                             hint=f"run `svclab cluster.down --name {settings.cluster_name}` first, or pick another --name")
        stopped = [node.name for node in node_containers(dc, settings.cluster_name) if node.status != "running"]
        if stopped:
            raise SvclabError(f"cluster {settings.cluster_name}: node {stopped[0]} is not running",
                              hint=f"start it (`docker start {' '.join(stopped)}`), or run "
                                   f"`svclab cluster.down --name {settings.cluster_name}` and `up` again")
        ui.step(f"reusing cluster {settings.cluster_name}")
    undo = contextlib.ExitStack()

    def undone_by(action: Callable[[], object]) -> None:
        """Registers ACTION as the undo of what was just made (a reused cluster undoes nothing)."""
        if fresh:
            undo.callback(_undo_step, action, ui)

    with undo:
        try:
            env = _make(settings, provider, dc, kind, ui, fresh, undone_by)
        except BaseException:
            if fresh and not settings.quiet:
                ui.warn(f"undoing the partial cluster {settings.cluster_name}")
            raise
        undo.pop_all()   # up: keep everything it made
    ui.done(f"cluster {settings.cluster_name} is up: provider {provider.describe()}, pool {env.pool.range}")
    return env


def _make(settings: Settings, provider: Provider, dc, kind: Kind, ui: UI, fresh: bool,
          undone_by: Callable[[Callable[[], object]], None]) -> Environment:
    """The steps of `up` after its checks; each registers the undo of what it makes with UNDONE_BY."""
    if fresh:
        settings.make_cluster_dir()
        undone_by(lambda: shutil.rmtree(settings.cluster_dir, ignore_errors=True))
        # Under the pools' lock: Docker lets two `up`s at once each make a network of one name.
        with _pools_lock(settings.state_dir):
            made = network.ensure_network(dc, settings.network)
        if made:
            undone_by(lambda: network.remove_network_if_unused(dc, settings.network))
    pool = carve(dc, settings)
    if fresh:
        ui.step(f"creating kind cluster {settings.cluster_name} "
                f"(1 control-plane + {settings.workers} workers{', image ' + settings.node_image if settings.node_image else ''})")
        undone_by(kind.delete)
        # Recorded first: if this process is killed outright, `down` still knows the cluster is svclab's.
        ClusterRecord(settings.cluster_name, _shape(settings), complete=False).save(settings.cluster_dir)
    starter = Workers(CLIENT_STARTER)
    undone_by(lambda: _remove_client(dc, settings.cluster_name, starter))
    with starter:
        # The outside client needs only the network and the pool: it starts while kind works.
        client = starter.submit(network.start_client, dc, cluster=settings.cluster_name, pool=pool,
                                image=agnhost_image())
        if fresh:
            kind.create(write_kind_config(settings))
            ClusterRecord(settings.cluster_name, _shape(settings)).save(settings.cluster_dir)
        elif not settings.own_kubeconfig.exists():
            kind.write_kubeconfig()
        client_name = client.result()
    kube = Kube(settings.own_kubeconfig)
    if not fresh:
        kube.wait_api_server(timeout=settings.wait_timeout)
    _preload(dc, [*provider.images(), agnhost_image(), *ingress.images(settings.ingress)],
             node_containers(dc, settings.cluster_name), kind, ui)
    env = Environment(settings, kube, pool, provider, OutsideClient(dc, client_name), ui)
    # Everything is applied at once; pods start as soon as their node is Ready.
    _together(lambda: provider.install(env), lambda: ingress.install(env), lambda: install_client_pod(env),
              lambda: kube.wait_nodes_ready(settings.workers + 1, timeout=settings.wait_timeout))
    return env


def install_client_pod(env: Environment) -> None:
    env.step("starting the in-cluster client")
    text = render.manifest("client.yaml", render.context())
    env.kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}])
    env.kube.apply(prefer_control_plane(load_manifests(text)), namespace=SYSTEM_NAMESPACE)
    env.kube.wait_deployment(SYSTEM_NAMESPACE, "client", timeout=env.settings.wait_timeout)


def connect(settings: Settings, ui: UI) -> Environment:
    """The environment of a cluster that is already up (for labs run after `cluster.up`)."""
    record = ClusterRecord.load(settings.cluster_dir)
    if record is None or not settings.own_kubeconfig.exists():
        raise UsageError(f"cluster {settings.cluster_name} is not up", hint="run `svclab cluster.up` first")
    settings = resolve_from_record(settings, record)
    dc = network.docker_client()
    pool = network.load_pool(settings.cluster_dir / "pool.json")
    if pool is None:
        raise SvclabError(f"cluster {settings.cluster_name} has no address pool record",
                          hint="run `svclab cluster.down` and `svclab cluster.up`")
    client_name = network.start_client(dc, cluster=settings.cluster_name, pool=pool, image=agnhost_image())
    return Environment(settings, Kube(settings.own_kubeconfig), pool, get_provider(settings.provider),
                       OutsideClient(dc, client_name), ui)


def down(settings: Settings, ui: UI) -> bool:
    """Deletes the cluster if svclab created it. Returns False when there was nothing to delete."""
    record = ClusterRecord.load(settings.cluster_dir)
    dc = network.docker_client()
    kind = Kind(settings, echo=ui.echo)
    if record is None:
        if kind.exists():
            raise UsageError(f"cluster {settings.cluster_name} was not created by svclab", hint="svclab leaves it alone")
        removed = network.remove_client(dc, settings.cluster_name)
        removed = bool(site.remove_all(dc, settings.cluster_name)) or removed
        if settings.cluster_dir.exists():
            shutil.rmtree(settings.cluster_dir)
        return removed
    ui.step(f"deleting cluster {settings.cluster_name}")
    network.remove_client(dc, settings.cluster_name)
    if machines := site.remove_all(dc, settings.cluster_name):
        ui.step(f"removed {machines} machine{'s' if machines > 1 else ''} svclab ran beside the cluster")
    kind.delete()
    shutil.rmtree(settings.cluster_dir, ignore_errors=True)
    if network.remove_network_if_unused(dc, settings.network):
        ui.step(f"removed docker network {settings.network}")
    ui.done(f"cluster {settings.cluster_name} deleted")
    return True


def status(settings: Settings) -> dict:
    record = ClusterRecord.load(settings.cluster_dir)
    kind = Kind(settings)
    exists = kind.exists()
    pool = network.load_pool(settings.cluster_dir / "pool.json")
    return {
        "name": settings.cluster_name,
        "exists": exists,
        "created_by_svclab": record is not None,
        "shape": record.shape if record else None,
        "nodes": kind.nodes() if exists else [],
        "pool": pool.range if pool else None,
        "client_ip": pool.client_ip if pool else None,
        "kubeconfig": str(settings.own_kubeconfig) if settings.own_kubeconfig.exists() else None,
    }
