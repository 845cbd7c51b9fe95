"""Rendering manifests: svclab's own templates filled in, and named patches for upstream files.

svclab's own manifests (manifests/*.yaml and the labs' files) are templates. A placeholder is a
name in capitals inside ``${...}``; ``$$`` stands for one literal ``$``. Nothing else may follow a
``$``, so a shell snippet in a manifest writes ``$$HOME`` for ``$HOME``::

    image: ${AGNHOST_IMAGE}                     -> image: registry.k8s.io/e2e-test-images/agnhost:2.56
    namespace: ${NAMESPACE}                     -> namespace: svclab-gateway
    command: [sh, -c, "echo $$HOSTNAME"]        -> command: [sh, -c, "echo $HOSTNAME"]

The values come from ``context()``: the pinned images (pins.toml) and, for a namespaced run, the
namespace. Placeholders filled from the pins:

    AGNHOST_IMAGE    the echo backend and the probe clients
    TRAEFIK_IMAGE    the Ingress and Gateway controller
    KUBE_VIP_IMAGE   kube-vip's DaemonSet

A placeholder the context does not have, or a ``$`` that starts none, is refused with one line
that names the file, the line and the name, and lists the placeholders that are known.

Upstream manifests (pinned files such as MetalLB's) are not templates: they are used as published
except for the patches named below, applied to the parsed objects with ``patch(objects, name, ...)``.
Each patch says why svclab needs it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from . import resources
from .config import agnhost_image, pins
from .errors import UsageError
from .placement import prefer_control_plane

__all__ = ["context", "render_text", "render_file", "manifest", "PATCHES", "Patch", "patch"]

_NAME = r"[A-Z][A-Z0-9_]*"
# `$$`, `${NAME}`, or a `$` followed by anything else (a mistake, reported as written).
_DOLLAR = re.compile(rf"\$(?:(\$)|\{{({_NAME})\}}|(\{{[^}}\n]*\}}?|\w*))")


def context(namespace: str | None = None, **extra: str) -> dict[str, str]:
    """The values svclab's templates may use: the pinned images, NAMESPACE when NAMESPACE is
    given, and EXTRA (NAME=value) for placeholders only one caller has."""
    p = pins()
    values = {"AGNHOST_IMAGE": agnhost_image(), "TRAEFIK_IMAGE": p["traefik"]["image"],
              "KUBE_VIP_IMAGE": p["kube_vip"]["image"]}
    if namespace is not None:
        values["NAMESPACE"] = namespace
    for name in extra:
        if not re.fullmatch(_NAME, name):
            raise ValueError(f"placeholder names are capitals, digits and '_', got {name!r}")
    return values | extra


def render_text(text: str, context: Mapping[str, str], *, source: str) -> str:
    """TEXT with every ``${NAME}`` replaced by CONTEXT[NAME] and ``$$`` by ``$``. SOURCE names the
    text's file in the error raised when a placeholder is unknown or malformed."""
    wrong: list[str] = []

    def fill(match: re.Match) -> str:
        dollar, name, other = match.groups()
        if dollar:
            return "$"
        if name in context:
            return context[name]
        line = text.count("\n", 0, match.start()) + 1
        shown = f"${{{name}}}" if name else f"${other}"
        wrong.append(f"{shown} (line {line})" if name else f"{shown} (line {line}, not a ${{NAME}} placeholder)")
        return match.group(0)

    rendered = _DOLLAR.sub(fill, text)
    if wrong:
        known = ", ".join(f"${{{name}}}" for name in sorted(context))
        raise UsageError(f"{source}: unknown placeholder{'s' if len(wrong) > 1 else ''} {', '.join(wrong)}",
                         hint=f"known placeholders are {known or 'none'}; write $$ for a literal $")
    return rendered


def render_file(file: Traversable | Path, context: Mapping[str, str], *, source: str | None = None) -> str:
    """The text of FILE rendered with CONTEXT; errors name SOURCE (default: the file's path)."""
    return render_text(file.read_text(encoding="utf-8"), context, source=source or str(file))


def manifest(name: str, context: Mapping[str, str]) -> str:
    """svclab's own manifest NAME (manifests/NAME) rendered with CONTEXT."""
    return render_file(resources.manifests_dir() / name, context, source=f"manifests/{name}")


# ----------------------------------------------------------------------------- upstream patches

@dataclasses.dataclass(frozen=True)
class Patch:
    name: str
    why: str
    apply: Callable[[dict[str, Any]], None]   # changes one object in place


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])


def _pull_if_not_present(obj: dict[str, Any]) -> None:
    for container in _containers(obj):
        container["imagePullPolicy"] = "IfNotPresent"


def _prefer_control_plane(obj: dict[str, Any]) -> None:
    prefer_control_plane([obj])


def _ready_within_a_second(obj: dict[str, Any]) -> None:
    for container in _containers(obj):
        if probe := container.get("readinessProbe"):
            probe.update(initialDelaySeconds=1, periodSeconds=1)


PATCHES: dict[str, Patch] = {p.name: p for p in (
    Patch("pull-if-not-present",
          "upstream pins imagePullPolicy Always, which defeats images preloaded onto the nodes "
          "(and classrooms without a registry)",
          _pull_if_not_present),
    Patch("ready-within-a-second",
          "upstream first asks for readiness after 10s, then every 10s: fine for a long-lived "
          "cluster, but a lab cluster would sit idle for most of its `up`",
          _ready_within_a_second),
    Patch("prefer-control-plane",
          "controllers run on the control-plane node, Ready first, and leave the workers to the "
          "labs' backends (see svclab.placement)",
          _prefer_control_plane),
)}


def patch(objects: Iterable[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    """OBJECTS (parsed manifest documents) with the patches NAMES applied in place, in order."""
    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise ValueError(f"unknown manifest patch {', '.join(unknown)}; known: {', '.join(PATCHES)}")
    objects = list(objects)
    for name in names:
        for obj in objects:
            PATCHES[name].apply(obj)
    return objects
