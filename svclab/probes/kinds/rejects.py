"""rejects: ask the API server to create a manifest's objects, expecting a refusal."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ...kube import api_error_message, load_manifests
from ..base import Expectation, Observation, Prediction, ProbeSpec, Topology

EXAMPLE = """
- id: out-of-range
  claim: C6
  path: a Service asking for nodePort 80
  kind: rejects
  manifest: out-of-range.yaml
  expect: {message: "not in the valid range"}
"""


class Expect(Expectation):
    message: str | None = Field(None, min_length=1,
                                description="A regular expression the API server's refusal must match.")

    @field_validator("message")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a regular expression ({e})") from None
        return value

    def phrase(self, key: str, value: Any) -> str:
        return f"rejected: /{value}/"

    @property
    def settles(self) -> bool:
        return False

    def prediction(self) -> Prediction | None:
        return Prediction(("accepted", "refused"), "refused")


class Spec(ProbeSpec[Expect]):
    """Really creates MANIFEST's objects in the lab's namespace: a dry run skips the port
    allocator, which is where nodePort range and uniqueness are enforced. Anything the API
    server accepts is deleted at once."""

    CHANGES_CLUSTER: ClassVar[bool] = True

    kind: Literal["rejects"]
    manifest: str = Field(pattern=r"^[-\w./]+\.ya?ml$", description="A manifest in the lab's folder (or manifests/).")


def observe(ctx, spec: Spec) -> Observation:
    objects = load_manifests(ctx.render(spec.manifest))
    try:
        ctx.kube.apply(objects, namespace=ctx.namespace)
    except Exception as e:  # ApiException, or the dynamic client's wrapper of it
        status = getattr(e, "status", None)
        if status in (400, 403, 409, 422):
            message = api_error_message(e)
            return Observation(f"rejected ({status}): {message}", [f"API server: {message}"],
                               {"message": message, "status": status})
        raise
    ctx.kube.delete(objects, namespace=ctx.namespace)
    return Observation("accepted", [f"the API server accepted {spec.manifest} (deleted again)"], {"message": None})


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    message = facts.get("message")
    if message is None:
        return ["the API server accepted it"]
    if expect.message and not re.search(expect.message, message):
        return ["rejected with another message"]
    return []
