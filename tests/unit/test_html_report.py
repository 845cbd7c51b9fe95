"""The HTML report without a browser: the paths read back from results, the cluster as observed
(recorded topology or inferred), timelines, the claims' verdicts, the page's self-containment,
the Markdown summary's Mermaid diagram and the report.html command."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from svclab import html_report, labs, report
from svclab.observed_cluster import cluster_view
from svclab.probe_paths import parse_traffic_line
from svclab.timelines import timeline

from .html_samples import ATTEMPTS, LB, REAL, TOPOLOGY, real_doc, synthetic_doc, synthetic_results


def _views(doc):
    return {v.lab: v for v in html_report.lab_views(doc, titles=False)}


def _probe(views, key):
    lab, _, probe = key.partition("/")
    return next(p for p in views[lab].probes if p.result["probe"] == probe)


def test_a_traffic_line_gives_source_target_entry_node_and_pods():
    line = parse_traffic_line("outside → load balancer 172.18.255.232: 4/4 answered via node dev-worker "
                              "(the client's ARP entry); saw echo-1 on dev-worker2, echo-2 on dev-worker")
    assert (line.source, line.target, line.answered, line.tries) == ("outside", "load balancer 172.18.255.232", 4, 4)
    assert line.via_node == "dev-worker"
    assert line.pods == (("echo-1", "dev-worker2"), ("echo-2", "dev-worker"))
    seen = parse_traffic_line("outside → dev-worker 172.18.0.3:31441: 1/1 answered; saw 10.244.1.1 (node dev-worker)")
    assert seen.sources_seen == ("node",) and seen.pods == ()
    assert parse_traffic_line("cut dev-worker2 off the network") is None


def test_the_real_run_draws_each_path_through_the_nodes_and_pods_it_took():
    views = _views(real_doc())
    lb = _probe(views, "loadbalancer/port-80-at-external-address").path
    assert [leg.places for leg in lb.legs] == [("outside", "lb:172.18.255.232", "node:dev-worker",
                                                "pod:echo-5dd47c86df-g9g6v")]
    snat = _probe(views, "traffic-policy/cluster-policy-lb-hides-client").path.legs[0]
    kept = _probe(views, "traffic-policy/local-policy-lb-keeps-client").path.legs[0]
    assert (snat.source_seen, kept.source_seen) == ("node", "client")
    failover = _probe(views, "failover/holder-fails").path
    assert [(leg.places[-1], leg.answered) for leg in failover.legs] == [("node:dev-worker2", False),
                                                                         ("node:dev-worker", True)]
    bgp = _probe(views, "bgp/node-withdrawn").path
    assert {leg.places[-1]: leg.answered for leg in bgp.legs} == {"node:dev-worker": True, "node:dev-worker2": False}
    assert not _probe(views, "nodeport/out-of-range").path.traffic   # read from the API only


def test_a_client_in_its_node_s_network_sends_from_that_node():
    """Evidence of lab.host-network on a real cluster: the traffic starts at the node box."""
    from svclab.probe_paths import probe_path

    nodes = {"172.18.0.4": "probe14-control-plane", "172.18.0.3": "probe14-worker", "172.18.0.2": "probe14-worker2"}
    pods = {"echo-5ffbc477bd-jgqqg": "probe14-worker"}

    def places(line):
        path = probe_path({"evidence": [line], "facts": {}}, nodes=nodes, pods=pods, lb_addresses=set())
        return [leg.places for leg in path.legs]

    assert places("pod node-far-76c4795c68-42hdh on probe14-worker2, in the node's network → ClusterIP: 2/2 "
                  "answered; saw echo-5ffbc477bd-jgqqg on probe14-worker") == [
        ("node:probe14-worker2", "svc", "pod:echo-5ffbc477bd-jgqqg")]
    assert places("pod node-far-76c4795c68-42hdh on probe14-worker2, in the node's network → probe14-worker2 "
                  "172.18.0.2:30395 (the client's own node): 2/2 answered; saw echo-5ffbc477bd-jgqqg on "
                  "probe14-worker") == [("node:probe14-worker2", "pod:echo-5ffbc477bd-jgqqg")]
    # A lab's client pod with a network of its own is drawn as the in-cluster client, as before.
    assert places("pod client-far-7b5bb564fb-24kcw on probe14-worker2 → ClusterIP: 0/2 answered")[0][0] == "pod-client"


def test_a_file_without_topology_infers_nodes_and_pods_and_says_so():
    doc = real_doc()
    assert "topology" not in doc
    view = _views(doc)["loadbalancer"].cluster
    assert not view.recorded
    assert {n.name: n.ip for n in view.nodes} == {"dev-control-plane": "172.18.0.2", "dev-worker": "172.18.0.3",
                                                  "dev-worker2": "172.18.0.4"}
    assert view.pods["echo-5dd47c86df-g9g6v"] == "dev-worker2"
    assert dict(view.lbs)["172.18.255.232"] == "dev-worker"
    assert view.client_ip == "172.18.255.222" or view.client_ip is None
    page = html_report.render_page([doc], labs.load_claims(), titles=False)
    assert "records no topology for the lab" in page


def test_the_recorded_topology_is_what_the_diagram_shows():
    doc = synthetic_doc()
    assert doc["version"] == report.JSON_VERSION
    record = doc["topology"]["loadbalancer"]
    assert record == labs.topology_record(TOPOLOGY)
    assert record["pods"] == {"echo-aaaaa": "kind-worker2", "echo-bbbbb": "kind-worker2"}
    assert record["pool"]["range"] == "172.18.255.201-172.18.255.220"
    view = cluster_view(doc, "loadbalancer", [r for r in doc["results"] if r["lab"] == "loadbalancer"])
    assert view.recorded and view.client_ip == "172.18.255.200" and view.client_pod_ip == "10.244.1.7"
    assert [(n.name, n.ip, n.pods) for n in view.nodes][2] == ("kind-worker2", "172.18.0.4", ("echo-aaaaa", "echo-bbbbb"))
    page = html_report.render_page([doc], labs.load_claims(), titles=False)
    assert "records no topology" not in page
    for text in ("kind-worker2", "172.18.0.4", "echo-aaaaa", "10.244.1.7", f"load balancer {LB}",
                 "held by kind-worker", "172.18.255.201-172.18.255.220"):
        assert text in page, text


def test_every_probe_has_its_path_coloured_by_verdict_and_its_evidence_in_details():
    doc = synthetic_doc()
    page = html_report.render_page([doc], labs.load_claims(), titles=False)
    for r in doc["results"]:
        groups = re.findall(rf'<g class="path (pass|fail)" data-probe="{r["lab"]}/{r["probe"]}"', page)
        assert groups == ["pass" if r["passed"] else "fail"], r["probe"]
        assert f'id="r1-{r["lab"]}-{r["probe"]}"' in page
    assert "SNAT: source = node" in page
    details = re.findall(r"<details>\s*<summary>evidence", page)
    assert len(details) == len(doc["results"])
    assert "differs: source addresses were node" in page


def test_the_real_page_draws_every_probe_and_fetches_nothing():
    doc = real_doc()
    page = html_report.render_page([doc], labs.load_claims())
    for r in doc["results"]:
        assert f'data-probe="{r["lab"]}/{r["probe"]}"' in page, r["probe"]
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"\b(src|href|xlink:href)\s*=\s*\"(?!#)", page), "a reference that would be fetched"
    assert "@import" not in page and not re.search(r"url\((?!#)", page)


def test_timelines_have_a_mark_per_recorded_attempt_by_node():
    line = timeline("failover/holder-fails", synthetic_doc()["results"][3]["facts"])
    assert len(line.marks) == len(ATTEMPTS) and [m.answered for m in line.marks] == [a["answered"] for a in ATTEMPTS]
    assert dict(line.lanes).keys() == {"kind-worker2", "no answer"}
    assert [e.label for e in line.events] == ["answers again via kind-worker2"]
    rr = next(r for r in real_doc()["results"] if r["probe"] == "node-cut-off" and r["lab"] == "dns-round-robin")
    line = timeline("dns-round-robin/node-cut-off", rr["facts"])
    assert len(line.marks) == len(rr["facts"]["attempts"]) == 30
    assert sum(not m.answered for m in line.marks) == rr["facts"]["first_failed"]
    lanes = dict(line.lanes)
    assert all(m.y == lanes["dev-worker2"] for m in line.marks if not m.answered)   # the cut node's address
    # A file written before the attempts were recorded: the measured moment, and a note.
    old = next(r for r in real_doc()["results"] if r["probe"] == "holder-fails")
    line = timeline("failover/holder-fails", old["facts"])
    assert not line.marks and line.events and "records no attempt" in line.note
    assert timeline("loadbalancer/external-address", {"value": LB}) is None


def test_claims_link_their_verdict_to_their_probes_as_report_claims_derives_it():
    docs = [real_doc(), synthetic_doc()]
    claims = labs.load_claims()
    page = html_report.build_page(docs, claims, titles=False)
    rows = {row.id: row for row in page.claims}
    assert list(rows) == list(claims)
    markdown = report.claims_markdown(claims, docs)
    for cid, row in rows.items():
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {cid} |"))
        assert f"| {'**not held**' if row.verdict == 'not held' else row.verdict} |" in line
    assert rows["C17"].verdict == "not held"
    assert ("r2-loadbalancer-local-policy-keeps-client", "metallb/iptables (2) · loadbalancer/local-policy-keeps-client",
            False) in rows["C17"].probes
    html = html_report.render_page(docs, claims, titles=False)
    assert re.search(r'<tr id="claim-C17">.*?<a href="#r1-traffic-policy-[a-z-]+" class="not-held">not held</a>',
                     html, re.S)


def test_markdown_summary_embeds_the_key_diagram_and_links_the_page():
    doc = synthetic_doc()
    text = report.to_markdown(synthetic_results(), title="svclab · metallb", doc=doc, html="report.html")
    assert "[report.html](report.html)" in text
    block = text.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert block.startswith("flowchart LR")
    assert "n_outside --> n_lb_172_18_255_201" in block
    assert "n_lb_172_18_255_201 --> n_node_kind_worker" in block
    assert "stroke:#cf222e" in block   # the hop of the probe that differed
    assert "| C10 |" in text
    assert "mermaid" not in report.to_markdown(synthetic_results(), title="t")


def test_report_html_writes_one_page_from_results_files(tmp_path):
    saved = tmp_path / "synthetic.json"
    saved.write_text(json.dumps(synthetic_doc()))
    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "svclab", "report.html", "--results", f"{REAL},{saved}",
                           "--output", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "metallb/iptables (2)" in page
    assert 'data-probe="failover/holder-fails" data-run="2"' in page
    bad = subprocess.run([sys.executable, "-m", "svclab", "report.html", "--results", str(tmp_path / "none.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a readable results file" in bad.stderr


def test_a_lab_run_writes_the_topology_into_the_json_and_the_html_beside_it(tmp_path, monkeypatch):
    import types

    from svclab import session
    from svclab.flags import LabFlags

    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    env = types.SimpleNamespace(settings=types.SimpleNamespace(cluster_name="kind", kube_proxy_mode="iptables"),
                                provider=types.SimpleNamespace(name="metallb"), target=None, kube_proxy_mode="iptables")
    flags = LabFlags(json=str(tmp_path / "r.json"), html=str(tmp_path / "r.html"), markdown=str(tmp_path / "r.md"))
    topologies = {"loadbalancer": labs.topology_record(TOPOLOGY), "failover": labs.topology_record(TOPOLOGY)}
    session._write_files(synthetic_results(), flags, env, ["loadbalancer", "failover"], topologies)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["topology"] == topologies and doc["version"] == report.JSON_VERSION
    page = (tmp_path / "r.html").read_text()
    assert 'data-probe="failover/holder-fails"' in page and "records no topology" not in page
    summary = (tmp_path / "r.md").read_text()
    assert f"[{tmp_path / 'r.html'}]({tmp_path / 'r.html'})" in summary and "```mermaid" in summary
