"""Probes: each observes one traffic path or one API behaviour, and a pure judge compares what it
saw with the lab's expectation.

Every module in ``svclab/probes/kinds/`` is one probe kind (its ``Spec`` model says its name:
``kind: Literal["http"]``), found here at import time; a new kind is one new module there, with
its tests. ``base`` holds what they share, ``traffic`` how they reach the lab.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Annotated, Any, Union

from pydantic import Field

from . import kinds
from .base import Expectation, NodeInfo, Observation, Prediction, ProbeSpec, Topology

__all__ = ["KINDS", "AnyProbe", "Expectation", "NodeInfo", "Observation", "Prediction", "ProbeSpec", "Topology",
           "observe", "judge", "kind_of", "uses_outside", "own_cluster_reason", "this_machine_reason", "to_nodes"]


def _discover() -> dict[str, ModuleType]:
    found = {}
    for info in sorted(pkgutil.iter_modules(kinds.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{kinds.__name__}.{info.name}")
        for name in ("Spec", "Expect", "observe", "judge", "EXAMPLE"):
            if not hasattr(module, name):
                raise ImportError(f"probe kind module {module.__name__} has no {name}")
        found[module.Spec.model_fields["kind"].annotation.__args__[0]] = module
    return found


# kind name (as lab definitions write it) -> its module
KINDS: dict[str, ModuleType] = _discover()

# A probe in a lab definition: one of the kinds' Spec models, chosen by its `kind` key.
AnyProbe = Annotated[Union[tuple(m.Spec for m in KINDS.values())], Field(discriminator="kind")]


def kind_of(spec: ProbeSpec) -> ModuleType:
    return KINDS[spec.kind]


def own_cluster_reason(spec: ProbeSpec) -> str | None:
    """Why SPEC runs only on a kind cluster svclab made (a kind's OWN_CLUSTER or own_cluster(spec)), or None."""
    module = kind_of(spec)
    return module.own_cluster(spec) if hasattr(module, "own_cluster") else getattr(module, "OWN_CLUSTER", None)


def uses_outside(spec: ProbeSpec) -> bool:
    """Whether SPEC sends from the outside client (a kind's USES_OUTSIDE or uses_outside(spec))."""
    module = kind_of(spec)
    return module.uses_outside(spec) if hasattr(module, "uses_outside") else getattr(module, "USES_OUTSIDE", False)


# Why a probe kind that sends from the outside client cannot send from this machine, unless it
# says otherwise (FROM_THIS_MACHINE = None, or from_this_machine(spec)).
SHELL_ONLY = ("runs shell tools (curl, nc, ip) in svclab's outside client container; here the outside client is "
              "this machine, from which svclab makes only plain HTTP requests")


def this_machine_reason(spec: ProbeSpec) -> str | None:
    """Why SPEC cannot be sent from this machine as the outside client (svclab.this_machine), or None."""
    module = kind_of(spec)
    if hasattr(module, "from_this_machine"):
        return module.from_this_machine(spec)
    return getattr(module, "FROM_THIS_MACHINE", SHELL_ONLY)


def to_nodes(spec: ProbeSpec) -> bool:
    """Whether SPEC sends to the nodes' own addresses (a kind's TO_NODES or to_nodes(spec))."""
    module = kind_of(spec)
    return module.to_nodes(spec) if hasattr(module, "to_nodes") else getattr(module, "TO_NODES", False)


def to_cluster_networks(spec: ProbeSpec) -> bool:
    """Whether SPEC sends from outside to the cluster's own Service or pod addresses, which only an
    outside client without a default route may try (a kind's to_cluster_networks(spec))."""
    module = kind_of(spec)
    return module.to_cluster_networks(spec) if hasattr(module, "to_cluster_networks") else False


def observe(ctx: Any, spec: ProbeSpec) -> Observation:
    return kind_of(spec).observe(ctx, spec)


def judge(spec: ProbeSpec, facts: dict[str, Any], expect: Expectation, topology: Topology | None) -> list[str]:
    return kind_of(spec).judge(facts, expect, topology)
