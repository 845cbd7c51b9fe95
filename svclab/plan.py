"""Which probes of the selected labs run, and why each other one does not.

Two things leave probes out:
  - `--test PATTERNS` (comma-separated shell patterns over `lab/probe`, `!PATTERN` to leave
    out): what the user did not ask for is not run and not reported;
  - on a cluster svclab did not make, what that cluster cannot show: those probes are reported
    as skipped, each with its reason, never silently dropped.
A lab left with no probe is not applied at all.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from typing import Any

from . import probes
from .errors import UsageError

__all__ = ["Skip", "parse_patterns", "selected", "plan"]

OWN_INGRESS = "svclab-traefik/"   # Services of the Ingress controller svclab installs on its own clusters


@dataclasses.dataclass(frozen=True)
class Skip:
    lab: str
    probe: str
    claim: str
    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def parse_patterns(text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(patterns to keep, patterns to leave out) from "a,b,!c"."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    keep = tuple(p for p in parts if not p.startswith("!"))
    drop = tuple(p[1:] for p in parts if p.startswith("!") and p[1:])
    return keep, drop


def selected(key: str, keep: Sequence[str], drop: Sequence[str]) -> bool:
    """Whether the probe KEY (lab/probe) is asked for: it matches a kept pattern (or none was
    given) and no left-out one. A pattern without '/' also matches the probe id or the lab id."""
    lab, _, probe = key.partition("/")

    def hit(pattern: str) -> bool:
        names = (key,) if "/" in pattern else (key, lab, probe)
        return any(fnmatch.fnmatchcase(name, pattern) for name in names)

    return (not keep or any(map(hit, keep))) and not any(map(hit, drop))


def lab_reason(lab, target) -> str | None:
    """Why none of LAB's probes can run on TARGET (a target.Target), or None."""
    found = target.detected
    if not found.translates_services:
        return f"nothing translates Services on this cluster ({found.kube_proxy_detail})"
    if lab.disruptive:
        return "stops or cuts off nodes: it runs only on a kind cluster svclab made"
    if lab.upstream:
        return f"installs cluster-wide objects ({', '.join(lab.upstream)}): it runs only on a kind cluster svclab made"
    return None


def probe_reason(spec, target) -> str | None:
    """Why the probe SPEC cannot run on TARGET, or None."""
    if why := probes.own_cluster_reason(spec):
        return f"{why}: it runs only on a kind cluster svclab made"
    if spec.expect_by_proxy_mode and not spec.for_proxy_mode(target.detected.kube_proxy_mode):
        return (f"what it shows depends on kube-proxy's mode, and this cluster's is "
                f"{target.detected.kube_proxy_mode} ({target.detected.kube_proxy_detail})")
    if uses_own_ingress(spec) and "traefik" not in target.installs:
        return ("probes the Ingress controller svclab installs on its own clusters (svclab-traefik), which is not "
                "here (--install traefik brings it for the run)")
    if target.detected.proxied and getattr(spec, "via", None) == "load-balancer" \
            and getattr(spec.expect, "source", None):
        return ("checks the source address behind the load-balancer address, and a proxy stands in front of those "
                "here (ipMode Proxy): the backend sees the proxy's address, whatever the policy")
    if not probes.uses_outside(spec):
        return None
    if not target.outside:
        return "sends from outside the cluster, and there is no outside client here (--outside none)"
    if target.outside_routes_beyond and probes.to_cluster_networks(spec):
        return (f"sends to the cluster's own addresses from outside, and your container {target.outside_container}, "
                "the outside client here, has a default route they could leave by: svclab sends it only node and "
                "load-balancer addresses")
    if target.outside == "this machine":
        if why := probes.this_machine_reason(spec):
            return why
        if target.unreachable and probes.to_nodes(spec):
            return (f"sends to the nodes' addresses, which this machine cannot reach "
                    f"({', '.join(target.unreachable)}; tried on the kubelet port)")
    return None


def uses_own_ingress(spec) -> bool:
    """Whether SPEC probes the Ingress controller svclab installs on its own clusters: a Service of
    its namespace named anywhere in the probe, or a TLS probe whose terminator is the Ingress."""
    return OWN_INGRESS in spec.model_dump_json() or getattr(spec, "terminator", None) == "ingress"


def plan(labs: Sequence[Any], target=None, tests: str | None = None) -> tuple[list[Any], list[Skip]]:
    """(the LABS to run, each with only its runnable probes, and the skipped probes). TARGET is
    the user's cluster (None: svclab's own, where everything applies); TESTS the --test patterns."""
    keep, drop = parse_patterns(tests)
    runnable, skipped = [], []
    for lab in labs:
        asked = [p for p in lab.probes if selected(f"{lab.id}/{p.id}", keep, drop)]
        whole = lab_reason(lab, target) if target is not None and asked else None
        kept = []
        for spec in asked:
            reason = whole or (probe_reason(spec, target) if target is not None else None)
            if reason:
                skipped.append(Skip(lab.id, spec.id, spec.claim, spec.path, reason))
            else:
                kept.append(spec)
        if kept:
            runnable.append(dataclasses.replace(lab, probes=tuple(kept)))
    if (keep or drop) and not runnable and not skipped:
        raise UsageError(f"no probe matches --test {tests}",
                         hint="patterns match lab/probe ids, e.g. --test 'loadbalancer/*,!*pending*' (see `svclab labs`)")
    return runnable, skipped
