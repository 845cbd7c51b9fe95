"""Bringing a lab cluster up and down.

`up` is a list of steps, each undone in reverse order if a later one fails or the user presses
Ctrl-C while the cluster is being created: a failed `up` leaves no cluster, container, network,
kubeconfig or state file behind. Reusing an existing cluster of the same shape undoes nothing.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import shutil
import threading
from collections.abc import Callable

from docker.errors import DockerException, ImageNotFound

from . import ingress, network, render
from .outside import OutsideClient
from .cluster import ClusterRecord, Kind, check_shape, find_tool, node_containers, shape_of, write_kind_config
from .config import DEFAULT_PROVIDER, DEFAULT_WORKERS, Settings, agnhost_image
from .errors import PrerequisiteError, SvclabError, UsageError
from .kube import Kube, WaitCancelled, cancel_waits, load_manifests
from .network import Pool
from .placement import prefer_control_plane
from .providers import Provider, get_provider
from .ui import UI

__all__ = ["Environment", "up", "down", "status", "connect", "SYSTEM_NAMESPACE", "agnhost_image"]

SYSTEM_NAMESPACE = "svclab-system"
CLIENT_STARTER = "svclab-client-start"


@dataclasses.dataclass
class Environment:
    """A running lab cluster and the handles probes need."""

    settings: Settings
    kube: Kube
    pool: Pool
    provider: Provider
    outside: OutsideClient  # commands for the outside client container, over the Docker API
    ui: UI

    def step(self, message: str) -> None:
        self.ui.step(message)


def _shape(settings: Settings) -> dict:
    return {**shape_of(settings), "provider": settings.provider}


def _carve(dc, settings: Settings) -> Pool:
    path = settings.cluster_dir / "pool.json"
    pool = network.load_pool(path)
    if pool and pool.network == settings.network and pool.addresses() and len(pool.addresses()) == settings.pool_size:
        return pool
    subnet, gateway, used = network.network_facts(dc, settings.network)
    pool = network.carve_pool(
        network=settings.network, subnet=subnet, gateway=gateway, used=used, size=settings.pool_size,
        taken=[*network.taken_pools(settings.state_dir, settings.network, except_cluster=settings.cluster_name),
               *network.pools_in_use(dc, settings.network, except_cluster=settings.cluster_name)],
    )
    network.save_pool(path, pool)
    return pool


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


def _join_threads(prefix: str, timeout: float = 120.0) -> None:
    """Waits for this process's threads named PREFIX*. A signal can arrive while Thread.start()
    waits for the new thread to run, before any executor or caller holds it; found by name, such
    a thread is still waited for, so an undo never races the work it is doing."""
    for thread in threading.enumerate():
        if thread.name.startswith(prefix) and thread is not threading.current_thread():
            thread.join(timeout)


def _remove_client_after_start(dc, cluster: str) -> None:
    _join_threads(CLIENT_STARTER)
    network.remove_client(dc, cluster)


def _together(*tasks: Callable[[], None]) -> None:
    """Runs TASKS in threads until all are done or one fails; on a failure or Ctrl-C the others'
    waits are cancelled, so no thread outlives the rollback, and the first failure is raised."""
    cancel_waits(False)
    futures: list[concurrent.futures.Future] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        try:   # the submits too: Ctrl-C can land while one of them starts its thread
            futures += [pool.submit(task) for task in tasks]
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        finally:
            if len(futures) < len(tasks) or not all(f.done() and not f.exception() for f in futures):
                cancel_waits()
    failures = [f.exception() for f in futures if not isinstance(f.exception(), (type(None), WaitCancelled))]
    if failures:
        raise failures[0]


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


def up(settings: Settings, ui: UI) -> Environment:
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
    undo: list[Callable[[], None]] = []
    fresh = not exists
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
    try:
        if fresh:
            settings.make_cluster_dir()
            undo.append(lambda: shutil.rmtree(settings.cluster_dir, ignore_errors=True))
            if network.ensure_network(dc, settings.network):
                undo.append(lambda: network.remove_network_if_unused(dc, settings.network))
        pool = _carve(dc, settings)
        if fresh:
            ui.step(f"creating kind cluster {settings.cluster_name} "
                    f"(1 control-plane + {settings.workers} workers{', image ' + settings.node_image if settings.node_image else ''})")
            undo.append(kind.delete)
            # Recorded first: if this process is killed outright, `down` still knows the cluster is svclab's.
            ClusterRecord(settings.cluster_name, _shape(settings), complete=False).save(settings.cluster_dir)
        undo.append(lambda: _remove_client_after_start(dc, settings.cluster_name))
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=CLIENT_STARTER) as aside:
            # The outside client needs only the network and the pool: it starts while kind works.
            client = aside.submit(network.start_client, dc, cluster=settings.cluster_name, pool=pool,
                                  image=agnhost_image())
            if fresh:
                kind.create(write_kind_config(settings))
                ClusterRecord(settings.cluster_name, _shape(settings)).save(settings.cluster_dir)
            elif not settings.kubeconfig.exists():
                kind.write_kubeconfig()
            client_name = client.result()
        kube = Kube(settings.kubeconfig)
        if not fresh:
            kube.wait_api_server(timeout=settings.wait_timeout)
        _preload(dc, [*provider.images(), agnhost_image(), *ingress.images(settings.ingress)],
                 node_containers(dc, settings.cluster_name), kind, ui)
        env = Environment(settings, kube, pool, provider, OutsideClient(dc, client_name), ui)
        # Everything is applied at once; pods start as soon as their node is Ready.
        _together(lambda: provider.install(env), lambda: ingress.install(env), lambda: install_client_pod(env),
                  lambda: kube.wait_nodes_ready(settings.workers + 1, timeout=settings.wait_timeout))
        ui.done(f"cluster {settings.cluster_name} is up: provider {provider.describe()}, pool {pool.range}")
        return env
    except BaseException:
        if fresh:
            if not settings.quiet:
                ui.warn(f"undoing the partial cluster {settings.cluster_name}")
            for action in reversed(undo):
                try:
                    action()
                except Exception as e:  # noqa: BLE001 - keep undoing; report what stayed behind
                    ui.warn(f"cleanup step failed: {e}")
        raise


def install_client_pod(env: Environment) -> None:
    env.step("starting the in-cluster client")
    text = render.manifest("client.yaml", render.context())
    env.kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}])
    env.kube.apply(prefer_control_plane(load_manifests(text)), namespace=SYSTEM_NAMESPACE)
    env.kube.wait_deployment(SYSTEM_NAMESPACE, "client", timeout=env.settings.wait_timeout)


def connect(settings: Settings, ui: UI) -> Environment:
    """The environment of a cluster that is already up (for labs run after `cluster.up`)."""
    record = ClusterRecord.load(settings.cluster_dir)
    if record is None or not settings.kubeconfig.exists():
        raise UsageError(f"cluster {settings.cluster_name} is not up", hint="run `svclab cluster.up` first")
    settings = resolve_from_record(settings, record)
    dc = network.docker_client()
    pool = network.load_pool(settings.cluster_dir / "pool.json")
    if pool is None:
        raise SvclabError(f"cluster {settings.cluster_name} has no address pool record",
                          hint="run `svclab cluster.down` and `svclab cluster.up`")
    client_name = network.start_client(dc, cluster=settings.cluster_name, pool=pool, image=agnhost_image())
    return Environment(settings, Kube(settings.kubeconfig), pool, get_provider(settings.provider),
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
        if settings.cluster_dir.exists():
            shutil.rmtree(settings.cluster_dir)
        return removed
    ui.step(f"deleting cluster {settings.cluster_name}")
    network.remove_client(dc, settings.cluster_name)
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
        "kubeconfig": str(settings.kubeconfig) if settings.kubeconfig.exists() else None,
    }
