from svclab.doctor import FAIL, OK, WARN, judge

HEALTHY = {
    "docker_version": "20.10.24", "cgroup_version": "1", "default_runtime": "svclab-runc",
    "kind": ("/x/kind", "kind v0.30.0 go1.26 linux/amd64"), "kubectl": ("/x/kubectl", "Client Version: v1.34.5"),
    "max_user_watches": 524288, "max_user_instances": 512, "cap_sys_resource": False,
    "network_subnets": ["172.22.0.0/16"], "routes": ["172.22.0.0/16 dev br-abc proto kernel scope link"],
    "containers": [],
}


def statuses(facts, **kw):
    return {f.check: f.status for f in judge(facts, **kw)}


def test_healthy_machine():
    result = statuses(HEALTHY)
    assert set(result.values()) == {OK}


def test_each_problem_has_a_fix():
    facts = HEALTHY | {"docker_error": "connection refused", "kind": None, "max_user_watches": 8192,
                       "default_runtime": "runc",
                       "routes": ["172.22.0.0/16 dev br-abc", "172.22.5.0/24 via 10.8.0.1 dev tun0"],
                       "containers": [("cpk", "registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.6")],
                       "kubectl": ("/usr/bin/kubectl", "Client Version: v1.30.1")}
    findings = judge(facts)
    by_check = {f.check: f for f in findings}
    assert by_check["docker"].status == FAIL
    assert by_check["kind"].status == FAIL
    assert by_check["inotify max_user_watches"].status == WARN
    assert by_check["capabilities"].status == FAIL
    assert "tun0" in by_check["subnet clash"].detail
    assert by_check["other load balancers"].status == WARN
    assert by_check["kubectl skew"].status == WARN
    assert all(f.fix for f in findings if f.status != OK)


def test_cgroup_v1_with_kubernetes_135_fails():
    assert statuses(HEALTHY, kube_minor=35)["cgroups"] == FAIL
