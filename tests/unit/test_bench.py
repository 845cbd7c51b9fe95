from svclab.bench import summarize


def test_summary_figures():
    figures = summarize(bare_create=40.0, svclab_up=50.0, warm_labs=30.2, probe_seconds=[0.1, 0.3, 0.2],
                        failover=6.5, peak_rss_mb=80.04, probes=31, passed=31)
    assert figures["up_over_bare_ratio"] == 1.25
    assert figures["probe_latency_median_s"] == 0.2 and figures["probe_latency_max_s"] == 0.3
    assert figures["peak_rss_mb"] == 80.0
    assert summarize(bare_create=0, svclab_up=1, warm_labs=1, probe_seconds=[], failover=None, peak_rss_mb=1,
                     probes=0, passed=0)["up_over_bare_ratio"] is None
