import hashlib

import pytest

from svclab.errors import PrerequisiteError, SvclabError
from svclab.mirror import fetch, mirror_path

URL = "https://example.invalid/org/repo/v1/manifest.yaml"


def put(mirror, data: bytes):
    path = mirror_path(mirror, URL)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_mirror_layout(tmp_path):
    assert mirror_path(tmp_path, URL) == tmp_path / "example.invalid/org/repo/v1/manifest.yaml"


def test_fetch_from_mirror_checks_and_caches(tmp_path):
    sha = put(tmp_path / "m", b"kind: List\n")
    assert fetch(URL, sha, cache_dir=tmp_path / "c", mirror=tmp_path / "m") == b"kind: List\n"
    assert (tmp_path / "c" / "downloads" / sha).read_bytes() == b"kind: List\n"
    mirror_path(tmp_path / "m", URL).unlink()
    assert fetch(URL, sha, cache_dir=tmp_path / "c", mirror=tmp_path / "m") == b"kind: List\n"


def test_checksum_mismatch_is_refused(tmp_path):
    put(tmp_path / "m", b"tampered")
    with pytest.raises(SvclabError, match="refusing to use it"):
        fetch(URL, "0" * 64, cache_dir=tmp_path / "c", mirror=tmp_path / "m")
    assert not (tmp_path / "c" / "downloads" / ("0" * 64)).exists()


def test_missing_from_mirror(tmp_path):
    with pytest.raises(PrerequisiteError, match="not in the mirror folder"):
        fetch(URL, "0" * 64, cache_dir=tmp_path / "c", mirror=tmp_path / "m")
