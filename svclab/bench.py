"""`svclab bench`: measured, not asserted. In one run on one machine: a bare `kind create cluster`
of the same shape vs svclab's cold `up` (cluster + load balancer + clients), warm labs, per-probe
latency, failover time and this process's peak memory."""

from __future__ import annotations

import dataclasses
import resource
import shutil
import statistics
import time

from . import labs, lifecycle, network
from .cluster import Kind, write_kind_config
from .config import Settings
from .ui import UI

__all__ = ["run_bench", "summarize"]


def _timed(fn):
    started = time.monotonic()
    value = fn()
    return value, time.monotonic() - started


def summarize(*, bare_create: float, svclab_up: float, warm_labs: float, probe_seconds: list[float],
              failover: float | None, peak_rss_mb: float, probes: int, passed: int) -> dict:
    ordered = sorted(probe_seconds)
    return {
        "bare_kind_create_s": round(bare_create, 1),
        "svclab_cold_up_s": round(svclab_up, 1),
        "up_over_bare_ratio": round(svclab_up / bare_create, 2) if bare_create else None,
        "warm_labs_s": round(warm_labs, 1),
        "probes": probes,
        "probes_as_expected": passed,
        "probe_latency_median_s": round(statistics.median(ordered), 2) if ordered else None,
        "probe_latency_max_s": round(ordered[-1], 2) if ordered else None,
        "failover_s": failover,
        "peak_rss_mb": round(peak_rss_mb, 1),
    }


def run_bench(settings: Settings, ui: UI) -> dict:
    bench = dataclasses.replace(settings, cluster_name=f"{settings.cluster_name}-bench")
    bare = dataclasses.replace(settings, cluster_name=f"{settings.cluster_name}-bench-bare")
    kind = Kind(bare, echo=ui.echo)
    # Both clusters on svclab's own network; kind would otherwise make one svclab cannot use.
    dc = network.docker_client()
    network.ensure_network(dc, settings.network)
    ui.step(f"bare `kind create cluster` ({bare.workers} workers)")
    try:
        _, bare_create = _timed(lambda: kind.create(write_kind_config(bare)))
    finally:
        kind.delete()
        shutil.rmtree(bare.cluster_dir, ignore_errors=True)
    try:
        ui.step("svclab cold `cluster.up`")
        env, svclab_up = _timed(lambda: lifecycle.up(bench, ui))
        selected = [labs.load_lab(i) for i in labs.available_labs()]
        steady = [lab for lab in selected if not lab.disruptive]
        for lab in steady:  # the first run applies manifests and pulls nothing; time the next one
            labs.run_lab(env, lab)
        results, warm = _timed(lambda: [r for lab in steady for r in labs.run_lab(env, lab)])
        failover_results = [r for lab in selected if lab.disruptive for r in labs.run_lab(env, lab)]
        took = next((r.facts.get("failover_seconds") for r in failover_results if "failover_seconds" in r.facts), None)
    finally:
        lifecycle.down(bench, ui)
        network.remove_network_if_unused(dc, settings.network)
    everything = results + failover_results
    return summarize(bare_create=bare_create, svclab_up=svclab_up, warm_labs=warm,
                     probe_seconds=[r.seconds for r in results], failover=took,
                     peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                     probes=len(everything), passed=sum(r.passed for r in everything))
