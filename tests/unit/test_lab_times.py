"""The lab times kept in a cluster's folder: what reads as times, what is kept over what, and the
order they give (longest first, unknown labs before all)."""

import json
import types

from svclab import lab_times


def test_saved_times_load_back_and_merge_over_the_earlier_ones(tmp_path):
    lab_times.save(tmp_path, {"pending": 15.43, "dns": 0.71})
    assert lab_times.load(tmp_path) == {"pending": 15.4, "dns": 0.7}
    lab_times.save(tmp_path, {"dns": 1.26})
    assert lab_times.load(tmp_path) == {"pending": 15.4, "dns": 1.3}
    assert [p.name for p in tmp_path.iterdir()] == [lab_times.FILE_NAME]   # no part file left


def test_nothing_usable_reads_as_no_times(tmp_path):
    assert lab_times.load(None) == {} and lab_times.load(tmp_path) == {}
    path = tmp_path / lab_times.FILE_NAME
    for text in ("{not json", "[1, 2]", '"x"'):
        path.write_text(text)
        assert lab_times.load(tmp_path) == {}, text
    path.write_text(json.dumps({"ok": 2, "neg": -1, "word": "slow", "nan": float("nan"), "yes": True}))
    assert lab_times.load(tmp_path) == {"ok": 2.0}


def test_a_folder_that_is_gone_keeps_nothing(tmp_path):
    lab_times.save(tmp_path / "deleted-cluster", {"dns": 1.0})
    lab_times.save(None, {"dns": 1.0})
    assert not (tmp_path / "deleted-cluster").exists()


def test_longest_first_and_the_unknown_before_all():
    labs = [types.SimpleNamespace(id=i) for i in ("a", "b", "new", "c", "newer")]
    order = lab_times.longest_first(labs, {"a": 1.0, "b": 15.0, "c": 1.0})
    assert [lab.id for lab in order] == ["new", "newer", "b", "a", "c"]
    assert [lab.id for lab in lab_times.longest_first(labs, {})] == ["a", "b", "new", "c", "newer"]


def test_only_a_cluster_svclab_made_keeps_times(tmp_path):
    own = types.SimpleNamespace(target=None, settings=types.SimpleNamespace(cluster_dir=tmp_path))
    assert lab_times.folder_of(own) == tmp_path
    assert lab_times.folder_of(types.SimpleNamespace(target=object(), settings=own.settings)) is None
