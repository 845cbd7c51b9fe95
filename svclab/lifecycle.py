"""Bringing a lab cluster up and down.

`up` is a list of steps, each undone in reverse order if a later one fails or the user presses
Ctrl-C while the cluster is being created: a failed `up` leaves no cluster, container, network,
kubeconfig or state file behind. Reusing an existing cluster of the same shape undoes nothing.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from docker.errors import DockerException, ImageNotFound

from . import network
from .cluster import ClusterRecord, Kind, check_shape, find_tool, shape_of, write_kind_config
from .config import DEFAULT_PROVIDER, Settings, pins
from .errors import PrerequisiteError, SvclabError, UsageError
from .kube import Kube, load_manifests
from .network import Pool
from .providers import Provider, get_provider
from .ui import UI

__all__ = ["Environment", "up", "down", "status", "connect", "SYSTEM_NAMESPACE", "agnhost_image"]

SYSTEM_NAMESPACE = "svclab-system"
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def agnhost_image() -> str:
    return pins()["agnhost"]["image"]


@dataclasses.dataclass
class Environment:
    """A running lab cluster and the handles probes need."""

    settings: Settings
    kube: Kube
    pool: Pool
    provider: Provider
    client_port: int       # loopback port of the outside client's agnhost
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
        taken=network.taken_pools(settings.state_dir, settings.network, except_cluster=settings.cluster_name),
    )
    network.save_pool(path, pool)
    return pool


def _preload(dc, kind: Kind, images: list[str], ui: UI) -> None:
    local, missing = [], []
    for image in images:
        try:
            dc.images.get(image)
            local.append(image)
        except ImageNotFound:
            missing.append(image)
    if local:
        ui.step(f"preloading {len(local)} images into the nodes")
        kind.load_images(local)
    for image in missing:
        ui.warn(f"{image} is not in local Docker: the nodes will pull it themselves")


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
                    hint="build it with `invoke testbed.build`, or unset SVCLAB_NODE_IMAGE to use kind's default") from None
    return dc, kind


def up(settings: Settings, ui: UI) -> Environment:
    dc, kind = preflight(settings)
    kind.echo = ui.echo
    record = ClusterRecord.load(settings.cluster_dir)
    if not settings.provider:
        recorded = record.shape.get("provider") if record else None
        settings = dataclasses.replace(settings, provider=recorded or DEFAULT_PROVIDER)
    provider = get_provider(settings.provider)
    exists = kind.exists()
    if exists and record is None:
        raise UsageError(f"a kind cluster named {settings.cluster_name} exists but svclab did not create it",
                         hint="svclab leaves it alone; choose another --name")
    undo: list[Callable[[], None]] = []
    fresh = not exists
    if record and exists:
        check_shape(record, settings)
        if record.shape.get("provider") != settings.provider:
            raise UsageError(f"cluster {settings.cluster_name} runs provider {record.shape.get('provider')!r}",
                             hint=f"run `svclab cluster.down --name {settings.cluster_name}` first, or pick another --name")
        ui.step(f"reusing cluster {settings.cluster_name}")
    try:
        if fresh:
            settings.cluster_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            undo.append(lambda: shutil.rmtree(settings.cluster_dir, ignore_errors=True))
            if network.ensure_network(dc, settings.network):
                undo.append(lambda: network.remove_network_if_unused(dc, settings.network))
        pool = _carve(dc, settings)
        if fresh:
            ui.step(f"creating kind cluster {settings.cluster_name} "
                    f"(1 control-plane + {settings.workers} workers{', image ' + settings.node_image if settings.node_image else ''})")
            undo.append(kind.delete)
            kind.create(write_kind_config(settings))
            ClusterRecord(settings.cluster_name, _shape(settings)).save(settings.cluster_dir)
        elif not settings.kubeconfig.exists():
            kind.write_kubeconfig()
        kube = Kube(settings.kubeconfig)
        _preload(dc, kind, [*provider.images(), agnhost_image(), pins()["traefik"]["image"]], ui)
        undo.append(lambda: network.remove_client(dc, settings.cluster_name))
        _, port = network.start_client(dc, cluster=settings.cluster_name, pool=pool, image=agnhost_image())
        kube.wait_nodes_ready(settings.workers + 1, timeout=settings.wait_timeout)
        env = Environment(settings, kube, pool, provider, port, ui)
        provider.install(env)
        ui.step("starting the in-cluster client")
        install_client_pod(env)
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
    text = (MANIFESTS / "client.yaml").read_text().replace("${AGNHOST_IMAGE}", agnhost_image())
    env.kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}])
    env.kube.apply(load_manifests(text), namespace=SYSTEM_NAMESPACE)
    env.kube.wait_deployment(SYSTEM_NAMESPACE, "client", timeout=env.settings.wait_timeout)


def connect(settings: Settings, ui: UI) -> Environment:
    """The environment of a cluster that is already up (for labs run after `cluster.up`)."""
    record = ClusterRecord.load(settings.cluster_dir)
    if record is None or not settings.kubeconfig.exists():
        raise UsageError(f"cluster {settings.cluster_name} is not up", hint="run `svclab cluster.up` first")
    settings = dataclasses.replace(settings, provider=record.shape.get("provider") or DEFAULT_PROVIDER)
    dc = network.docker_client()
    pool = network.load_pool(settings.cluster_dir / "pool.json")
    if pool is None:
        raise SvclabError(f"cluster {settings.cluster_name} has no address pool record",
                          hint="run `svclab cluster.down` and `svclab cluster.up`")
    _, port = network.start_client(dc, cluster=settings.cluster_name, pool=pool, image=agnhost_image())
    return Environment(settings, Kube(settings.kubeconfig), pool, get_provider(settings.provider), port, ui)


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
