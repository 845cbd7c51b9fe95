"""What every probe kind shares: the fields each probe has in a lab definition, the expectation
base class, what an observation is, and the topology a judge compares samples with.

A probe kind is one module in ``svclab/probes/kinds/`` with four names:

    Spec       the probe's model: ``kind: Literal["<kind>"]`` plus the keys that kind takes
    Expect     the expectations it accepts (each key optional; the ones given are all checked)
    observe    observe(ctx, spec) -> Observation: gathers samples, judges nothing
    judge      judge(facts, expect, topology) -> list of what differs (empty: as expected); pure

Samples go into ``Observation.facts`` as plain JSON values, so a run's JSON file holds exactly what
each judge saw, and the judges are unit-tested on facts recorded from real clusters.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import config

__all__ = ["PROVIDERS", "PROXY_MODES", "CutOffSpec", "answer_count_problems", "Expectation", "NodeInfo", "Observation", "Prediction", "ProbeSpec", "Topology"]

# The load-balancer implementations an expectation may be given for (svclab.providers).
Provider = Literal[config.PROVIDERS]
PROVIDERS: tuple[str, ...] = config.PROVIDERS
# The kube-proxy modes svclab makes clusters with, which an expectation may also be given for.
ProxyMode = Literal[config.KUBE_PROXY_MODES]
PROXY_MODES: tuple[str, ...] = config.KUBE_PROXY_MODES
# What names in a lab must look like: a probe's id, a Service in the lab's namespace (a DNS
# label), and a host name for a Host header.
NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HOST_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


@dataclasses.dataclass
class Observation:
    """What a probe saw: a one-line summary, evidence lines, and the samples (facts) its judge reads."""

    observed: str
    evidence: list[str]
    facts: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A question step mode can put to the learner: the choices, and the one the expectation makes right."""

    choices: tuple[str, ...]
    right: str


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: str
    pod_cidr: str | None
    backend: bool

    def owns(self, ip: str) -> bool:
        """True when IP is one of this node's own addresses (InternalIP or pod-network gateway)."""
        if ip == self.ip:
            return True
        if self.pod_cidr:
            net = ipaddress.ip_network(self.pod_cidr, strict=False)
            return ip == str(net.network_address + 1)
        return False


@dataclasses.dataclass(frozen=True)
class Topology:
    nodes: list[NodeInfo]
    pod_nodes: Mapping[str, str]     # pod name -> node name, in the lab's namespace
    client_ip: str                   # the outside client's address
    client_pod_ip: str               # the in-cluster client's address
    pool: Any = None                 # network.Pool: the addresses svclab hands to load balancers

    def node_owning(self, ip: str) -> str | None:
        return next((n.name for n in self.nodes if n.owns(ip)), None)

    def source_kind(self, ip: str, client_ip: str) -> str:
        """What a source address a backend reports is: the client's own, a node's, or other."""
        return "client" if ip == client_ip else ("node" if self.node_owning(ip) else "other")

    @property
    def backend_nodes(self) -> list[str]:
        return sorted(set(self.pod_nodes.values()))


class Expectation(BaseModel):
    """One probe's expectation: the keys given are all checked. Subclasses list the keys their
    kind accepts, in the order they are described."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def given(self) -> dict[str, Any]:
        """The keys the lab gave, in declaration order, as the lab wrote them."""
        return {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}

    def describe(self) -> str:
        """The expected column of the results: one phrase per key given."""
        return ", ".join(self.phrase(key, value) for key, value in self.given().items())

    def phrase(self, key: str, value: Any) -> str:
        return f"{key}={value}"

    @property
    def settles(self) -> bool:
        """Whether the probe observes a state the cluster converges to, and may look again until
        it holds; an expected absence (no answer, no address) is seen once, after convergence."""
        return True

    def prediction(self) -> Prediction | None:
        """The choice step mode offers before observing, derived from this expectation; None when
        the expectation is not a choice between a few outcomes."""
        return None

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("an expectation needs at least one key")
        empty = [key for key, value in self.given().items() if value is None]
        if empty:
            raise ValueError(f"{empty[0]} needs a value")
        return self


E = TypeVar("E", bound=Expectation)


class ProbeSpec(BaseModel, Generic[E]):
    """The keys every probe has, whatever its kind; a kind's Spec is ``ProbeSpec[its Expect]``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # Probes that change the cluster on purpose (patch a Service, create objects, stop a node) run
    # alone, after the others of their lab.
    CHANGES_CLUSTER: ClassVar[bool] = False

    id: str = Field(pattern=NAME, max_length=63,
                    description="Unique in the lab: lowercase letters, digits and dashes.")
    claim: str = Field(pattern=r"^C\d+$", description="The claim this probe evidences, from claims.yaml (C1, C2, ...).")
    path: str = Field("", description="The traffic path or behaviour, in words (default: the id).")
    predict: str = Field("", description="Step mode's question before observing.")
    why: str = Field("", description="Step mode's short explanation after observing.")
    expect: E | None = Field(None, description="The expectation, for every provider.")
    expect_by_provider: dict[Provider, E] | None = Field(
        None, description="Per provider, an expectation that replaces `expect`.")
    expect_by_proxy_mode: dict[ProxyMode, E] | None = Field(
        None, description="Per kube-proxy mode (all of iptables, nftables, ipvs), an expectation that replaces "
                          "`expect` and `expect_by_provider`: for what the mode, not the load balancer, decides.")

    @model_validator(mode="before")
    @classmethod
    def _path_defaults_to_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("path") and isinstance(data.get("id"), str):
            return {**data, "path": data["id"]}
        return data

    @model_validator(mode="after")
    def _expectation_for_every_provider(self):
        by_provider, by_mode = self.expect_by_provider or {}, self.expect_by_proxy_mode
        if by_mode is not None:
            if by_provider or self.expect is not None:
                raise ValueError("expect_by_proxy_mode replaces expect and expect_by_provider: give only one of them")
            if set(by_mode) != set(PROXY_MODES):
                missing = [m for m in PROXY_MODES if m not in by_mode]
                raise ValueError(f"expect_by_proxy_mode has no expectation for {', '.join(missing)}")
            return self
        if self.expect is None and set(by_provider) != set(PROVIDERS):
            missing = [p for p in PROVIDERS if p not in by_provider]
            raise ValueError(f"no expectation for {', '.join(missing)}: give 'expect' (every provider) "
                             "or one under expect_by_provider for each")
        return self

    def expectation(self, provider: str, proxy_mode: str | None = None) -> E | None:
        """The expectation under PROVIDER and kube-proxy mode PROXY_MODE; None only for a probe whose
        expectation follows the mode, on a cluster whose mode is none of svclab's (for_proxy_mode)."""
        if self.expect_by_proxy_mode is not None:
            return self.expect_by_proxy_mode.get(proxy_mode or "")
        return (self.expect_by_provider or {}).get(provider) or self.expect

    def expectations(self) -> list[E]:
        """Every expectation the probe gives, whatever the provider or mode."""
        return [e for e in [self.expect, *(self.expect_by_provider or {}).values(),
                            *(self.expect_by_proxy_mode or {}).values()] if e is not None]

    def for_proxy_mode(self, proxy_mode: str) -> bool:
        """Whether this probe has an expectation on a cluster whose kube-proxy mode is PROXY_MODE."""
        return self.expect_by_proxy_mode is None or proxy_mode in self.expect_by_proxy_mode

    def changes_cluster(self) -> bool:
        return self.CHANGES_CLUSTER

    def rules_service(self) -> str | None:
        """The Service whose node rules this probe's path crosses (for `svclab lab.rules`), if any."""
        return None


class CutOffSpec(ProbeSpec[E], Generic[E]):
    """A probe that may cut a node without a backend pod off the network while it observes (and so
    runs alone when it does). CUT_OFF_KEYS: expectation keys that mean nothing without the cut."""

    CUT_OFF_KEYS: ClassVar[tuple[str, ...]] = ()

    cut_off: bool = Field(False, description="Cut off a node without a backend pod while probing.")

    def changes_cluster(self) -> bool:
        return self.cut_off

    @model_validator(mode="after")
    def _cut_off_keys_need_a_cut(self):
        for expect in self.expectations():
            given = [k for k in self.CUT_OFF_KEYS if k in expect.given()]
            if given and not self.cut_off:
                raise ValueError(f"expect.{given[0]} needs cut_off: true")
        return self


def answer_count_problems(expected: bool, answered: int, tries: int, what: str) -> list[str]:
    """What differs from "every one of TRIES WHAT answered" (EXPECTED) or "none did" (not EXPECTED)."""
    if expected and (answered < tries or not tries):
        return [f"{tries - answered} of {tries} {what} unanswered"]
    if not expected and answered:
        return [f"{answered} of {tries} {what} answered"]
    return []
