"""The endpoint-slice and source-ranges kinds' pure parts: the EndpointSlice svclab writes, and
the judges (each expectation able to fail)."""

from svclab.probes.kinds import endpoint_slice, source_ranges


def test_the_slice_names_the_service_and_keeps_the_controller_away():
    slice_ = endpoint_slice.endpoint_slice("outside", None, "172.18.0.5")
    assert slice_["metadata"]["labels"] == {"kubernetes.io/service-name": "outside",
                                            "endpointslice.kubernetes.io/managed-by": "svclab.io"}
    assert slice_["endpoints"] == [{"addresses": ["172.18.0.5"], "conditions": {"ready": True}}]
    assert slice_["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert endpoint_slice.endpoint_slice("outside", "web", "172.18.0.5")["ports"][0]["name"] == "web"


SLICE_FACTS = {"tries": 4, "answered": 4, "served_outside": 4, "answers": ["svclab-outside-server"]}
SLICE_EXPECT = endpoint_slice.Expect(answers=True, served_outside=True)


def test_endpoint_slice_judge():
    assert endpoint_slice.judge(SLICE_FACTS, SLICE_EXPECT) == []
    assert endpoint_slice.judge(SLICE_FACTS | {"answered": 2, "served_outside": 2}, SLICE_EXPECT) == [
        "2 of 4 requests unanswered"]
    assert endpoint_slice.judge(SLICE_FACTS | {"served_outside": 3}, SLICE_EXPECT) == [
        "1 of 4 answers came from elsewhere"]
    assert endpoint_slice.judge(SLICE_FACTS | {"answered": 0, "served_outside": 0},
                                endpoint_slice.Expect(served_outside=True)) == ["no answer at all"]
    assert endpoint_slice.judge(SLICE_FACTS, endpoint_slice.Expect(served_outside=False)) == [
        "4 answers came from the server outside the cluster"]


RANGE_FACTS = {"address": "172.18.255.226", "tries": 3, "admitted_answered": 3, "other_answered": 0,
               "node_port_answered": 3}
RANGE_EXPECT = source_ranges.Expect(admitted_answers=True, others_answer=False, node_port_open=True)


def test_source_ranges_judge():
    assert source_ranges.judge(RANGE_FACTS, RANGE_EXPECT) == []
    assert source_ranges.judge(RANGE_FACTS | {"other_answered": 3}, RANGE_EXPECT) == [
        "3 of 3 requests from the other client answered"]
    assert source_ranges.judge(RANGE_FACTS | {"admitted_answered": 0}, RANGE_EXPECT) == [
        "3 of 3 requests from the admitted client unanswered"]
    assert source_ranges.judge(RANGE_FACTS | {"node_port_answered": 1}, RANGE_EXPECT) == [
        "2 of 3 nodePort requests from the other client unanswered"]


def test_predictions():
    assert RANGE_EXPECT.prediction().right == "not answered"
    assert SLICE_EXPECT.prediction().right == "the server outside the cluster"
    assert endpoint_slice.Expect(answers=True, served_outside=False).prediction().right == "a pod"
