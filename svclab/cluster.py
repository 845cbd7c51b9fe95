"""kind clusters svclab creates: the rendered kind config, create/reuse/delete, the kubeconfig in
svclab's own state folder, image preload, and the record that says "svclab made this"."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from . import freezer
from .config import Settings
from .errors import CommandError, PrerequisiteError, SvclabError, UsageError
from .run import Echo, run

__all__ = ["BACKEND_NODE_LABEL", "Kind", "find_tool", "node_containers", "render_kind_config", "shape_of", "ClusterRecord"]

BACKEND_NODE_LABEL = "svclab.io/backend-node"
RECORD_FILE = "cluster.json"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"
# After `kind create` is stopped, Docker still completes a node container kind had asked for (the
# request outlives the client that made it); `delete` watches this long for such a latecomer.
STOPPED_CREATE_SETTLE = 10.0


def find_tool(name: str, settings: Settings) -> str:
    """svclab's own tool folder first (the test bed installs pinned builds there), then PATH."""
    own = settings.tools_dir / name
    if own.is_file() and os.access(own, os.X_OK):
        return str(own)
    found = shutil.which(name)
    if found:
        return found
    if name in ("kind", "kubectl"):
        from .doctor import install_hint   # doctor imports this module

        hint = install_hint(name, settings)
    else:
        hint = DOCKER_HINT if name == "docker" else None
    raise PrerequisiteError(f"{name} was not found on PATH or in {settings.tools_dir}", hint=hint)


DOCKER_HINT = ("install Docker (https://docs.docker.com/engine/install/; on macOS Docker Desktop, colima or "
               "OrbStack) and start it")


def shape_of(settings: Settings) -> dict[str, Any]:
    """What makes two clusters interchangeable: reuse needs the same shape."""
    return {"workers": settings.workers, "node_image": settings.node_image,
            "kube_proxy_mode": settings.kube_proxy_mode, "network": settings.network}


def render_kind_config(settings: Settings) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"role": "control-plane"}]
    for i in range(settings.workers):
        worker: dict[str, Any] = {"role": "worker"}
        if i == 0:
            # Labs that need "a node with a backend" and "nodes without" schedule onto this one.
            worker["labels"] = {BACKEND_NODE_LABEL: "true"}
        nodes.append(worker)
    if settings.workers == 0:
        nodes[0]["labels"] = {BACKEND_NODE_LABEL: "true"}
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": settings.cluster_name,
        # The API server is the only port a cluster publishes on the host: on loopback, behind TLS
        # with client certificates (kind's default address, written out so a test can hold it).
        "networking": {"kubeProxyMode": settings.kube_proxy_mode, "ipFamily": "ipv4", "apiServerAddress": "127.0.0.1"},
        "nodes": nodes,
    }


@dataclasses.dataclass(frozen=True)
class ClusterRecord:
    """Written before svclab creates a cluster (COMPLETE once `up` has made it); `down` deletes
    only clusters that have one, so an `up` killed halfway can still be cleaned up."""

    name: str
    shape: dict[str, Any]
    complete: bool = True

    @classmethod
    def load(cls, directory: Path) -> ClusterRecord | None:
        try:
            data = json.loads((directory / RECORD_FILE).read_text())
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            raise SvclabError(f"{directory / RECORD_FILE} is damaged",
                              hint=f"remove {directory} by hand after checking `kind get clusters`") from None

    def save(self, directory: Path) -> None:
        (directory / RECORD_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def node_containers(dc, cluster: str, *, stopped: bool = True, sparse: bool = False) -> list:
    """The node containers of kind cluster CLUSTER (kind labels each with its cluster's name);
    STOPPED includes those not running, SPARSE skips inspecting each one (ids and names only)."""
    return dc.containers.list(all=stopped, sparse=sparse, filters={"label": f"{KIND_CLUSTER_LABEL}={cluster}"})


class Kind:
    """The kind binary, always run against svclab's docker network and kubeconfig file."""

    def __init__(self, settings: Settings, echo: Echo | None = None):
        self.settings = settings
        self.binary = find_tool("kind", settings)
        self.echo = echo
        self.env = {"KIND_EXPERIMENTAL_DOCKER_NETWORK": settings.network}
        self.create_stopped_at: float | None = None   # when a `create` failed or was interrupted

    def _run(self, *args: str, timeout: float | None = None):
        return run([self.binary, *args], env=self.env, timeout=timeout, echo=self.echo)

    def clusters(self) -> list[str]:
        out = self._run("get", "clusters", timeout=60).stdout
        return [line.strip() for line in out.splitlines() if line.strip() and "No kind clusters" not in line]

    def exists(self) -> bool:
        return self.settings.cluster_name in self.clusters()

    def nodes(self) -> list[str]:
        out = self._run("get", "nodes", "--name", self.settings.cluster_name, timeout=60).stdout
        return sorted(line.strip() for line in out.splitlines() if line.strip() and "No kind nodes" not in line)

    def create(self, config_path: Path) -> None:
        s = self.settings
        args = ["create", "cluster", "--name", s.cluster_name, "--config", str(config_path),
                "--kubeconfig", str(s.own_kubeconfig), "--retain"]
        if s.node_image:
            args += ["--image", s.node_image]
        try:
            self._run(*args, timeout=s.wait_timeout + 600)
        except BaseException:
            self.create_stopped_at = time.monotonic()
            raise

    def write_kubeconfig(self) -> None:
        s = self.settings
        self._run("export", "kubeconfig", "--name", s.cluster_name, "--kubeconfig", str(s.own_kubeconfig), timeout=60)

    def delete(self) -> None:
        s = self.settings
        args = ("delete", "cluster", "--name", s.cluster_name, "--kubeconfig", str(s.own_kubeconfig))
        try:
            self._run(*args, timeout=300)
        except CommandError as e:
            if freezer.STUCK_MESSAGE not in str(e) or not self._thaw_nodes():
                raise
            self._run(*args, timeout=300)   # once more, now that nothing in the nodes is frozen
        if self.create_stopped_at is not None:
            self._remove_latecomers(self.create_stopped_at + STOPPED_CREATE_SETTLE)

    def _remove_latecomers(self, until: float) -> None:
        """Removes (with their volumes) node containers of this cluster that Docker finishes
        creating after `kind delete` looked, until the monotonic time UNTIL."""
        from docker.errors import APIError, NotFound

        from .network import docker_client

        dc = docker_client()
        while True:
            for container in node_containers(dc, self.settings.cluster_name, sparse=True):
                if self.echo:
                    self.echo(f"$ docker rm --force --volumes {container.id[:12]}")
                try:
                    container.remove(force=True, v=True)
                except NotFound:
                    pass
                except APIError as e:
                    if freezer.STUCK_MESSAGE in str(e) and freezer.thaw(container.id):
                        container.remove(force=True, v=True)   # once more, now that nothing in it is frozen
                    elif e.status_code != 409:   # 409: its removal is already in progress
                        raise
            if time.monotonic() >= until:
                return
            time.sleep(0.5)

    def _thaw_nodes(self) -> int:
        """Thaws what is frozen inside this cluster's node containers (see freezer.py)."""
        from .network import docker_client

        thawed = sum(freezer.thaw(c.id) for c in node_containers(docker_client(), self.settings.cluster_name, sparse=True))
        if thawed and self.echo:
            self.echo(f"thawed {thawed} frozen cgroups inside the nodes of {self.settings.cluster_name}")
        return thawed

    def export_logs(self, dest: Path) -> None:
        self._run("export", "logs", str(dest), "--name", self.settings.cluster_name, timeout=300)

    def load_images(self, images: list[str]) -> None:
        if images:
            self._run("load", "docker-image", "--name", self.settings.cluster_name, *images, timeout=900)


def write_kind_config(settings: Settings) -> Path:
    path = settings.cluster_dir / "kind.yaml"
    settings.make_cluster_dir()
    path.write_text(yaml.safe_dump(render_kind_config(settings), sort_keys=False))
    return path


def check_shape(record: ClusterRecord, settings: Settings) -> None:
    """Refuses SETTINGS that ask for another shape than the existing cluster's, naming the
    setting and where the other value came from."""
    want = shape_of(settings)
    diff = {k: (record.shape.get(k), v) for k, v in want.items() if record.shape.get(k) != v}
    if diff:
        key, (have, wanted) = next(iter(diff.items()))
        source = settings.sources.get(key)
        down = f"run `svclab cluster.down --name {settings.cluster_name}` first, or pick another --name"
        raise UsageError(f"cluster {settings.cluster_name} exists with {key}={have!r}, "
                         + (f"and {source} asks for {wanted!r}" if source else f"not {wanted!r}"),
                         hint=f"drop {source} to use the cluster as it is, {down}" if source else down)
