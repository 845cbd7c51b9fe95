"""Load-balancer implementations svclab can install. Each has the same small interface:

    images()             container images to preload into the nodes
    install(ctx)         apply what it needs and configure it with the cluster's address pool
    describe()           one line for reports
    holder(...)          the node that currently answers for a Service's external address
    expects_address      whether a LoadBalancer Service without a class gets an external address
    one_name_at_a_time   whether two LoadBalancer Services of one name (in different namespaces)
                         must not exist at once: labs sharing such a name take turns, and a lab
                         whose name another namespace's Service holds is refused
"""

from __future__ import annotations

from typing import Protocol

from ..config import Settings
from ..errors import UsageError

__all__ = ["Provider", "InstallContext", "get_provider"]


class InstallContext(Protocol):
    settings: Settings

    @property
    def kube(self): ...

    @property
    def pool(self): ...

    def step(self, message: str) -> None: ...


class Provider(Protocol):
    name: str
    expects_address: bool
    one_name_at_a_time: bool

    def images(self) -> list[str]: ...

    def install(self, ctx: InstallContext) -> None: ...

    def describe(self) -> str: ...

    def holder(self, kube, namespace: str, service: str) -> str | None: ...


def get_provider(name: str) -> Provider:
    from .kubevip import KubeVip
    from .metallb import MetalLB
    from .none import NoProvider

    providers = {"metallb": MetalLB, "kube-vip": KubeVip, "none": NoProvider}
    if name not in providers:
        raise UsageError(f"provider {name!r} is not available yet", hint=f"choose one of {', '.join(providers)}")
    return providers[name]()
