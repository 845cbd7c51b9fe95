"""Settings: flags > environment (SVCLAB_*) > svclab.yaml > defaults, resolved once into a frozen
object that every stage receives. Pinned versions live in pins.toml beside this file."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from . import resources
from .errors import UsageError

__all__ = ["Settings", "load_settings", "pins", "agnhost_image", "PROVIDERS", "DEFAULT_PROVIDER", "DEFAULT_WORKERS",
           "KUBE_PROXY_MODES", "INGRESS_CONTROLLERS", "OUTSIDE_CLIENTS"]

PROVIDERS = ("metallb", "kube-vip", "none")
DEFAULT_PROVIDER = "metallb"
DEFAULT_WORKERS = 2
KUBE_PROXY_MODES = ("iptables", "nftables", "ipvs")
INGRESS_CONTROLLERS = ("traefik", "none")
# What svclab installs on a cluster it did not make when asked (--install), for one run.
INSTALLABLE = ("traefik", "metallb")
# Who sends "from outside the cluster" on a cluster svclab did not make (target.connect): auto is a
# container of svclab's where the nodes are containers of this machine's Docker, else this machine;
# container:NAME is a container of the user's own on the nodes' docker network.
OUTSIDE_CLIENTS = ("auto", "container", "this-machine", "none", "container:NAME")
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")   # as Docker accepts them
CONFIG_FILE = "svclab.yaml"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@functools.cache
def pins() -> dict[str, Any]:
    with resources.pins_file().open("rb") as f:
        return tomllib.load(f)


def agnhost_image() -> str:
    """The image of the labs' echo backends and of both probe clients."""
    return pins()["agnhost"]["image"]


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "svclab"


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "svclab"


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "svclab"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    cluster_name: str = "svclab"
    workers: int | None = None           # None: the existing cluster's, else DEFAULT_WORKERS
    node_image: str = ""                 # empty: the kind release's own default image
    kube_proxy_mode: str = "iptables"
    provider: str = ""                   # empty: the existing cluster's, else DEFAULT_PROVIDER
    ingress: str = "traefik"             # the Ingress controller `up` installs: traefik or none
    network: str = "svclab"              # the docker network svclab's clusters live on
    pool_size: int = 32                  # load-balancer addresses carved per cluster (lab.all uses ~16)
    state_dir: Path = dataclasses.field(default_factory=_state_home)
    tools_dir: Path = dataclasses.field(default_factory=lambda: _data_home() / "bin")
    cache_dir: Path = dataclasses.field(default_factory=_cache_home)
    mirror: Path | None = None           # folder holding pinned upstream files for offline use
    wait_timeout: float = 240.0          # seconds for any single wait on cluster state
    probe_timeout: float = 5.0           # seconds for one HTTP request made by a probe
    lock_wait: float = 120.0             # seconds a command waits for another one on the same cluster
    lb_price: str = "15-25"              # a cloud load balancer's monthly price in USD: LOW-HIGH or one figure
    # A cluster svclab did not make: the labs run on it, and svclab creates no cluster there.
    kubeconfig: Path | None = None       # its kubeconfig file (with only `context` given: $KUBECONFIG or ~/.kube/config)
    context: str = ""                    # the context in that file (default: the file's current context)
    keep: bool = False                   # on such a cluster, leave the labs' namespaces when the run ends
    install: str = ""                    # on such a cluster, what to install for the run (INSTALLABLE, comma-separated)
    outside: str = "auto"                # on such a cluster, the outside client (OUTSIDE_CLIENTS)
    verbose: bool = False
    quiet: bool = False
    # Where each setting that was given came from ("--workers", "SVCLAB_NODE_IMAGE", "svclab.yaml");
    # settings absent here took their defaults (or follow an existing cluster).
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.cluster_name) or len(self.cluster_name) > 40:
            raise UsageError(f"invalid cluster name {self.cluster_name!r}",
                             hint="use lowercase letters, digits and '-', at most 40 characters, e.g. 'svclab'")
        if self.workers is not None and not 0 <= self.workers <= 5:
            raise UsageError(f"workers must be between 0 and 5, got {self.workers}", hint="e.g. --workers 2")
        if self.provider and self.provider not in PROVIDERS:
            raise UsageError(f"unknown provider {self.provider!r}", hint=f"choose one of {', '.join(PROVIDERS)}")
        if self.ingress not in INGRESS_CONTROLLERS:
            raise UsageError(f"unknown ingress controller {self.ingress!r}",
                             hint=f"choose one of {', '.join(INGRESS_CONTROLLERS)}")
        if self.kube_proxy_mode not in KUBE_PROXY_MODES:
            raise UsageError(f"unknown kube-proxy mode {self.kube_proxy_mode!r}",
                             hint=f"choose one of {', '.join(KUBE_PROXY_MODES)}")
        if not _NAME.match(self.network):
            raise UsageError(f"invalid docker network name {self.network!r}", hint="use lowercase letters, digits and '-'")
        if not 4 <= self.pool_size <= 256:
            raise UsageError(f"pool_size must be between 4 and 256, got {self.pool_size}")
        if self.wait_timeout <= 0 or self.probe_timeout <= 0 or self.lock_wait < 0:
            raise UsageError("timeouts must be positive numbers of seconds (lock_wait may be 0: do not wait)")
        price_range(self.lb_price)
        if self.outside not in OUTSIDE_CLIENTS[:-1] and self.user_outside_container is None:
            raise UsageError(f"unknown outside client {self.outside!r}", hint=f"choose one of {', '.join(OUTSIDE_CLIENTS)}")
        if unknown := [item for item in self.installs if item not in INSTALLABLE]:
            raise UsageError(f"svclab cannot install {unknown[0]!r} on a cluster",
                             hint=f"--install takes {', '.join(INSTALLABLE)}")

    @property
    def user_outside_container(self) -> str | None:
        """NAME of `outside: container:NAME` (the user's own container as the outside client), else None."""
        kind, _, name = self.outside.partition(":")
        return name if kind == "container" and _CONTAINER_NAME.match(name) else None

    @property
    def installs(self) -> tuple[str, ...]:
        """The items of `install`, in order."""
        return tuple(item.strip() for item in self.install.split(",") if item.strip())

    def given(self, name: str) -> bool:
        """Whether setting NAME was asked for (by a flag, the environment, the settings file, or
        in code as a value other than its default)."""
        return name in self.sources or getattr(self, name) != _FIELDS[name].default

    @property
    def cluster_dir(self) -> Path:
        return self.state_dir / "clusters" / self.cluster_name

    @property
    def own_kubeconfig(self) -> Path:
        """The kubeconfig file of the kind cluster svclab made (svclab's alone, never ~/.kube/config)."""
        return self.cluster_dir / "kubeconfig"

    @property
    def targets_own_cluster(self) -> bool:
        """False when the labs run on a cluster the user named (--kubeconfig / --context)."""
        return self.kubeconfig is None and not self.context

    def target_kubeconfig(self) -> Path:
        """The kubeconfig file of the user's cluster: the one named, else $KUBECONFIG's first, else ~/.kube/config."""
        if self.kubeconfig is not None:
            return self.kubeconfig
        named = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        return Path(os.path.expanduser(named)) if named else Path.home() / ".kube" / "config"

    def make_cluster_dir(self) -> Path:
        """The cluster's state folder, and svclab's folders above it, readable only by the owner
        (they hold kubeconfig files)."""
        for folder in (self.state_dir, self.state_dir / "clusters", self.cluster_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
        return self.cluster_dir


def price_range(text: str) -> tuple[float, float]:
    """A monthly price as (low, high) from "15-25" or "20" (US dollars)."""
    parts = str(text).replace("$", "").split("-")
    try:
        low, high = (float(parts[0]), float(parts[-1])) if len(parts) <= 2 else (None, None)
    except ValueError:
        low = high = None
    if low is None or high is None or not 0 <= low <= high:
        raise UsageError(f"lb_price must be a monthly price in dollars, LOW-HIGH or one figure, got {text!r}",
                         hint="for example SVCLAB_LB_PRICE=15-25")
    return low, high


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "sources"}   # the settings one can give


def _coerce(name: str, value: Any, source: str) -> Any:
    field_type = str(_FIELDS[name].type)
    try:
        if "bool" in field_type:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if "int" in field_type:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if "float" in field_type:
            return float(value)
        if "Path" in field_type:
            return Path(os.path.expanduser(str(value))) if str(value) else None
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: {name} has an invalid value {value!r}",
                         hint=f"expected {field_type.replace(' | None', '')}") from None


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}: not valid YAML{where}", hint="fix the file or remove it") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot be read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise UsageError(f"{path}: unknown setting {unknown[0]!r}", hint=f"known: {', '.join(sorted(_FIELDS))}")
    return {k: _coerce(k, v, str(path)) for k, v in data.items()}


def load_settings(flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
                  config_file: Path | None = None) -> Settings:
    """Resolves settings from FLAGS (None means unset), ENV and the config file."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or (Path(env["SVCLAB_CONFIG"]) if env.get("SVCLAB_CONFIG") else Path(CONFIG_FILE))
    if path.exists():
        values.update(_from_file(path))
        sources.update(dict.fromkeys(values, str(path)))
    elif config_file is not None or env.get("SVCLAB_CONFIG"):
        raise UsageError(f"config file {path} does not exist", hint="check the path or unset SVCLAB_CONFIG")
    for name in _FIELDS:
        key = "SVCLAB_" + name.upper()
        if key in env:
            values[name], sources[name] = _coerce(name, env[key], key), key
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise UsageError(f"unknown setting {name!r}")
        flag = f"--{name.replace('_', '-')}"
        values[name], sources[name] = _coerce(name, value, flag), flag
    settings = Settings(**values, sources=sources)
    if settings.mirror is not None and not settings.mirror.is_dir():
        raise UsageError(f"{sources['mirror']}: the mirror folder {settings.mirror} does not exist",
                         hint="fix the path, or unset it (`svclab images.load` fills ~/.cache/svclab/mirror)")
    return settings
