"""`svclab bench`: measured, not asserted. In one run on one machine: a bare `kind create cluster`
of the same shape vs svclab's cold `up` (cluster + load balancer + Ingress controller + clients),
warm labs, per-probe latency, failover time, this process's peak memory, and how time grows with
the number of LoadBalancer Services and of nodes."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import resource
import shutil
import statistics
import time
import types

from . import labs, lifecycle, network, render
from .probes import traffic
from .cluster import Kind, write_kind_config
from .config import DEFAULT_WORKERS, Settings
from .errors import SvclabError
from .kube import load_manifests, wait_until
from .ui import UI

__all__ = ["run_bench", "render_figures", "summarize", "scaling_rows", "SERVICE_COUNTS", "NODE_COUNTS"]

SERVICE_COUNTS = (1, 10, 50, 200)
NODE_COUNTS = (1, 3, 5)
BENCH_NAMESPACE = "svclab-bench"
# What a disruptive lab's facts call the time its mechanism took to route around a lost node.
MECHANISMS = {"failover_seconds": "address moves to another node (L2: gratuitous ARP)",
              "withdrawn_after": "router withdraws the node's BGP path",
              "marked_down_after": "HAProxy marks the node DOWN"}


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


def scaling_rows(measured: dict[int, float], unit: str) -> list[dict]:
    """One row per count: seconds, seconds per unit, and growth against the smallest count (time
    that grows no faster than the count has growth <= count ratio)."""
    smallest = min(measured)
    return [{unit: count, "seconds": round(seconds, 1), f"seconds_per_{unit[:-1]}": round(seconds / count, 2),
             "growth": round(seconds / measured[smallest], 2) if measured[smallest] else None,
             "count_ratio": round(count / smallest, 2)}
            for count, seconds in sorted(measured.items())]


def _lb_services(count: int) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"bench-{i}"},
             "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "echo"},
                      "ports": [{"port": 80, "targetPort": 8080}]}} for i in range(count)]


def time_services(env: lifecycle.Environment, count: int) -> float:
    """Seconds from applying COUNT LoadBalancer Services until every one has an address and
    answers the outside client (or, without a provider, has been admitted)."""
    kube, timeout = env.kube, env.settings.wait_timeout
    services = _lb_services(count)
    ctx = types.SimpleNamespace(settings=env.settings, outside=env.outside,
                                topology=types.SimpleNamespace(pool=env.pool))

    def answers(ip: str) -> bool:
        return bool(traffic.dial(ctx, "outside", ip, 80, "hostname", 1).get("responses"))

    started = time.monotonic()
    kube.apply(services, namespace=BENCH_NAMESPACE)
    if env.provider.expects_address:
        def addresses():
            found = [traffic.external_ip(svc) for svc in kube.list("v1", "Service", BENCH_NAMESPACE)]
            return found if len(found) == count and all(found) else None

        def refused():
            return next(filter(None, (traffic.lb_allocation_failure(kube, BENCH_NAMESPACE, svc["metadata"]["name"])
                                      for svc in services)), None)

        ips = wait_until(f"{count} LoadBalancer Services to get addresses", addresses, timeout=timeout, fail=refused)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            pending = set(ips)
            deadline = time.monotonic() + timeout
            while pending and time.monotonic() < deadline:  # an address is announced a moment after it is assigned
                pending = {ip for ip, ok in zip(pending, pool.map(answers, pending)) if not ok}
            if pending:
                raise SvclabError(f"{len(pending)} of {count} LoadBalancer addresses never answered")
    took = time.monotonic() - started
    kube.delete(services, namespace=BENCH_NAMESPACE)
    wait_until("the bench Services to be deleted",
               lambda: not kube.list("v1", "Service", BENCH_NAMESPACE), timeout=timeout)
    return took


def services_scaling(env: lifecycle.Environment, ui: UI) -> dict[int, float]:
    echo = render.manifest("echo-spread.yaml", render.context(namespace=BENCH_NAMESPACE))
    env.kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BENCH_NAMESPACE}}])
    env.kube.apply(load_manifests(echo), namespace=BENCH_NAMESPACE)
    env.kube.wait_deployment(BENCH_NAMESPACE, "echo", timeout=env.settings.wait_timeout)
    measured = {}
    for count in SERVICE_COUNTS:
        ui.step(f"{count} LoadBalancer Services until every address answers")
        measured[count] = time_services(env, count)
    env.kube.delete_namespace(BENCH_NAMESPACE, timeout=env.settings.wait_timeout)
    return measured


def nodes_scaling(settings: Settings, ui: UI, measured: dict[int, float]) -> dict[int, float]:
    """Cold `up` for each node count not measured yet (MEASURED: nodes -> seconds)."""
    for nodes in NODE_COUNTS:
        if nodes in measured:
            continue
        shaped = dataclasses.replace(settings, cluster_name=f"{settings.cluster_name}-bench-n{nodes}",
                                     workers=nodes - 1)
        ui.step(f"cold `cluster.up` with {nodes} nodes")
        try:
            _, measured[nodes] = _timed(lambda: lifecycle.up(shaped, ui))
        finally:
            lifecycle.down(shaped, ui)
    return measured


def run_bench(settings: Settings, ui: UI, *, repeat: int = 3) -> dict:
    # Room for the largest Service count next to the labs' own LoadBalancer Services.
    settings = dataclasses.replace(settings, pool_size=max(settings.pool_size, max(SERVICE_COUNTS) + 16),
                                   workers=DEFAULT_WORKERS if settings.workers is None else settings.workers)
    bench = dataclasses.replace(settings, cluster_name=f"{settings.cluster_name}-bench")
    bare = dataclasses.replace(settings, cluster_name=f"{settings.cluster_name}-bench-bare")
    kind = Kind(bare, echo=ui.echo)
    # Both clusters on svclab's own network; kind would otherwise make one svclab cannot use.
    dc = network.docker_client()
    network.ensure_network(dc, settings.network)
    bare_samples, up_samples = [], []
    env = None
    try:
        # Alternating pairs, the medians reported: one pair alone swings by a few seconds. Each
        # create runs with no other cluster on the host; the last `up` stays for what follows.
        for round_ in range(1, repeat + 1):
            if env is not None:
                lifecycle.down(bench, ui)
                network.ensure_network(dc, settings.network)   # `down` removed it with its last cluster
            ui.step(f"round {round_}/{repeat}: bare `kind create cluster` ({bare.workers} workers)")
            try:
                bare_samples.append(_timed(lambda: kind.create(write_kind_config(bare)))[1])
            finally:
                kind.delete()
                shutil.rmtree(bare.cluster_dir, ignore_errors=True)
            ui.step(f"round {round_}/{repeat}: svclab cold `cluster.up`")
            env, took_up = _timed(lambda: lifecycle.up(bench, ui))
            up_samples.append(took_up)
        bare_create, svclab_up = statistics.median(bare_samples), statistics.median(up_samples)
        selected = [labs.load_lab(i) for i in labs.available_labs()]
        steady = [lab for lab in selected if not lab.disruptive]
        for lab in steady:  # the first run applies manifests and pulls nothing; time the next one
            labs.run_lab(env, lab)
        per_lab: dict[str, float] = {}

        def one_after_another():
            found = []
            for lab in steady:
                lab_results, per_lab[lab.id] = _timed(lambda: labs.run_lab(env, lab))
                found += lab_results
            return found

        results, warm = _timed(one_after_another)
        side_by_side, warm_together = _timed(lambda: labs.run_labs(env, steady))
        failover_results = [r for lab in selected if lab.disruptive for r in labs.run_lab(env, lab)]
        took = next((r.facts.get("failover_seconds") for r in failover_results if "failover_seconds" in r.facts), None)
        mechanisms = by_mechanism(failover_results)
        by_services = services_scaling(env, ui)
    finally:
        lifecycle.down(bench, ui)
    try:
        by_nodes = nodes_scaling(settings, ui, {settings.workers + 1: svclab_up})
    finally:
        network.remove_network_if_unused(dc, settings.network)
    everything = results + side_by_side + failover_results
    figures = summarize(bare_create=bare_create, svclab_up=svclab_up, warm_labs=warm,
                        probe_seconds=[r.seconds for r in results], failover=took,
                        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                        probes=len(everything), passed=sum(r.passed for r in everything))
    figures["warm_labs_side_by_side_s"] = round(warm_together, 1)
    figures["per_lab_s"] = {lab_id: round(seconds, 1) for lab_id, seconds in per_lab.items()}
    figures["failover_by_mechanism_s"] = mechanisms
    figures["samples"] = {"bare_kind_create_s": [round(x, 1) for x in bare_samples],
                          "svclab_cold_up_s": [round(x, 1) for x in up_samples]}
    return {**figures, "by_services": scaling_rows(by_services, "services"),
            "by_nodes": scaling_rows(by_nodes, "nodes")}


def by_mechanism(results) -> dict[str, float | None]:
    """'lab/probe (what moved)' -> seconds, for each disruptive probe that timed a mechanism."""
    return {f"{r.lab}/{r.probe} ({what})": r.facts[key] for r in results
            for key, what in MECHANISMS.items() if key in r.facts}


def render_figures(figures: dict, console) -> None:
    """run_bench's figures as tables on CONSOLE (a rich Console): the measures, then the scaling."""
    from rich.table import Table

    table = Table(title="svclab bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if not isinstance(value, (list, dict)):
            table.add_row(key, str(value))
    for key, values in figures["samples"].items():
        table.add_row(f"{key} samples", ", ".join(map(str, values)))
    for what, seconds in figures.get("failover_by_mechanism_s", {}).items():
        table.add_row(f"failover: {what}", "not seen" if seconds is None else f"{seconds}s")
    for lab_id, seconds in figures.get("per_lab_s", {}).items():
        table.add_row(f"warm lab.{lab_id}", f"{seconds}s")
    console.print(table)
    for key in ("by_services", "by_nodes"):
        rows = figures[key]
        scaling = Table(title=f"time {key.replace('_', ' ')}")
        for column in rows[0]:
            scaling.add_column(column.replace("_", " "), justify="right")
        for row in rows:
            scaling.add_row(*(str(v) for v in row.values()))
        console.print(scaling)
