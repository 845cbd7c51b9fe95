"""Lab definitions: every mistake is refused in one line naming the file, the probe and the key;
the JSON Schema and the lab reference shipped with svclab are the models' own."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from svclab import labref, labs, probes, schema
from svclab.errors import EXIT_USAGE, UsageError

ROOT = Path(__file__).resolve().parents[2]
NODEPORT = yaml.safe_load((ROOT / "labs" / "nodeport" / "lab.yaml").read_text())
SOURCE = "labs/nodeport/lab.yaml"


def refusal(change) -> str:
    data = copy.deepcopy(NODEPORT)
    change(data)
    with pytest.raises(UsageError) as caught:
        labs.parse_lab("nodeport", data, ROOT / "labs" / "nodeport", source=SOURCE)
    assert caught.value.exit_code == EXIT_USAGE
    message = str(caught.value)
    assert "\n" not in message and message.startswith(SOURCE + ": ")
    return message.removeprefix(SOURCE + ": ")


def probe(data, probe_id):
    return next(p for p in data["probes"] if p["id"] == probe_id)


def rename(mapping, old, new):
    mapping[new] = mapping.pop(old)


@pytest.mark.parametrize("change, message", [
    # the mistakes that used to pass in silence
    (lambda d: rename(d, "deployments", "deploymnets"), "unknown key 'deploymnets' (did you mean 'deployments'?)"),
    (lambda d: rename(probe(d, "every-node"), "tries", "tires"),
     "probe 'every-node': unknown key 'tires' (did you mean 'tries'?)"),
    (lambda d: rename(probe(d, "every-node"), "from", "form"),
     "probe 'every-node': unknown key 'form' (did you mean 'from'?)"),
    (lambda d: probe(d, "every-node").update(expect_by_provider={"metalb": {"answers": True}}),
     "probe 'every-node': expect_by_provider: unknown provider 'metalb' (did you mean 'metallb'?) "
     "(known: metallb, kube-vip, none)"),
    (lambda d: probe(d, "every-node").update(claim="C99"), "probe 'every-node': unknown claim 'C99' (did you mean 'C9'?)"),
    (lambda d: probe(d, "every-node").update(request="hostnmae"),
     "probe 'every-node': request must be one of hostname, clientip, got 'hostnmae' (did you mean 'hostname'?)"),
    (lambda d: d["manifests"].append("servcie.yaml"),
     "manifests: servcie.yaml not found in the lab's folder or in svclab's manifests/"),
    (lambda d: d["probes"].append({"id": "stays", "claim": "C7", "kind": "pending", "service": "echo",
                                   "within": "ten", "expect": {"pending": True}}),
     "probe 'stays': within must be a number, got 'ten'"),
    (lambda d: probe(d, "cluster-ip-too").update(expect={"answers": True}),
     "probe 'cluster-ip-too': expect: unknown key 'answers' (known: equals, in_range, set, in_pool)"),
    (lambda d: probe(d, "node-port-assigned").update(expect={"in_range": 5}),
     "probe 'node-port-assigned': expect.in_range must be a list, got 5"),
    # more
    (lambda d: probe(d, "every-node").update(kind="htp"),
     "probe 'every-node': unknown kind 'htp' (did you mean 'http'?) (known: " + ", ".join(probes.KINDS) + ")"),
    (lambda d: probe(d, "every-node").pop("kind"), "probe 'every-node': missing 'kind' (one of " + ", ".join(probes.KINDS) + ")"),
    (lambda d: probe(d, "every-node").pop("service"), "probe 'every-node': missing 'service'"),
    (lambda d: probe(d, "every-node").update(via="carrier-pigeon"),
     "probe 'every-node': via must be one of cluster-ip, dns, node-port, load-balancer, got 'carrier-pigeon'"),
    (lambda d: probe(d, "every-node").update(tries=0), "probe 'every-node': tries must be at least 1, got 0"),
    (lambda d: probe(d, "every-node").pop("expect"),
     "probe 'every-node': no expectation for metallb, kube-vip, none: give 'expect' (every provider) "
     "or one under expect_by_provider for each"),
    (lambda d: probe(d, "every-node").update(expect={}), "probe 'every-node': expect: an expectation needs at least one key"),
    (lambda d: probe(d, "every-node").update(expect={"answers": "yes please"}),
     "probe 'every-node': expect.answers must be true or false, got 'yes please'"),
    (lambda d: probe(d, "every-node").update(expect={"source": "pod"}),
     "probe 'every-node': expect.source must be one of client, node, got 'pod'"),
    (lambda d: probe(d, "cluster-ip-too").update(id="every-node"), "probe 'every-node': id used twice"),
    (lambda d: probe(d, "every-node").update(id="Every Node"),
     "probe 'Every Node': id 'Every Node' is not allowed here: it must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
    (lambda d: probe(d, "every-node").update(claim="C9"),
     "probe 'every-node': claim C9 is not among the lab's claims (C4, C5, C6, C7, C8)"),
    (lambda d: d.update(claims=["C4", "C42"]), "claims: unknown claim 'C42' (did you mean 'C4'?) (claims.yaml lists them)"),
    (lambda d: probe(d, "out-of-range").update(manifest="missing.yaml"),
     "probe 'out-of-range': manifest missing.yaml not found in the lab's folder or in svclab's manifests/"),
    (lambda d: probe(d, "out-of-range").update(expect={"message": "(unclosed"}),
     "probe 'out-of-range': expect.message: not a regular expression (missing ), unterminated subpattern at position 0)"),
    (lambda d: probe(d, "every-node").update(host="a.shops.svclab.test", **{"from": "pod"}),
     "probe 'every-node': host (a Host header) is sent only from the outside client: set from: outside"),
    (lambda d: probe(d, "every-node").update(client="client-far"),
     "probe 'every-node': client names a pod of the lab that sends: set from: pod"),
    (lambda d: probe(d, "pod-to-cluster-ip").update(nodes="backend"),
     "probe 'pod-to-cluster-ip': nodes chooses nodePort targets: use it only with via: node-port"),
    (lambda d: d.update(upstream=["metallb_v0"]), "upstream 'metallb_v0' has no files pinned in svclab/pins.toml"),
    (lambda d: d.update(probes=[]), "probes must have at least 1 item"),
    (lambda d: d.pop("title"), "missing 'title'"),
    (lambda d: d["probes"].append("every-node"), "probe #8 must be a mapping of keys, got text"),
    (lambda d: probe(d, "every-node").update(predict=["not", "text"]), "probe 'every-node': predict must be text, got a list"),
    (lambda d: d.update(disruptive="sometimes"), "disruptive must be true or false, got 'sometimes'"),
    (lambda d: probe(d, "every-node").update(expect={"answers": None}), "probe 'every-node': expect: answers needs a value"),
])
def test_bad_lab_definitions_are_refused_in_one_line(change, message):
    assert refusal(change) == message


def test_a_definition_that_is_not_a_mapping():
    with pytest.raises(UsageError, match=r"^labs/x/lab.yaml: expected a mapping of keys \(title, probes, \.\.\.\), got a list$"):
        labs.parse_lab("x", [], ROOT, source="labs/x/lab.yaml")


def test_not_yaml_names_the_line(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "lab.yaml").write_text("title: t\nprobes: [\n")
    [(where, problem)] = labs.check_path(tmp_path / "broken")
    assert problem == f"{tmp_path}/broken/lab.yaml: not valid YAML (line 3)"


def _lab_folder(root: Path, lab_id: str, data) -> Path:
    (root / lab_id).mkdir(parents=True)
    (root / lab_id / "lab.yaml").write_text(yaml.safe_dump(data))
    return root / lab_id


def test_instructor_labs_beside_the_built_in_ones_and_a_broken_one_breaks_only_itself(tmp_path, monkeypatch):
    good = copy.deepcopy(NODEPORT)
    good["claims"] = ["C4", "C90"]
    probe(good, "cluster-ip-too")["claim"] = "C90"
    good["manifests"] = ["echo-one-node.yaml"]
    for p in good["probes"]:
        p.pop("manifest", None)
    good["probes"] = [p for p in good["probes"] if p["kind"] != "rejects" and p["claim"] in good["claims"]]
    _lab_folder(tmp_path, "my-nodeport", good)
    bad = copy.deepcopy(good)
    rename(bad, "deployments", "deploymnets")
    _lab_folder(tmp_path, "my-broken", bad)
    _lab_folder(tmp_path, "nodeport", good)  # a built-in's id: the built-in wins
    (tmp_path / "claims.yaml").write_text("C90: A NodePort Service in an instructor's own words.\n")
    monkeypatch.setenv("SVCLAB_LABS", str(tmp_path))

    assert {"my-nodeport", "my-broken", "nodeport"} <= set(labs.lab_ids())
    mine = labs.load_lab("my-nodeport")
    assert mine.namespace == "svclab-my-nodeport" and "C90" in mine.claims
    with pytest.raises(UsageError, match=r"^.*/my-broken/lab.yaml: unknown key 'deploymnets'"):
        labs.load_lab("my-broken")
    assert labs.load_lab("nodeport").source == "labs/nodeport/lab.yaml"
    assert [problem for _, problem in labs.check_path(tmp_path) if problem] == [
        f"{tmp_path}/my-broken/lab.yaml: unknown key 'deploymnets' (did you mean 'deployments'?)"]


def test_labs_env_must_name_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("SVCLAB_LABS", str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="SVCLAB_LABS: .*nope is not a folder"):
        labs.lab_ids()


def test_every_built_in_lab_checks_and_points_editors_at_the_schema():
    assert [problem for _, problem in labs.check_path(ROOT / "labs")] == [None] * len(labs.lab_ids())
    for lab_id in labs.lab_ids():
        first = (ROOT / "labs" / lab_id / "lab.yaml").read_text().splitlines()[0]
        assert first == f"# yaml-language-server: $schema=../{schema.SCHEMA_FILE}", lab_id


def test_the_shipped_schema_is_the_models_own():
    shipped = (ROOT / "labs" / schema.SCHEMA_FILE).read_text()
    assert shipped == schema.json_schema_text(), "run: python -m svclab.labref --write"


def test_the_schema_refuses_what_the_models_refuse():
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "labs" / schema.SCHEMA_FILE).read_text()))
    assert not list(validator.iter_errors(NODEPORT))
    typo = copy.deepcopy(NODEPORT)
    rename(probe(typo, "every-node"), "tries", "tires")
    assert list(validator.iter_errors(typo))


def test_the_lab_reference_is_current_and_its_examples_load():
    assert (ROOT / "docs" / "labs.md").read_text() == labref.reference_markdown(), "run: python -m svclab.labref --write"
    for kind, module in probes.KINDS.items():
        [example] = yaml.safe_load(module.EXAMPLE)
        data = {"title": "t", "probes": [example]}
        lab = schema.parse(data, source=f"example of {kind}", claims=labs.load_claims(),
                           manifest_exists=lambda name: True, pinned=lambda name: True)
        assert lab.probes[0].kind == kind


def test_the_folder_name_is_the_lab_id(tmp_path):
    folder = _lab_folder(tmp_path, "My_Lab", {"title": "t", "probes": []})
    [(_, problem)] = labs.check_path(folder)
    assert problem == (f"{folder}/lab.yaml: the folder's name 'My_Lab' is the lab's id (task lab.<id>, "
                       "namespace svclab-<id>): use lowercase letters, digits and dashes, at most 50")
