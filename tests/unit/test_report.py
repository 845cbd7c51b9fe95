import io
import json

from rich.console import Console

from svclab import report
from svclab.labs import Result


def result(passed=True, **kw):
    base = dict(lab="nodeport", probe="every-node", claim="C5", path="outside → every node", expected="answers",
                observed="3/3 answered", evidence=["outside → w1: 1/1 answered"], passed=passed,
                problems=[] if passed else ["1 of 3 targets did not answer every request"], seconds=0.1)
    return Result(**(base | kw))


def render(results):
    buf = io.StringIO()
    report.render_table(results, Console(file=buf, width=160, color_system=None))
    return buf.getvalue()


def test_table_shows_claim_path_expected_observed_evidence_verdict():
    text = render([result(), result(passed=False, probe="x", claim="C6")])
    for column in ("claim", "path", "expected", "observed", "evidence", "verdict"):
        assert column in text
    assert "as expected" in text and "DIFFERS" in text
    assert "differs: 1 of 3 targets" in text
    assert "1/2 probes as expected" in text


def test_exit_codes():
    assert report.exit_code([result()]) == 0
    assert report.exit_code([result(), result(passed=False)]) == 1
    assert report.exit_code([]) == 1


def test_json_is_versioned():
    data = json.loads(report.to_json([result()], context={"cluster": "svclab", "provider": "metallb"}))
    assert data["version"] == report.JSON_VERSION
    assert data["summary"] == {"probes": 1, "passed": 1, "failed": 0}
    assert data["results"][0]["claim"] == "C5"
    assert data["provider"] == "metallb"


def test_provider_comparison_rows():
    def r(lab, probe, facts):
        return {"lab": lab, "probe": probe, "facts": facts}

    metallb = {"provider": "metallb", "results": [
        r("loadbalancer", "external-address", {"value": "172.18.255.240"}),
        r("loadbalancer", "port-80-at-external-address", {"answered_targets": 1}),
        r("traffic-policy", "cluster-policy-lb-hides-client", {"source_kinds": ["node", "node"]}),
        r("traffic-policy", "local-policy-lb-keeps-client", {"source_kinds": ["client"]}),
        r("traffic-policy", "health-check-per-node", {"codes": {"c-control-plane": 503, "c-worker": 200}}),
        r("failover", "holder-fails", {"failover_seconds": 7.1}),
        r("bgp", "router-learns-the-address", {"next_hops": ["c-worker", "c-worker2"]}),
        r("bgp", "node-withdrawn", {"withdrawn_after": 5.4}),
        r("external-lb", "haproxy-checks-local", {"status": {"c-control-plane": "DOWN", "c-worker": "UP"}}),
        r("external-lb", "node-cut-off", {"marked_down_after": 2.5}),
        r("dns-round-robin", "node-cut-off", {"first_failed": 10, "attempts": [{}] * 30}),
    ]}
    bare = {"provider": "none", "results": [
        r("loadbalancer", "external-address", {"value": None}),
        r("loadbalancer", "port-80-at-external-address", {"answered_targets": 0}),
        r("traffic-policy", "cluster-policy-lb-hides-client", {"source_kinds": []}),
    ]}
    rows = report.comparison_rows([metallb, bare])
    behaviour = {row.label: row.cells for row in rows if not row.group}
    assert list(behaviour) == list(report.BEHAVIOURS)
    assert {name: cells[0] for name, cells in behaviour.items()} == {
        "address assigned": "172.18.255.240", "reachable on :80": "yes", "source (Cluster)": "node",
        "source (Local)": "client", "health check per node": "plane:503 worker:200", "failover": "7.1s",
        "BGP next hops": "worker worker2", "BGP withdrawal": "5.4s", "HAProxy UP (Local)": "worker",
        "HAProxy mark-down": "2.5s", "DNS RR first-try failures": "10/30"}
    none = {name: cells[1] for name, cells in behaviour.items()}
    assert none["address assigned"] == "<pending>"
    assert none["reachable on :80"] == "no"
    assert none["source (Cluster)"] == "no answer"
    assert none["source (Local)"] == "not run" and none["failover"] == "not run"
    assert none["BGP withdrawal"] == none["DNS RR first-try failures"] == "not run"
    assert report.run_labels([metallb, bare]) == ["metallb", "none"]


def test_junit_has_a_case_per_probe_and_failures():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(report.to_junit([result(), result(passed=False, probe="x", lab="pending")]))
    assert root.get("tests") == "2" and root.get("failures") == "1"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"nodeport", "pending"}
    failure = suites["pending"].find("testcase/failure")
    assert "did not answer" in failure.get("message")
    assert "observed: 3/3 answered" in failure.text


def test_markdown_summary_escapes_pipes():
    text = report.to_markdown([result(path="a | b"), result(passed=False)], title="svclab nodeport")
    assert text.startswith("### svclab nodeport")
    assert "**1/2 probes as expected**" in text
    assert "a \\| b" in text and "❌ differs" in text


def test_claims_table_marks_each_claim_from_results():
    docs = [{"provider": "metallb", "results": [
        {"claim": "C5", "passed": True, "observed": "3/3 answered"},
        {"claim": "C6", "passed": False, "observed": "accepted"},
    ]}]
    text = report.claims_markdown({"C5": "NodePort on every node.", "C6": "Range.", "C19": "Ingress."}, docs)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()[2:]}
    assert "| held |" in rows["C5"] and "metallb: 3/3 answered" in rows["C5"]
    assert "**not held**" in rows["C6"]
    assert "not shown" in rows["C19"]


def test_claims_file_covers_every_claim_a_lab_names():
    from svclab import labs

    claims = labs.load_claims()
    numbers = [int(c[1:]) for c in claims]
    assert numbers == sorted(numbers) and set(range(1, 22)) <= set(numbers)
    for lab_id in labs.available_labs():
        assert set(labs.load_lab(lab_id).claims) <= set(claims)


LONG = ["outside → svclab-e2e-worker2 172.18.255.241:31080: 3/3 answered; saw echo-spread-5b8c9d7f6d-x2x9z on "
        "svclab-e2e-worker2, echo-spread-5b8c9d7f6d-qq7lm on svclab-e2e-worker", "load balancer 172.18.255.240"]


def test_a_narrow_console_gets_one_block_per_probe_with_nothing_cut():
    results = [result(evidence=LONG, observed="1/1 answered, 4 backends on 2 nodes"),
               result(passed=False, probe="x", claim="C6", evidence=["API server: 10.96.170.201 is taken"])]
    for width in (60, 80):
        buf = io.StringIO()
        report.render_table(results, Console(file=buf, width=width, color_system=None))
        text = buf.getvalue()
        assert "…" not in text and "┃" not in text and "│" not in text   # no table, nothing cut
        for word in ("svclab-e2e-worker2", "172.18.255.241:31080", "echo-spread-5b8c9d7f6d-x2x9z", "10.96.170.201"):
            assert word in text, (width, word)
        assert "✓ as expected  C5 nodeport: outside → every node" in text
        assert "✗ DIFFERS  C6 nodeport" in text and "  differs: 1 of 3 targets did not answer every request" in text
        assert "1/2 probes as expected" in text


def test_a_wide_console_keeps_the_table():
    buf = io.StringIO()
    report.render_table([result(evidence=LONG)], Console(file=buf, width=220, color_system=None))
    text = buf.getvalue()
    assert "evidence" in text and "│" in text and "…" not in text


def test_the_table_appears_exactly_where_no_word_has_to_be_cut():
    results = [result(evidence=LONG), result(passed=False, probe="x", claim="C6")]
    needed = report._narrowest_table([report._row(r) for r in results])
    for width, table in ((needed, True), (needed - 1, False)):
        buf = io.StringIO()
        report.render_table(results, Console(file=buf, width=width, color_system=None))
        text = buf.getvalue()
        assert ("│" in text) == table and "…" not in text, (width, text)
        assert "echo-spread-5b8c9d7f6d-x2x9z" in text and "172.18.255.241:31080:" in text
