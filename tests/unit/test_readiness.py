"""svclab.readiness on objects recorded from a kind cluster (`kubectl get … -o json`, trimmed to
the fields the rules read, in samples/). Cases the recording could not catch in the act (a node
going NotReady, a CRD not yet established, an image pull backing off) are copies of a recorded
object with the one field changed."""

import copy
import json
from pathlib import Path

import pytest

from svclab import readiness
from svclab.readiness import (broken_pod_reason, crd_established, daemonset_ready, deployment_available,
                              endpoints_ready, node_ready)

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str):
    return json.loads((SAMPLES / name).read_text())


def by_name(objects, name):
    return copy.deepcopy(next(o for o in objects if o["metadata"]["name"] == name))


def epoch(stamp: str) -> float:
    return readiness._timestamp(stamp)


# ---------------------------------------------------------------- workloads

def test_a_deployment_with_every_replica_available_is_available():
    assert deployment_available(by_name(sample("deployments.json"), "client"))


def test_a_deployment_whose_pods_cannot_start_is_not_available():
    stuck = by_name(sample("deployments.json"), "stuck")
    assert "availableReplicas" not in stuck["status"]   # the controller leaves out zero counters
    assert not deployment_available(stuck)


def test_a_deployment_whose_new_spec_the_controller_has_not_seen_is_not_available():
    client = by_name(sample("deployments.json"), "client")
    client["metadata"]["generation"] += 1   # just edited: status still describes the old spec
    assert not deployment_available(client)


def test_a_deployment_halfway_through_a_rollout_is_not_available():
    client = by_name(sample("deployments.json"), "client")
    client["spec"]["replicas"] = 2
    client["status"].update(availableReplicas=2, updatedReplicas=1)
    assert not deployment_available(client)


def test_a_deployment_whose_pods_a_policy_refuses_says_why_at_once():
    """Recorded: hostNetwork pods in a namespace whose Pod Security level is baseline."""
    refused = by_name(sample("deployments.json"), "hostnet")
    assert not deployment_available(refused)
    assert readiness.deployment_failure(refused) == (
        'deployment hostnet cannot create its pods: pods "hostnet-7d6b58f7d-6lvtx" is forbidden: violates '
        'PodSecurity "baseline:latest": host namespaces (hostNetwork=true)')
    webhook = copy.deepcopy(refused)
    webhook["status"]["conditions"][2]["message"] = ('admission webhook "validate.kyverno.svc-fail" denied the '
                                                     'request: hostNetwork is not allowed')
    assert "denied the request" in readiness.deployment_failure(webhook)
    # A failure the controller retries until it clears is waited out, as is a Deployment not yet seen.
    waiting = copy.deepcopy(refused)
    waiting["status"]["conditions"][2]["message"] = ('pods "hostnet-7d6b58f7d-6lvtx" is forbidden: error looking up '
                                                     'service account psa-test/default: serviceaccount "default" not found')
    assert readiness.deployment_failure(waiting) is None
    assert readiness.deployment_failure(by_name(sample("deployments.json"), "stuck")) is None
    assert readiness.deployment_failure(None) is None


def test_a_daemonset_ready_on_every_node_is_ready():
    assert daemonset_ready(by_name(sample("daemonsets.json"), "speaker"))


def test_a_daemonset_with_no_ready_pod_is_not_ready():
    assert not daemonset_ready(by_name(sample("daemonsets.json"), "stuck-ds"))


@pytest.mark.parametrize("change", [
    {"desiredNumberScheduled": 0, "numberReady": 0, "updatedNumberScheduled": 0},  # no node matches yet
    {"updatedNumberScheduled": 2},                                                   # rolling out
    {"observedGeneration": 0},                                                       # new spec not seen
])
def test_a_daemonset_is_not_ready_while(change):
    speaker = by_name(sample("daemonsets.json"), "speaker")
    speaker["status"].update(change)
    assert not daemonset_ready(speaker)


# ---------------------------------------------------------------- nodes and CRDs

def test_a_node_whose_kubelet_says_ready_is_ready():
    assert node_ready(sample("nodes.json")[0])


@pytest.mark.parametrize("status", ["False", "Unknown"])
def test_a_node_is_not_ready_when_ready_is(status):
    node = copy.deepcopy(sample("nodes.json")[0])
    next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] = status
    assert not node_ready(node)


def test_a_node_without_conditions_is_not_ready():
    node = copy.deepcopy(sample("nodes.json")[0])
    del node["status"]
    assert not node_ready(node)


def test_an_established_crd_is_established():
    assert crd_established(sample("crds.json")[0])


def test_a_crd_whose_names_are_accepted_but_not_yet_served_is_not_established():
    crd = copy.deepcopy(sample("crds.json")[0])
    crd["status"]["conditions"] = [c for c in crd["status"]["conditions"] if c["type"] != "Established"]
    assert crd["status"]["conditions"]   # NamesAccepted stays
    assert not crd_established(crd)


# ---------------------------------------------------------------- endpoints

def _split(objects):
    return ([o for o in objects if o["kind"] == "Service"], [o for o in objects if o["kind"] == "EndpointSlice"])


def test_services_with_a_ready_endpoint_each_are_ready():
    assert endpoints_ready(*_split(sample("endpoints.json")["serving"]))


def test_a_service_whose_only_endpoint_is_not_ready_is_not_ready():
    services, slices = _split(sample("endpoints.json")["waiting"])
    assert [ep["conditions"]["ready"] for sl in slices for ep in sl["endpoints"]] == [False]
    assert not endpoints_ready(services, slices)


def test_a_service_without_any_endpointslice_is_not_ready():
    services, _ = _split(sample("endpoints.json")["serving"])
    assert not endpoints_ready(services, [])


def test_a_service_without_a_selector_is_not_waited_for():
    services, slices = _split(sample("endpoints.json")["waiting"])
    manual = [s for s in services if s["metadata"]["name"] == "manual"]
    assert not manual[0]["spec"].get("selector")
    assert endpoints_ready(manual, slices)


# ---------------------------------------------------------------- broken pods

PODS = sample("pods.json")


def reason_for(pod, *, since=0.0, now=None):
    now = epoch(pod["metadata"]["creationTimestamp"]) + 5 if now is None else now
    return broken_pod_reason([pod], since, now=now)


def test_a_running_pod_is_not_broken():
    assert reason_for(by_name(PODS, "client-75d9566b47-pkk7b")) is None


@pytest.mark.parametrize("name, reason", [("never-pull", "ErrImageNeverPull"), ("bad-name", "InvalidImageName")])
def test_a_pod_whose_image_cannot_be_had_is_broken(name, reason):
    pod = by_name(PODS, name)
    assert reason_for(pod) == f"pod {name}: {reason} ({pod['status']['containerStatuses'][0]['image']})"


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"])
def test_every_image_failure_is_broken(reason):
    pod = by_name(PODS, "never-pull")
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] = reason
    assert reason in reason_for(pod)


def test_an_init_container_that_cannot_start_breaks_its_pod():
    pod = by_name(PODS, "never-pull")
    pod["status"]["initContainerStatuses"] = pod["status"].pop("containerStatuses")
    assert "ErrImageNeverPull" in reason_for(pod)


def test_a_container_crashing_again_and_again_is_broken():
    pod = by_name(PODS, "crashing2")
    status = pod["status"]["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff" and status["restartCount"] >= 5
    assert reason_for(pod) == "pod crashing2: container app keeps crashing"


def test_a_container_that_crashed_a_few_times_may_still_settle():
    pod = by_name(PODS, "crashing2")
    pod["status"]["containerStatuses"][0]["restartCount"] = 2
    assert reason_for(pod) is None


def test_an_unschedulable_pod_is_broken_only_after_a_grace_period():
    pod = by_name(PODS, "unschedulable")
    since = epoch(next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")["lastTransitionTime"])
    assert reason_for(pod, now=since + 10) is None   # a node may be about to become Ready
    reason = reason_for(pod, now=since + 31)
    assert reason.startswith("pod unschedulable cannot be scheduled: ") and "node affinity/selector" in reason


def test_pods_of_an_earlier_rollout_and_pods_being_deleted_are_not_judged():
    pod = by_name(PODS, "never-pull")
    created = epoch(pod["metadata"]["creationTimestamp"])
    assert reason_for(pod, since=created + 1) is not None   # creation times have whole seconds
    assert reason_for(pod, since=created + 60) is None
    pod["metadata"]["deletionTimestamp"] = pod["metadata"]["creationTimestamp"]
    assert reason_for(pod) is None


def test_the_first_broken_pod_of_many_is_named():
    names = [p["metadata"]["name"] for p in PODS]
    assert names[0].startswith("client-")
    assert broken_pod_reason(PODS, 0.0, now=epoch(PODS[0]["metadata"]["creationTimestamp"])).startswith("pod bad-name:")
    assert broken_pod_reason([], 0.0, now=0.0) is None


def test_a_daemonset_whose_pods_a_policy_refuses_says_why_from_its_events():
    """Recorded: lab.host-network's DaemonSet where the namespace's Pod Security level is baseline
    (a DaemonSet has no condition for it: only its controller's FailedCreate events tell)."""
    events = json.loads((SAMPLES / "daemonset_events.json").read_text())["items"]
    recorded = readiness._timestamp(events[0]["lastTimestamp"])
    assert readiness.daemonset_failure("node-agent", events, since=recorded - 30).startswith(
        'daemonset node-agent cannot create its pods: pods "node-agent-')
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in \
        readiness.daemonset_failure("node-agent", events, since=recorded - 30)
    # An earlier run's refusal (events stay an hour), another object's, or a retried failure: waited out.
    assert readiness.daemonset_failure("node-agent", events, since=recorded + 60) is None
    assert readiness.daemonset_failure("other", events, since=0) is None
    retried = [copy.deepcopy(e) for e in events]
    for e in retried:
        e["message"] = 'Error creating: pods "node-agent-x" is forbidden: error looking up service account x/default'
    assert readiness.daemonset_failure("node-agent", retried, since=0) is None
    webhook = [copy.deepcopy(events[0]) | {"message": 'admission webhook "validate.kyverno.svc-fail" denied the request'}]
    assert "denied the request" in readiness.daemonset_failure("node-agent", webhook, since=0)
