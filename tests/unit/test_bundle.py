import io
import json
import tarfile

import pytest

from svclab.bundle import load_bundle, pinned_files
from svclab.config import Settings
from svclab.errors import SvclabError, UsageError


def write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_every_pinned_file_has_a_digest():
    files = pinned_files()
    assert len(files) >= 8
    assert all(url.startswith("https://") and len(sha) == 64 for url, sha in files)


def test_not_a_tar(tmp_path):
    (tmp_path / "b.tar").write_text("hello")
    with pytest.raises(UsageError, match="not a tar archive"):
        load_bundle(Settings(), tmp_path / "b.tar", tmp_path / "m")


def test_missing_manifest(tmp_path):
    write_tar(tmp_path / "b.tar", {"images.tar": b""})
    with pytest.raises(UsageError, match="no bundle.json"):
        load_bundle(Settings(), tmp_path / "b.tar", tmp_path / "m")


def test_file_that_is_not_the_pinned_one_is_refused(tmp_path):
    url, _ = pinned_files()[0]
    manifest = {"format": 1, "images": [], "files": [{"url": url, "sha256": "0" * 64}]}
    write_tar(tmp_path / "b.tar", {"bundle.json": json.dumps(manifest).encode()})
    with pytest.raises(SvclabError, match="not the file this svclab pins"):
        load_bundle(Settings(), tmp_path / "b.tar", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_tampered_file_is_refused(tmp_path):
    url, sha = pinned_files()[0]
    manifest = {"format": 1, "images": [], "files": [{"url": url, "sha256": sha}]}
    from svclab.mirror import mirror_path
    from pathlib import Path

    write_tar(tmp_path / "b.tar", {"bundle.json": json.dumps(manifest).encode(),
                                   str(mirror_path(Path("mirror"), url)): b"tampered"})
    with pytest.raises(SvclabError, match="fails its sha256 check"):
        load_bundle(Settings(), tmp_path / "b.tar", tmp_path / "m")
