"""The behaviour matrix of `svclab compare` and `report.compare`: a row per behaviour and per probe,
a column per run (provider, and kube-proxy mode where the document records it), built from the
recorded `lab.all --json` runs (recorded_facts.json, one per provider, written before the mode was
recorded) and from copies of them under other modes; then its rendering at 80 columns."""

import copy
import io
import json
from pathlib import Path

from rich.console import Console

from svclab import report

RECORDED = json.loads((Path(__file__).parent / "samples" / "recorded_facts.json").read_text())["providers"]


def doc(provider, mode=None, *, claims=True):
    """A results document of the recorded run on PROVIDER (each probe given a claim id), under MODE."""
    results = copy.deepcopy(RECORDED[provider])
    if claims:
        for r in results:
            r["claim"] = f"C-{r['lab']}"
    found = {"version": 1, "cluster": f"svclab-compare-{provider}", "provider": provider, "results": results}
    return found | ({"kube_proxy_mode": mode} if mode else {})


def differing(document, lab, probe):
    """DOCUMENT with the verdict of LAB's PROBE turned into a mismatch."""
    changed = copy.deepcopy(document)
    next(r for r in changed["results"] if (r["lab"], r["probe"]) == (lab, probe))["passed"] = False
    return changed


def verdicts(rows):
    return {(row.group, row.label): row.cells for row in rows if row.group}


def test_a_run_is_its_provider_and_its_mode_when_recorded():
    assert report.run_label(doc("metallb", "nftables")) == "metallb/nftables"
    assert report.run_label(doc("metallb")) == "metallb"          # an old document: the provider alone
    assert report.run_label({"results": []}) == "?"
    runs = [doc("metallb", "iptables"), doc("metallb", "iptables"), doc("none")]
    assert report.run_labels(runs) == ["metallb/iptables", "metallb/iptables (2)", "none"]


def test_one_row_per_behaviour_then_one_per_probe_grouped_by_lab():
    docs = [doc("metallb"), doc("kube-vip"), doc("none")]
    rows = report.comparison_rows(docs)
    behaviour = [row for row in rows if not row.group]
    assert [row.label for row in behaviour] == list(report.BEHAVIOURS)
    assert all(len(row.cells) == 3 for row in rows)
    address = dict(zip(["metallb", "kube-vip", "none"], behaviour[0].cells))
    assert address["none"] == "<pending>" and address["metallb"].count(".") == 3
    probes = [row for row in rows if row.group]
    every_probe = {(r["lab"], r["probe"]) for results in RECORDED.values() for r in results}
    assert len(probes) == len(every_probe)
    groups = [row.group for row in probes]
    assert groups == sorted(groups, key=groups.index), "each lab's probes together"
    assert groups[0] == RECORDED["metallb"][0]["lab"]


def test_a_probe_row_names_its_claim_and_says_held_differed_or_not_run():
    bgp_only_on_metallb = next(r["probe"] for r in RECORDED["metallb"] if r["lab"] == "bgp")
    docs = [doc("metallb"), differing(doc("kube-vip"), "loadbalancer", "external-address")]
    cells = verdicts(report.comparison_rows(docs))
    assert cells[("loadbalancer", "C-loadbalancer external-address")] == ("held", "DIFFERED")
    assert cells[("bgp", f"C-bgp {bgp_only_on_metallb}")] == ("held", "—")


def test_a_lab_only_a_later_run_has_still_gets_its_rows():
    newer = doc("none")
    newer["results"].append({"lab": "brand-new", "probe": "first", "claim": "C99", "passed": True, "facts": {}})
    cells = verdicts(report.comparison_rows([doc("metallb"), newer]))
    assert cells[("brand-new", "C99 first")] == ("—", "held")


def test_documents_without_claims_show_the_probe_alone():
    cells = verdicts(report.comparison_rows([doc("none", claims=False)]))
    assert ("loadbalancer", "external-address") in cells


def test_two_modes_of_one_provider_that_disagree_give_one_line_per_probe():
    iptables = doc("metallb", "iptables")
    nftables = differing(doc("metallb", "nftables"), "nodeport", "every-node")
    lines = report.mode_disagreements([iptables, nftables, doc("kube-vip", "nftables"), doc("none")])
    assert lines == ["nodeport C-nodeport every-node: held on metallb/iptables, DIFFERED on metallb/nftables"]


def test_two_modes_that_agree_and_no_two_modes_at_all_are_told_apart():
    assert report.mode_disagreements([doc("metallb", "iptables"), doc("metallb", "nftables")]) == []
    # a mismatch between providers is not a mode's doing
    assert report.mode_disagreements([doc("metallb", "iptables"),
                                      differing(doc("kube-vip", "nftables"), "nodeport", "every-node")]) is None
    # an old document has no mode to compare
    assert report.mode_disagreements([doc("metallb"), differing(doc("metallb", "nftables"),
                                                                "nodeport", "every-node")]) is None


def test_a_probe_one_mode_did_not_run_is_no_disagreement():
    iptables = doc("metallb", "iptables")
    nftables = doc("metallb", "nftables")
    nftables["results"] = [r for r in nftables["results"] if r["lab"] != "bgp"]
    assert report.mode_disagreements([iptables, differing(nftables, "nodeport", "every-node")]) == [
        "nodeport C-nodeport every-node: held on metallb/iptables, DIFFERED on metallb/nftables"]


def render(docs, width=80):
    buf = io.StringIO()
    report.render_comparison(docs, Console(file=buf, width=width, color_system=None))
    return buf.getvalue()


def test_three_providers_read_at_80_columns_with_nothing_cut():
    text = render([doc("metallb", "iptables"), doc("kube-vip", "iptables"), doc("none", "iptables")])
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    address = next(r for r in RECORDED["metallb"] if r["probe"] == "external-address")["facts"]["value"]
    assert address in text                                    # an address whole, never folded
    for word in ("metallb", "kube-vip", "none", "iptables", "DNS RR", "C-nodeport every-node", "held"):
        assert word in text
    assert "no provider was run under two of them" in text


def test_four_runs_still_fit_80_columns_and_the_disagreement_is_printed():
    docs = [doc("metallb", "iptables"), differing(doc("metallb", "nftables"), "nodeport", "every-node"),
            doc("kube-vip", "nftables"), doc("none", "nftables")]
    text = render(docs)
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    address = next(r for r in RECORDED["metallb"] if r["probe"] == "external-address")["facts"]["value"]
    assert address in text
    assert "DIFFERED" in text
    assert "differs across kube-proxy modes: nodeport C-nodeport every-node" in " ".join(text.split())


def test_modes_that_agree_say_so():
    assert report.AGREE in render([doc("metallb", "iptables"), doc("metallb", "nftables")])


def test_a_claim_across_modes_is_held_not_held_or_not_shown_from_the_comparison():
    claims = {"C38": {"claim": "The mode changes the rules, not the behaviour.", "across": "kube_proxy_mode"}}

    def row(*docs):
        return report.claims_markdown(claims, docs).splitlines()[2]

    agree = row(doc("metallb", "iptables"), doc("metallb", "nftables"))
    assert "| held |" in agree and "the same verdicts under iptables, nftables" in agree
    differ = row(doc("metallb", "iptables"), differing(doc("metallb", "nftables"), "nodeport", "every-node"))
    assert "**not held**" in differ and "nodeport C-nodeport every-node" in differ
    assert "not shown" in row(doc("metallb", "iptables"), doc("kube-vip", "nftables"))


def test_behaviours_no_run_showed_are_left_out():
    only = ("no-node-ports", "vip-shortcut")
    few = [dict(d, results=[r for r in d["results"] if r["lab"] in only])
           for d in (doc("metallb", "iptables"), doc("none", "iptables"))]
    text = render(few)
    assert "behaviour" not in text and "not run" not in text
    assert "C-no-node-ports no-node-port" in text
    assert "behaviour" in render([doc("metallb", "iptables")])
