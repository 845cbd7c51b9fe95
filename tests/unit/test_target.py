"""A cluster svclab did not make: naming it (resolve), where its one-backend labs put their pod,
which probes run there (plan), and the census that shows svclab changed nothing else."""

import dataclasses
import types

import pytest
import yaml

from svclab import census, labs, plan, target
from svclab.config import load_settings
from svclab.errors import UsageError


def kubeconfig(tmp_path, contexts=("kind-plain", "prod"), current="kind-plain"):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": c, "cluster": {"server": "https://127.0.0.1:6443"}} for c in contexts],
        "users": [{"name": c, "user": {"token": "x"}} for c in contexts],
        "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts],
    }))
    return path


def test_the_current_context_is_made_explicit_and_names_the_state(tmp_path):
    path = kubeconfig(tmp_path)
    s = target.resolve(load_settings({"kubeconfig": str(path)}, env={}))
    assert (s.context, s.cluster_name, s.targets_own_cluster) == ("kind-plain", "target-kind-plain", False)
    s = target.resolve(load_settings({"kubeconfig": str(path), "context": "prod"}, env={}))
    assert s.cluster_name == "target-prod"


def test_an_unknown_context_a_missing_file_and_name_with_a_target_are_refused(tmp_path):
    path = kubeconfig(tmp_path)
    with pytest.raises(UsageError, match="has no context 'nope'") as e:
        target.resolve(load_settings({"kubeconfig": str(path), "context": "nope"}, env={}))
    assert "kind-plain, prod" in e.value.hint
    with pytest.raises(UsageError, match="does not exist"):
        target.resolve(load_settings({"kubeconfig": str(tmp_path / "absent")}, env={}))
    with pytest.raises(UsageError, match="--name picks one of svclab's own clusters"):
        target.resolve(load_settings({"kubeconfig": str(path), "cluster_name": "dev"}, env={}))


def test_the_environment_names_a_target_too(tmp_path):
    path = kubeconfig(tmp_path)
    s = target.resolve(load_settings(env={"SVCLAB_KUBECONFIG": str(path), "SVCLAB_CONTEXT": "prod"}))
    assert s.context == "prod" and s.kubeconfig == path


def test_own_clusters_are_left_as_they_are():
    s = load_settings(env={})
    assert target.resolve(s) is s and s.targets_own_cluster


def node(name, *, control_plane=False, taint=None):
    labels = {"kubernetes.io/hostname": name}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"taints": [{"key": "k", "effect": taint}] if taint else []}}


def test_the_backend_node_is_the_first_schedulable_worker():
    assert target.backend_node([node("b-worker2"), node("b-control-plane", control_plane=True), node("b-worker")]) == "b-worker"
    assert target.backend_node([node("w", taint="NoSchedule"), node("cp", control_plane=True)]) == "cp"
    assert target.backend_node([node("only", control_plane=True, taint="NoSchedule")]) == "only"


def test_backends_are_pinned_by_hostname_not_by_svclab_s_node_label():
    lab = labs.load_lab("internal-traffic")
    objects = [o for m in lab.manifests for o in labs.load_manifests(labs.render_manifest(lab, m))]
    text = yaml.safe_dump(target.pin_backends(objects, "their-worker"))
    assert target.BACKEND_LABEL not in text
    assert text.count("their-worker") >= 2


FOUND = types.SimpleNamespace(translates_services=True, kube_proxy_detail="kube-proxy, iptables", proxied=False)


def test_what_a_target_cannot_show_is_skipped_with_its_reason():
    chosen = [labs.load_lab(i) for i in ("loadbalancer", "failover", "gateway", "source-ranges", "tcp-udp")]
    there = types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="container", installs=())
    runnable, skipped = plan.plan(chosen, there)
    reasons = {f"{s.lab}/{s.probe}": s.reason for s in skipped}
    assert [lab.id for lab in runnable] == ["loadbalancer", "tcp-udp"]
    assert "stops or cuts off nodes" in reasons["failover/" + chosen[1].probes[0].id]
    assert "installs cluster-wide objects (gateway_api)" in reasons["gateway/" + chosen[2].probes[0].id]
    assert "second outside client" in reasons["source-ranges/" + chosen[3].probes[0].id]
    assert any("svclab-traefik" in r for k, r in reasons.items() if k.startswith("tcp-udp/"))
    _, skipped = plan.plan([labs.load_lab("ingress"), labs.load_lab("tls")], there)
    assert {f"{s.lab}/{s.probe}" for s in skipped} >= {"ingress/one-address-per-loadbalancer", "tls/ingress-terminates"}
    assert len(runnable[0].probes) == len(chosen[0].probes)     # every loadbalancer probe runs


def test_the_ingress_probes_run_where_traefik_is_installed_for_the_run(tmp_path):
    chosen = [labs.load_lab("ingress"), labs.load_lab("tls")]
    with_traefik = types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="container", installs=("traefik",))
    _, skipped = plan.plan(chosen, with_traefik)
    assert not any("svclab-traefik" in s.reason for s in skipped), skipped
    _, skipped = plan.plan(chosen, types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="container", installs=()))
    assert any("--install traefik brings it" in s.reason for s in skipped)
    path = kubeconfig(tmp_path)
    assert target.resolve(load_settings({"kubeconfig": str(path), "install": "traefik"}, env={})).installs == ("traefik",)
    assert load_settings({"install": "traefik,metallb"}, env={}).installs == ("traefik", "metallb")
    with pytest.raises(UsageError, match="cannot install 'cilium'"):
        load_settings({"install": "traefik,cilium"}, env={})
    with pytest.raises(UsageError, match="--install is for a cluster svclab did not make"):
        target.resolve(load_settings({"install": "traefik"}, env={}))


def test_without_an_outside_client_or_service_translation_whole_groups_skip_once():
    lb = labs.load_lab("loadbalancer")
    runnable, skipped = plan.plan([lb], types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="", installs=()))
    assert skipped and all("outside client" in s.reason for s in skipped)
    assert all(not __import__("svclab").probes.uses_outside(p) for lab in runnable for p in lab.probes)
    dead = types.SimpleNamespace(translates_services=False, kube_proxy_detail="no kube-proxy DaemonSet", proxied=False)
    runnable, skipped = plan.plan([lb, labs.load_lab("clusterip")], types.SimpleNamespace(outside_routes_beyond=False, detected=dead, outside="container", installs=()))
    assert runnable == [] and {s.reason for s in skipped} == {"nothing translates Services on this cluster "
                                                               "(no kube-proxy DaemonSet)"}


def test_test_patterns_keep_and_leave_out_probes():
    lb = labs.load_lab("loadbalancer")
    runnable, skipped = plan.plan([lb, labs.load_lab("clusterip")], None, "loadbalancer/*,!*pending*")
    assert [lab.id for lab in runnable] == ["loadbalancer"] and not skipped
    assert all("pending" not in p.id for p in runnable[0].probes) and len(runnable[0].probes) == len(lb.probes) - 1
    assert plan.selected("clusterip/dns-name", ("clusterip",), ()) and not plan.selected("nodeport/x", ("clusterip",), ())
    with pytest.raises(UsageError, match="no probe matches --test nothing-like-this"):
        plan.plan([lb], None, "nothing-like-this")


def _census(**kinds):
    return census.Census({kind.replace("_", " "): objects for kind, objects in kinds.items()})


def test_the_census_fails_on_what_svclab_wrote_or_what_vanished_unowned():
    Seen = census.Seen
    before = _census(v1_Pod={"default/web-1": Seen("u1", owned=True), "default/solo": Seen("u2")},
                     v1_ServiceAccount={"kube-system/a": Seen("u3")},
                     v1_Node={"n1": Seen("u4", written="2026-12-01T10:00:00Z")})
    same = census.compare(before, before)
    assert same.problems == [] and same.by_cluster == []
    after = _census(v1_Pod={"default/web-2": Seen("u5", owned=True)},
                    v1_ServiceAccount={"kube-system/a": Seen("u3"), "kube-system/b": Seen("u6")},
                    v1_Node={"n1": Seen("u4", written="2026-12-02T10:00:00Z")})
    changes = census.compare(before, after)
    assert changes.written == ["v1 Node n1"]             # svclab wrote it again during the run
    assert changes.gone == ["v1 Pod default/solo"]       # nothing owned it: nothing brings it back
    assert changes.by_cluster == ["v1 Pod default/web-1 (a controller owned it, and replaces its own)",
                                  "v1 Pod default/web-2 (added, not by svclab)",
                                  "v1 ServiceAccount kube-system/b (added, not by svclab)"]
    assert changes.problems == ["svclab wrote v1 Node n1", "gone: v1 Pod default/solo"]
    # An object svclab created outside its namespaces is written, whatever else happened.
    made = census.compare(before, _census(**{**{k.replace(" ", "_"): v for k, v in before.kinds.items()},
                                             "v1_ConfigMap": {"default/x": Seen("u7", written="2026-12-02T10:00:00Z")}}))
    assert made.problems == ["svclab wrote v1 ConfigMap default/x"]
    assert census.compare(_census(v1_Secret=None), _census(v1_Secret={})).unlisted == ["v1 Secret"]


def test_an_object_s_census_entry_reads_its_owner_and_svclab_s_writes():
    item = {"metadata": {"uid": "u", "ownerReferences": [{"kind": "ReplicaSet", "controller": True}],
                         "managedFields": [{"manager": "kube-controller-manager", "time": "2026-12-02T11:00:00Z"},
                                           {"manager": "svclab", "time": "2026-12-02T09:00:00Z"},
                                           {"manager": "svclab", "time": "2026-12-02T10:00:00Z"}]}}
    assert census.seen(item) == census.Seen("u", owned=True, written="2026-12-02T10:00:00Z")
    assert census.seen({"metadata": {"uid": "v", "ownerReferences": [{"kind": "Node"}]}}) == census.Seen("v")


class FakeApi:
    """Discovery and lists as the API server answers them, for census.count."""

    def __init__(self, objects):
        self.objects = objects

    def get_json(self, path, query=None, timeout=10):
        import json
        if path == "/apis":
            return json.dumps({"groups": [{"preferredVersion": {"groupVersion": "apps/v1"}}]})
        if path == "/api/v1":
            return json.dumps({"resources": [
                {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list"]},
                {"name": "pods/log", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
                {"name": "events", "kind": "Event", "namespaced": True, "verbs": ["list"]},
                {"name": "namespaces", "kind": "Namespace", "namespaced": False, "verbs": ["list"]}]})
        if path == "/apis/apps/v1":
            return json.dumps({"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True,
                                              "verbs": ["list"]}]})
        resource = path.rsplit("/", 1)[1]
        return json.dumps({"items": self.objects.get(resource, []), "metadata": {}})


def test_the_census_counts_what_is_outside_svclab_s_namespaces():
    def obj(name, ns=None):
        return {"metadata": {"name": name, **({"namespace": ns} if ns else {})}}

    api = FakeApi({"pods": [obj("a", "kube-system"), obj("b", "svclab-loadbalancer"), obj("c", "default")],
                   "namespaces": [obj("kube-system"), obj("svclab-loadbalancer"), obj("default")],
                   "deployments": [obj("coredns", "kube-system")], "events": [obj("e", "default")]})
    taken = census.take(api, {"svclab-loadbalancer"})
    assert taken.counts() == {"v1 Pod": 2, "v1 Namespace": 2, "apps/v1 Deployment": 1}
    assert sorted(taken.kinds["v1 Pod"]) == ["default/c", "kube-system/a"]
    assert sorted(taken.kinds["v1 Namespace"]) == ["default", "kube-system"]


def test_the_census_leaves_out_the_cluster_ips_of_svclab_s_services():
    """A namespace of svclab's kept from an earlier run (--keep) is removed at the end of the next:
    the IPAddress objects of its Services go with them, and are svclab's own, not a user's."""
    def address(ip, ns):
        return {"metadata": {"name": ip}, "spec": {"parentRef": {"resource": "services", "namespace": ns,
                                                                 "name": "echo"}}}

    class AddressApi(FakeApi):
        def get_json(self, path, query=None, timeout=10):
            import json
            if path == "/apis":
                return json.dumps({"groups": [{"preferredVersion": {"groupVersion": "networking.k8s.io/v1"}}]})
            if path == "/apis/networking.k8s.io/v1":
                return json.dumps({"resources": [{"name": "ipaddresses", "kind": "IPAddress", "namespaced": False,
                                                  "verbs": ["list"]}]})
            return super().get_json(path, query, timeout)

    api = AddressApi({"ipaddresses": [address("10.96.0.10", "kube-system"), address("10.96.79.211", "svclab-dns")]})
    taken = census.take(api, {"svclab-dns"})
    assert sorted(taken.kinds["networking.k8s.io/v1 IPAddress"]) == ["10.96.0.10"]


def test_the_results_of_a_run_with_skips_exit_zero_and_junit_says_skipped():
    from svclab import report

    skip = plan.Skip("failover", "keeps-answering", "C20", "a path", "stops or cuts off nodes")
    assert report.exit_code([], [skip]) == 0 and report.exit_code([], []) != 0
    xml = report.to_junit([], [skip])
    assert '<skipped message="stops or cuts off nodes"' in xml and 'skipped="1"' in xml


def test_a_lab_keeps_its_fields_when_its_probes_are_filtered():
    lb = labs.load_lab("loadbalancer")
    (kept,), _ = plan.plan([lb], None, "external-address")
    assert dataclasses.replace(lb, probes=kept.probes) == kept and kept.namespace == lb.namespace


def test_pools_are_carved_one_process_at_a_time(tmp_path):
    """Two processes that carve at once: the second waits for the first's lock to go, and no lock file is left."""
    import multiprocessing
    import time as clock

    from svclab import lifecycle

    ctx = multiprocessing.get_context("fork")
    held = ctx.Event()

    def hold():
        with lifecycle._pools_lock(tmp_path):
            held.set()
            clock.sleep(0.5)

    child = ctx.Process(target=hold)
    child.start()
    assert held.wait(10)
    started = clock.monotonic()
    with lifecycle._pools_lock(tmp_path):
        waited = clock.monotonic() - started
    child.join(10)
    assert waited >= 0.3
    assert list((tmp_path / "clusters").iterdir()) == []


def test_a_failed_connection_is_told_in_a_few_words():
    text = ("HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /readyz (Caused by "
            "NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new "
            "connection: [Errno 111] Connection refused'))")
    assert target.connection_failure(text) == "connection refused"
    assert target.connection_failure("Read timed out. (read timeout=10)") == "timed out"
    assert target.connection_failure("something else\nand more") == "something else"


def inspected(status="running", networks=("plain-net",), labels=None):
    """The parts of `docker inspect` that user_container_problem reads."""
    return {"Config": {"Labels": labels or {}}, "State": {"Status": status},
            "NetworkSettings": {"Networks": {n: {"IPAddress": "172.30.0.9"} for n in networks}}}


def test_a_container_of_the_users_own_may_be_the_outside_client():
    assert target.user_container_problem("toolbox", inspected(), "plain-net") is None
    assert load_settings({"outside": "container:toolbox"}, env={}).user_outside_container == "toolbox"
    assert load_settings({"outside": "container"}, env={}).user_outside_container is None
    assert target.outside_kind("container:toolbox", True) == "container"


@pytest.mark.parametrize("name, attrs, missing, wrong, fix", [
    ("gone", None, (), "there is no container gone", "docker run -d --network plain-net"),
    ("svclab-client-x", inspected(), (), "is one of svclab's own", "name a container of yours"),
    ("box", inspected(labels={"svclab.io/cluster": "x"}), (), "is one of svclab's own", "--outside container"),
    ("plain-worker", inspected(labels={"io.x-k8s.kind.cluster": "plain"}), (), "is a node of kind cluster plain",
     "not a node"),
    ("box", inspected(status="exited"), (), "container box is exited, not running", "docker start box"),
    ("box", inspected(networks=("bridge",)), (), "is not on the nodes' docker network plain-net",
     "docker network connect plain-net box"),
    ("box", inspected(), ("nc", "getent"), "container box has no nc, getent: svclab's probes run sh, curl, nc",
     "use an image that has them"),
])
def test_a_container_that_cannot_be_the_outside_client_is_refused_with_the_fix(name, attrs, missing, wrong, fix):
    what, how = target.user_container_problem(name, attrs, "plain-net", missing)
    assert wrong in what and fix in how, (what, how)


def test_a_users_container_needs_nodes_on_this_machines_docker():
    with pytest.raises(Exception, match="--outside container:toolbox needs the nodes to be containers"):
        target.outside_kind("container:toolbox", False)


@pytest.mark.parametrize("outside", ["container:", "container:-x", "container:a b", "box"])
def test_an_outside_client_svclab_cannot_name_is_refused(outside):
    with pytest.raises(UsageError, match="unknown outside client"):
        load_settings({"outside": outside}, env={})


def test_a_users_container_with_a_default_route_sends_nothing_to_the_clusters_own_addresses():
    clusterip = labs.load_lab("clusterip")
    routed = types.SimpleNamespace(outside_routes_beyond=True, outside_container="toolbox", detected=FOUND,
                                   outside="container", installs=())
    runnable, skipped = plan.plan([clusterip], routed)
    assert [s.probe for s in skipped] == ["outside-to-cluster-ip"], skipped
    assert "your container toolbox" in skipped[0].reason and "default route" in skipped[0].reason
    contained = types.SimpleNamespace(outside_routes_beyond=False, detected=FOUND, outside="container", installs=())
    assert plan.plan([clusterip], contained)[1] == []
