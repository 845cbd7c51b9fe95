from svclab.bench import summarize


def test_summary_figures():
    figures = summarize(bare_create=40.0, svclab_up=50.0, warm_labs=30.2, probe_seconds=[0.1, 0.3, 0.2],
                        failover=6.5, peak_rss_mb=80.04, probes=31, passed=31)
    assert figures["up_over_bare_ratio"] == 1.25
    assert figures["probe_latency_median_s"] == 0.2 and figures["probe_latency_max_s"] == 0.3
    assert figures["peak_rss_mb"] == 80.0
    assert summarize(bare_create=0, svclab_up=1, warm_labs=1, probe_seconds=[], failover=None, peak_rss_mb=1,
                     probes=0, passed=0)["up_over_bare_ratio"] is None


def test_scaling_rows_show_growth_against_the_smallest_count():
    from svclab.bench import scaling_rows

    rows = scaling_rows({10: 12.0, 1: 4.0, 50: 30.0}, "services")
    assert [r["services"] for r in rows] == [1, 10, 50]
    assert rows[1] == {"services": 10, "seconds": 12.0, "seconds_per_service": 1.2, "growth": 3.0, "count_ratio": 10.0}
    assert rows[2]["growth"] == 7.5 and rows[2]["count_ratio"] == 50.0
    assert scaling_rows({1: 20.0, 5: 50.0}, "nodes")[1]["seconds_per_node"] == 10.0


def test_each_mechanism_s_time_to_route_around_a_lost_node_is_named():
    import types

    from svclab.bench import by_mechanism

    def result(lab, probe, **facts):
        return types.SimpleNamespace(lab=lab, probe=probe, facts=facts)

    found = by_mechanism([result("failover", "holder-fails", failover_seconds=1.03, address="x"),
                          result("bgp", "withdrawn", withdrawn_after=7.2),
                          result("external-lb", "node-marked-down", marked_down_after=None),
                          result("failover", "keeps-answering", attempts=[])])
    assert found == {"failover/holder-fails (address moves to another node (L2: gratuitous ARP))": 1.03,
                     "bgp/withdrawn (router withdraws the node's BGP path)": 7.2,
                     "external-lb/node-marked-down (HAProxy marks the node DOWN)": None}
