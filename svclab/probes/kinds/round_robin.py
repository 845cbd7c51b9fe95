"""round-robin: DNS round-robin over the nodes. svclab runs a DNS server beside the cluster that
answers one name with every node's address (in a new random order each time), makes it the outside
client's resolver, and has two clients use the name with the Service's nodePort: one that takes the
first address of each answer, as most programs do, and one that tries the next address when a
connection fails. Optionally it cuts a node off first: the DNS server, which checks nothing, keeps
handing out its address."""

from __future__ import annotations

import collections
from typing import Any, Literal

from pydantic import Field

from ..base import NAME, CutOffSpec, Expectation, Observation, Prediction, Topology
from ..outage import cut_off, spare_node
from ..traffic import lab_address, node_port, outside_run

OWN_CLUSTER = "runs a DNS server beside svclab's own nodes and cuts one off"   # why it runs only on a kind cluster svclab made
USES_OUTSIDE = True   # sends from the outside client

EXAMPLE = """
- id: name-lists-every-node
  claim: C26
  path: "outside client → shop.svclab.test (every node's address) → nodePort"
  kind: round-robin
  service: shop
  expect: {every_node_listed: true, spreads: true, first_attempts_fail: false}
"""

ZONE = "svclab.test"            # svclab's own zone (.test is reserved: it resolves nowhere else)
CONNECT_TIMEOUT = 0.5           # a node on the same docker network answers a SYN within milliseconds


class Expect(Expectation):
    every_node_listed: bool | None = Field(None, description="Every answer lists every node's address.")
    spreads: bool | None = Field(None, description="The first addresses of the answers name more than one node.")
    first_attempts_fail: bool | None = Field(
        None, description="Some connections to the first address of an answer fail (false: none does).")
    retrying_client_succeeds: bool | None = Field(
        None, description="A client that tries the next address after a failed connection always gets an answer.")

    def phrase(self, key: str, value: Any) -> str:
        return {
            "every_node_listed": lambda: "every node's address in every answer" if value else "not every node listed",
            "spreads": lambda: "first addresses spread over nodes" if value else "one first address",
            "first_attempts_fail": lambda: "some first attempts fail" if value else "no first attempt fails",
            "retrying_client_succeeds": lambda: "a retrying client always succeeds" if value else "retrying fails too",
        }[key]()

    @property
    def settles(self) -> bool:
        return self.first_attempts_fail is not True

    def prediction(self) -> Prediction | None:
        if self.first_attempts_fail is not None:
            right = "some fail" if self.first_attempts_fail else "none fails"
            return Prediction(("none fails", "some fail"), right)
        return None


class Spec(CutOffSpec[Expect]):
    """Serves SERVICE's name with every node's address, then TRIES attempts by both clients; with
    CUT_OFF, a worker without a backend pod is cut off during the attempts."""

    kind: Literal["round-robin"]
    service: str = Field(pattern=NAME, description="A Service in the lab's namespace with a nodePort.")
    tries: int = Field(30, ge=1, le=100, description="Attempts: one DNS answer, then each client's connection.")


def corefile(hosts_file: str) -> str:
    """CoreDNS's configuration: svclab's zone from HOSTS_FILE, answers shuffled, nothing forwarded."""
    return (f"{ZONE}:53 {{\n"
            f"    hosts {hosts_file} {ZONE} {{\n        ttl 1\n        no_reverse\n    }}\n"
            "    loadbalance\n    errors\n}\n")


def hosts_file(name: str, addresses: list[str]) -> str:
    return "".join(f"{ip} {name}\n" for ip in addresses)


def attempts_script(name: str, port: int, tries: int) -> str:
    """TRIES attempts in the outside client, printing per attempt the answer ('A addr...'), the
    first-address client's result ('N addr ok|fail') and the retrying client's ('R addr fail'
    per failed address, then 'R ok addr' or 'R fail'). The retrying client's first connection is
    the first-address client's: both begin alike, so one connection serves both (a cut node
    costs its connect timeout once per attempt, not twice). Only sh, getent and curl are needed."""
    curl = f"curl -s -o /dev/null -m 2 --connect-timeout {CONNECT_TIMEOUT}"
    return "\n".join([
        "i=0",
        f"while [ $i -lt {int(tries)} ]; do",
        "  i=$((i+1))",
        f"  addrs=$(getent hosts {name} | while read a _; do printf '%s ' \"$a\"; done)",
        "  printf 'A %s\\n' \"$addrs\"",
        "  first=${addrs%% *}",
        "  r=fail",
        f"  if [ -n \"$first\" ] && {curl} \"http://$first:{int(port)}/hostname\"; then",
        "    printf 'N %s ok\\n' \"$first\"; r=\"ok $first\"",
        "  else",
        "    printf 'N %s fail\\n' \"$first\"",
        "    for a in $addrs; do",
        "      if [ \"$a\" != \"$first\" ] && "
        f"{curl} \"http://$a:{int(port)}/hostname\"; then r=\"ok $a\"; break; fi",
        "      printf 'R %s fail\\n' \"$a\"",
        "    done",
        "  fi",
        "  printf 'R %s\\n' \"$r\"",
        "done",
    ])


def parse_attempts(output: str) -> list[dict[str, Any]]:
    """The attempts printed by attempts_script: each {'answer': [...], 'first': addr,
    'first_ok': bool, 'retry_ok': bool, 'retry_failed': [addr...], 'retry_by': addr|None}."""
    attempts: list[dict[str, Any]] = []
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        words = rest.split()
        if tag == "A":
            attempts.append({"answer": words, "first": None, "first_ok": False, "retry_ok": False,
                             "retry_failed": [], "retry_by": None})
        elif not attempts:
            continue
        elif tag == "N":
            attempts[-1]["first"] = words[0] if len(words) == 2 else None
            attempts[-1]["first_ok"] = words[-1:] == ["ok"]
        elif tag == "R" and words[-1:] == ["fail"] and len(words) == 2:
            attempts[-1]["retry_failed"].append(words[0])
        elif tag == "R" and words[:1] == ["ok"] and len(words) == 2:
            attempts[-1]["retry_ok"], attempts[-1]["retry_by"] = True, words[1]
    return attempts


def observe(ctx, spec: Spec) -> Observation:
    from ... import site
    from ...network import docker_client

    _, port = node_port(ctx, spec.service, for_what="clients to connect to")
    nodes = {lab_address(ctx, n.ip): n.name for n in ctx.topology.nodes}
    name = f"{spec.service}.{ctx.lab.id}.{ZONE}"
    machine = site.Machine(role=f"dns-{ctx.lab.id}-{spec.service}", image=site.dns_image(),
                           argv=("/coredns", "-conf", "/etc/svclab/Corefile"), cap_add=("NET_BIND_SERVICE",),
                           files=(("/etc/svclab/Corefile", corefile("/etc/svclab/hosts")),
                                  ("/etc/svclab/hosts", hosts_file(name, sorted(nodes)))))
    server = lab_address(ctx, site.ensure(docker_client(), cluster=ctx.settings.cluster_name,
                                          network=ctx.settings.network, machine=machine))
    # The outside client's resolver becomes the site's DNS server (it resolves nothing else).
    outside_run(ctx, f"printf 'nameserver {server}\\noptions timeout:1 attempts:3\\n' > /etc/resolv.conf", timeout=5)
    evidence = [f"DNS server at {server} answers {name} with {len(nodes)} node addresses, shuffled; "
                f"clients connect to nodePort {port}"]
    facts: dict[str, Any] = {"name": name, "nodes": nodes, "tries": spec.tries}
    budget = spec.tries * (4 * CONNECT_TIMEOUT * len(nodes) + 5) + 10
    if spec.cut_off:
        cut = spare_node(ctx)
        cut_ip = next(ip for ip, n in nodes.items() if n == cut)
        facts.update(cut_node=cut, cut_ip=cut_ip)
        with cut_off(ctx, cut):
            evidence.append(f"cut {cut} ({cut_ip}) off the network")
            _, output = outside_run(ctx, attempts_script(name, port, spec.tries), timeout=budget)
        evidence_end = f"restored {cut}"
    else:
        _, output = outside_run(ctx, attempts_script(name, port, spec.tries), timeout=budget)
        evidence_end = ""
    attempts = parse_attempts(output)
    facts["attempts"] = attempts
    facts.update(tally(attempts, nodes, facts.get("cut_ip")))
    evidence.append(f"{len(attempts)} answers; first address by node: "
                    + ", ".join(f"{n} {c}" for n, c in sorted(facts["first_by_node"].items())))
    if spec.cut_off:
        evidence.append(f"{facts.get('cut_ip')} in {facts['answers_with_cut']} of {len(attempts)} answers")
    evidence.append(f"first-address client: {facts['first_failed']} of {len(attempts)} connections failed")
    evidence.append(f"retrying client: {facts['retry_failed']} of {len(attempts)} failed, "
                    f"{facts['retries_needed']} needed a second address")
    if evidence_end:
        evidence.append(evidence_end)
    share = facts["first_failed"] / len(attempts) if attempts else 0
    return Observation(f"{len(attempts)} answers, first attempts failed {facts['first_failed']} "
                       f"({share:.0%}), retrying client failed {facts['retry_failed']}", evidence, facts)


def tally(attempts: list[dict[str, Any]], nodes: dict[str, str], cut_ip: str | None = None) -> dict[str, Any]:
    """Counts over ATTEMPTS: which node each answer put first, failures of each client, answers
    listing every node, and answers that still list CUT_IP (the cut-off node's address)."""
    first_by_node = collections.Counter(nodes.get(a["first"], a["first"] or "none") for a in attempts)
    return {
        "first_by_node": dict(first_by_node),
        "complete_answers": sum(1 for a in attempts if set(a["answer"]) == set(nodes)),
        "first_failed": sum(1 for a in attempts if not a["first_ok"]),
        "retry_failed": sum(1 for a in attempts if not a["retry_ok"]),
        "retries_needed": sum(1 for a in attempts if a["retry_failed"]),
        "answers_with_cut": sum(1 for a in attempts if cut_ip and cut_ip in a["answer"]),
    }


def judge(facts: dict[str, Any], expect: Expect, topology: Topology | None = None) -> list[str]:
    problems = []
    attempts = facts.get("attempts") or []
    if not attempts:
        return ["the name got no answer"]
    complete = facts.get("complete_answers", 0)
    if expect.every_node_listed is not None and (complete == len(attempts)) != expect.every_node_listed:
        problems.append(f"{len(attempts) - complete} of {len(attempts)} answers missed a node"
                        if expect.every_node_listed else "every answer listed every node")
    if expect.spreads is not None:
        firsts = [n for n in (facts.get("first_by_node") or {}) if n != "none"]
        if (len(firsts) > 1) != expect.spreads:
            problems.append(f"first addresses on {len(firsts)} node(s)")
    if expect.first_attempts_fail is not None:
        failed = facts.get("first_failed", 0)
        if expect.first_attempts_fail and not failed:
            problems.append("no first attempt failed")
        if not expect.first_attempts_fail and failed:
            problems.append(f"{failed} of {len(attempts)} first attempts failed")
    if expect.retrying_client_succeeds is not None:
        failed = facts.get("retry_failed", 0)
        if expect.retrying_client_succeeds and failed:
            problems.append(f"the retrying client failed {failed} of {len(attempts)} times")
        if not expect.retrying_client_succeeds and not failed:
            problems.append("the retrying client always succeeded")
    return problems
