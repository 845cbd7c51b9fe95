"""service: read one field of a Service (its type, ClusterIP, nodePort, external address)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from ..base import Expectation, Observation, Prediction, ProbeSpec, Topology
from ..traffic import field, service

EXAMPLE = """
- id: node-port-assigned
  claim: C7
  path: nodePort left out of the Service
  kind: service
  service: echo
  field: spec.ports[0].nodePort
  expect: {in_range: [30000, 32767]}
"""


class Expect(Expectation):
    equals: str | int | bool | None = Field(None, description="The field has exactly this value.")
    in_range: tuple[int, int] | None = Field(None, description="The field is a whole number within [low, high].")
    set: bool | None = Field(None, description="true: the field has a value; false: it has none.")
    in_pool: bool | None = Field(None, description="The field is an address from the pool svclab gave the load balancer.")

    def phrase(self, key: str, value: Any) -> str:
        if key == "equals":
            return f"= {value}"
        if key == "in_range":
            return f"in {value[0]}–{value[1]}"
        if key == "set":
            return "set" if value else "not set"
        return "from svclab's pool" if value else "outside the pool"

    def prediction(self) -> Prediction | None:
        if self.given().keys() == {"set"}:
            return Prediction(("set", "not set"), "set" if self.set else "not set")
        return None


class Spec(ProbeSpec[Expect]):
    """Reads FIELD (a dotted path with [n] for list items) of the Service SERVICE."""

    kind: Literal["service"]
    service: str = Field(description="The Service: NAME in the lab's namespace, or NAMESPACE/NAME.")
    field: str = Field(pattern=r"^[A-Za-z]+(\.[A-Za-z]+|\[\d+\])*$",
                       description="Dotted path into the Service, e.g. spec.ports[0].nodePort.")


def observe(ctx, spec: Spec) -> Observation:
    svc = service(ctx, spec.service)
    value = field(svc, spec.field)
    pool = ctx.topology.pool
    return Observation(
        observed=f"{spec.field} = {value if value is not None else '(not set)'}",
        evidence=[f"Service {ctx.namespace}/{spec.service}: {spec.field} = {json.dumps(value)}"],
        facts={"value": value, "in_pool": isinstance(value, str) and bool(value) and value in pool},
    )


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    value, problems = facts.get("value"), []
    for key, want in expect.given().items():
        if key == "equals" and value != want:
            problems.append(f"{value!r} is not {want!r}")
        elif key == "in_range" and (not isinstance(value, int) or isinstance(value, bool)
                                    or not want[0] <= value <= want[1]):
            problems.append(f"{value!r} is not within {want[0]}–{want[1]}")
        elif key == "set" and (value not in (None, "", [], "None")) != want:
            problems.append(f"value is {'set' if not want else 'not set'}")
        elif key == "in_pool" and bool(facts.get("in_pool")) != want:
            problems.append(f"{value!r} is {'not ' if want else ''}in the pool")
    return problems
