"""source-ranges: `loadBalancerSourceRanges` admitting one outside client and not another. svclab
starts a second outside client beside the first (another container on the nodes' docker network,
at another address), sets the Service's source ranges to the first client's address alone, and has
both request the external address, and the second one also the Service's nodePort."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ... import site
from ...outside import OutsideClient
from ..base import NAME, Expectation, Observation, Prediction, ProbeSpec, Topology, answer_count_problems
from ..traffic import lab_address, node_port, outside_dial, wait_external_ip

OWN_CLUSTER = "needs a second outside client beside svclab's own nodes"   # why it runs only on a kind cluster svclab made
USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: one-client-admitted
  claim: C35
  path: "two outside clients → echo EXTERNAL-IP, the source ranges naming one"
  kind: source-ranges
  service: echo
  expect: {admitted_answers: true, others_answer: false, node_port_open: true}
"""

OTHER_CLIENT = "client-b"   # the second client's role: container svclab-client-b-CLUSTER
CONNECT_TIMEOUT = 2         # seconds: a node on the same docker network answers within milliseconds


class Expect(Expectation):
    admitted_answers: bool | None = Field(
        None, description="Every request from the client inside the ranges is answered (false: none is).")
    others_answer: bool | None = Field(
        None, description="Every request from the client outside the ranges is answered (false: none is).")
    node_port_open: bool | None = Field(
        None, description="The client outside the ranges is answered on the Service's nodePort (false: it is not).")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "admitted_answers": lambda: "the admitted client is answered" if value else "the admitted client is not",
            "others_answer": lambda: "the other client is answered" if value else "the other client is not",
            "node_port_open": lambda: "the nodePort answers the other client" if value else "the nodePort is closed to it",
        }[key]()

    def prediction(self) -> Prediction | None:
        if self.others_answer is None:
            return None
        return Prediction(("answered", "not answered"), "answered" if self.others_answer else "not answered")


class Spec(ProbeSpec[Expect]):
    """Sets SERVICE's loadBalancerSourceRanges to the outside client's address alone, then sends
    TRIES requests to its external address from that client and from a second one, and from the
    second to its nodePort on the first node."""

    CHANGES_CLUSTER: ClassVar[bool] = True   # it sets the Service's source ranges

    kind: Literal["source-ranges"]
    service: str = Field(pattern=NAME, description="A LoadBalancer Service of the lab with a nodePort.")
    tries: int = Field(3, ge=1, le=20, description="Requests from each client, each on a new connection.")

    def rules_service(self) -> str | None:
        return self.service


def observe(ctx, spec: Spec) -> Observation:
    from ...network import docker_client

    dc, cluster = docker_client(), ctx.settings.cluster_name
    other_ip = lab_address(ctx, site.ensure(dc, cluster=cluster, network=ctx.settings.network,
                                            machine=site.confined(OTHER_CLIENT, "pause")))
    other = OutsideClient(dc, site.container_name(OTHER_CLIENT, cluster))
    admitted = f"{ctx.topology.client_ip}/32"
    ctx.kube.patch("v1", "Service", spec.service, {"spec": {"loadBalancerSourceRanges": [admitted]}}, ctx.namespace)
    svc, nodeport = node_port(ctx, spec.service, for_what="the second client's control request")
    port = int(svc["spec"]["ports"][0]["port"])
    timeout = ctx.settings.wait_timeout if ctx.env.provider.expects_address else 3
    ip = wait_external_ip(ctx, spec.service, timeout)
    node = ctx.topology.nodes[0]
    try:
        evidence = [f"loadBalancerSourceRanges: [{admitted}] (the outside client); the second client is {other_ip}"]
        if ip:
            from_admitted = outside_dial(ctx, ip, port, "hostname", spec.tries, timeout=CONNECT_TIMEOUT)
            from_other = outside_dial(ctx, ip, port, "hostname", spec.tries, timeout=CONNECT_TIMEOUT, client=other)
        else:
            evidence.append(f"Service {spec.service} has no external address")
            from_admitted = from_other = {}
        via_node_port = outside_dial(ctx, node.ip, nodeport, "hostname", spec.tries, timeout=CONNECT_TIMEOUT,
                                     client=other)
    finally:
        other.close()
    counts = {}
    for label, got, where in (("admitted", from_admitted, f"{ctx.topology.client_ip} → {ip}:{port}"),
                              ("other", from_other, f"{other_ip} → {ip}:{port}"),
                              ("node_port", via_node_port, f"{other_ip} → {node.name} {node.ip}:{nodeport}")):
        answers, errors = got.get("responses", []), got.get("errors", [])
        counts[label] = len(answers)
        if got or label == "node_port":
            evidence.append(f"{where}: {len(answers)}/{spec.tries} answered"
                            + (f"; error: {errors[0][:120]}" if errors else ""))
    facts = {"address": ip, "tries": spec.tries, "admitted_answered": counts["admitted"],
             "other_answered": counts["other"], "node_port_answered": counts["node_port"],
             "admitted_source": admitted, "other_ip": other_ip}
    observed = (f"admitted {counts['admitted']}/{spec.tries}, other {counts['other']}/{spec.tries}, "
                f"other via nodePort {counts['node_port']}/{spec.tries}" if ip else
                f"no external address; other via nodePort {counts['node_port']}/{spec.tries}")
    return Observation(observed, evidence, facts)


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems, tries = [], facts.get("tries", 0)
    for key, want in expect.given().items():
        if key == "admitted_answers":
            problems += answer_count_problems(want, facts.get("admitted_answered", 0), tries,
                                              "requests from the admitted client")
        elif key == "others_answer":
            problems += answer_count_problems(want, facts.get("other_answered", 0), tries,
                                              "requests from the other client")
        elif key == "node_port_open":
            problems += answer_count_problems(want, facts.get("node_port_answered", 0), tries,
                                              "nodePort requests from the other client")
    return problems
