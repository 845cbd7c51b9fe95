"""The lab definition format: ``<lab>/lab.yaml`` as a typed model, its JSON Schema, and refusals
that fit on one line.

A lab definition is a mapping::

    title: "NodePort: the same port open on every node"   # the task's one-line description
    claims: [C4, C5]              # claim ids (claims.yaml) the lab demonstrates
    manifests: [service.yaml]     # applied into the lab's namespace (its folder first, then manifests/)
    deployments: [echo]           # Deployments to wait for before probing
    daemonsets: []                # DaemonSets to wait for (a ready pod on each node they choose)
    upstream: [gateway_api]       # pinned upstream manifests (pins.toml sections), applied first
    needs_ingress: false          # probes the cluster's Ingress controller
    disruptive: false             # changes the cluster on purpose (stops a node): those probes run last
    alone: false                  # measures what other labs' traffic would disturb: never side by side
    probes:                       # at least one; each chooses its kind's keys (svclab/probes/kinds/)
      - id: every-node
        claim: C5
        kind: http
        ...
        expect: {answers: true}                  # for every provider, or
        expect_by_provider: {none: {answers: false}}   # per provider (overrides expect), or
        expect_by_proxy_mode: {iptables: {...}, nftables: {...}, ipvs: {...}}   # per kube-proxy mode

Unknown keys are refused, with the nearest known key when one is close, so a typo never becomes a
silently ignored setting. Each refusal names the file, the probe and the key.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UsageError
from .probes import KINDS, AnyProbe
from .probes.base import PROVIDERS

__all__ = ["LabFile", "LabDefinitionError", "json_schema", "parse", "SCHEMA_FILE"]

SCHEMA_FILE = "lab.schema.json"   # in the labs folder, beside the lab folders that reference it
SCHEMA_ID = "https://svclab.github.io/schema/lab.schema.json"


class LabDefinitionError(UsageError):
    """A lab definition that svclab refuses: one line naming the file, the probe and the key."""

    def __init__(self, message: str):
        super().__init__(message, hint=None)


class LabFile(BaseModel):
    """One lab: what it applies, what it waits for, and its probes."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="svclab lab definition")

    title: str = Field(min_length=1, description="One line: what the lab shows (the task's description).")
    claims: list[str] = Field(default_factory=list, description="Claim ids (claims.yaml) the lab demonstrates.")
    manifests: list[str] = Field(default_factory=list,
                                 description="Manifests applied into the lab's namespace: the lab's folder first, then svclab's manifests/.")
    deployments: list[str] = Field(default_factory=list, description="Deployments to wait for before probing.")
    daemonsets: list[str] = Field(default_factory=list, description=(
        "DaemonSets to wait for before probing: a ready pod on every node each one chooses."))
    upstream: list[str] = Field(default_factory=list,
                                description="Pinned upstream manifests (sections of svclab's pins.toml) applied first.")
    needs_ingress: bool = Field(False, description="The lab probes the cluster's Ingress controller.")
    disruptive: bool = Field(False, description=(
        "The lab changes the cluster on purpose (stops a node): its probes that do run last, after every "
        "other lab; where a lab's only such probe cuts off a node without a backend (cut_off: true), it watches "
        "one cut of that node together with the other labs that cut it, else it runs by itself."))
    alone: bool = Field(False, description=(
        "The lab measures what other labs' traffic would disturb (refusal times, which ICMP rate limits "
        "share): it runs by itself, not side by side with other labs."))
    probes: list[AnyProbe] = Field(min_length=1, description="What the lab observes, each with its expectation.")


def json_schema() -> dict[str, Any]:
    schema = LabFile.model_json_schema(by_alias=True)
    # Every kind's models are named Spec and Expect in their own module: name them by kind.
    text = re.sub(r"svclab__probes__kinds__(\w+?)__(Spec|Expect)",
                  lambda m: m.group(1) + ("_probe" if m.group(2) == "Spec" else "_expectation"), json.dumps(schema))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **json.loads(text)}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def parse(data: Any, *, source: str, claims: Mapping[str, Any], manifest_exists: Callable[[str], bool],
          pinned: Callable[[str], bool]) -> LabFile:
    """DATA (a lab.yaml's content) as a LabFile, checked against the claims table, the manifests
    that exist and the pinned upstream files; LabDefinitionError otherwise."""
    if not isinstance(data, dict):
        raise LabDefinitionError(f"{source}: expected a mapping of keys (title, probes, ...), got {_kind(data)}")
    try:
        lab = LabFile.model_validate(data)
    except ValidationError as e:
        raise LabDefinitionError(f"{source}: {explain(e, data)}") from None
    problem = _cross_check(lab, claims, manifest_exists, pinned)
    if problem:
        raise LabDefinitionError(f"{source}: {problem}")
    return lab


def _cross_check(lab: LabFile, claims: Mapping[str, Any], manifest_exists: Callable[[str], bool],
                 pinned: Callable[[str], bool]) -> str | None:
    for cid in lab.claims:
        if cid not in claims:
            return f"claims: unknown claim {cid!r}{_nearest(cid, claims)} (claims.yaml lists them)"
    for name in lab.upstream:
        if not pinned(name):
            return f"upstream {name!r} has no files pinned in svclab/pins.toml"
    for name in lab.manifests:
        if not manifest_exists(name):
            return f"manifests: {name} not found in the lab's folder or in svclab's manifests/"
    seen: set[str] = set()
    for probe in lab.probes:
        where = f"probe {probe.id!r}"
        if probe.id in seen:
            return f"{where}: id used twice"
        seen.add(probe.id)
        if probe.claim not in claims:
            return f"{where}: unknown claim {probe.claim!r}{_nearest(probe.claim, claims)}"
        if lab.claims and probe.claim not in lab.claims:
            return f"{where}: claim {probe.claim} is not among the lab's claims ({', '.join(lab.claims)})"
        manifest = getattr(probe, "manifest", None)
        if manifest and not manifest_exists(manifest):
            return f"{where}: manifest {manifest} not found in the lab's folder or in svclab's manifests/"
    return None


# ------------------------------------------------------------------ one-line refusals

def explain(error: ValidationError, data: Mapping[str, Any]) -> str:
    """The first problem pydantic found, said in the lab's own terms."""
    problems = error.errors(include_url=False)
    first = _say(problems[0], data)
    return first + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def _say(problem: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    loc, kind, ctx = tuple(problem["loc"]), problem["type"], problem.get("ctx") or {}
    where, keys, known = _place(loc, data)
    given = problem.get("input")
    prefix = f"{where}: " if where else ""
    last = keys[-1] if keys else ""
    path = ".".join(keys)
    if kind == "extra_forbidden":
        hint = _nearest(last, known)
        listed = "" if hint else f" (known: {', '.join(known)})"
        parent = f"{'.'.join(keys[:-1])}: " if len(keys) > 1 else ""
        return f"{prefix}{parent}unknown key {last!r}{hint}{listed}"
    if kind == "missing":
        return f"{prefix}missing {last!r}"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return f"{prefix}unknown kind {tag!r}{_nearest(tag, KINDS)} (known: {', '.join(KINDS)})"
    if kind == "union_tag_not_found":
        return f"{prefix}missing 'kind' (one of {', '.join(KINDS)})"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        if loc and loc[-1] == "[key]":
            return f"{prefix}{'.'.join(keys[:-2])}: unknown provider {str(given)!r}{_nearest(str(given), choices)} " \
                   f"(known: {', '.join(PROVIDERS)})"
        return f"{prefix}{path} must be one of {', '.join(choices)}, got {given!r}{_nearest(str(given), choices)}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        what = "a whole number" if kind.startswith("int") else "a number"
        return f"{prefix}{path} must be {what}, got {given!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{prefix}{path} must be true or false, got {given!r}"
    if kind in ("string_type",):
        return f"{prefix}{path} must be text, got {_kind(given)}"
    if kind in ("list_type", "tuple_type"):
        return f"{prefix}{path} must be a list, got {given!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where or path} must be a mapping of keys, got {_kind(given)}" if not keys else \
            f"{prefix}{path} must be a mapping of keys, got {_kind(given)}"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"{prefix}{path} must be {words} {ctx.get(key)}, got {given!r}"
    if kind in ("too_short", "too_long"):
        words = "at least" if kind == "too_short" else "at most"
        count = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"{prefix}{path} must have {words} {count} item{'s' if count != 1 else ''}" \
            if isinstance(given, list) else f"{prefix}{path} must be {words} {count} characters long"
    if kind == "string_pattern_mismatch":
        return f"{prefix}{path} {given!r} is not allowed here: it must match {ctx.get('pattern')}"
    message = str(problem.get("msg", kind)).removeprefix("Value error, ")
    return f"{prefix}{path}: {message}" if path else f"{prefix}{message}"


def _place(loc: tuple, data: Mapping[str, Any]) -> tuple[str, list[str], list[str]]:
    """Where LOC points, in words: ('probe ...', the keys below it, the keys known at its last level)."""
    top = _aliases(LabFile)
    if not loc or loc[0] != "probes" or len(loc) < 2 or not isinstance(loc[1], int):
        return "", [str(p) for p in loc], top
    index, rest = loc[1], list(loc[2:])
    raw = (data.get("probes") or [])[index] if index < len(data.get("probes") or []) else None
    probe_id = raw.get("id") if isinstance(raw, dict) else None
    where = f"probe {probe_id!r}" if isinstance(probe_id, str) else f"probe #{index + 1}"
    module = KINDS.get(rest[0]) if rest and isinstance(rest[0], str) else None
    if module is None:
        return where, [str(p) for p in rest], []
    rest = [str(p) for p in rest[1:]]
    in_expect = rest[:1] == ["expect"] and len(rest) >= 2 \
        or rest[:1] in (["expect_by_provider"], ["expect_by_proxy_mode"]) and len(rest) >= 3
    return where, rest, _aliases(module.Expect if in_expect else module.Spec)


def _aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _nearest(word: str, known: Sequence[str] | Mapping[str, Any]) -> str:
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "text", type(None): "nothing"}.get(type(value), type(value).__name__)
