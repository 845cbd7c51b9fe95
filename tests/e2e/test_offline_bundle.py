"""images.save / images.load round trip on the real Docker engine."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from svclab.bundle import pinned_files
from svclab.mirror import mirror_path

pytestmark = pytest.mark.e2e


def test_bundle_round_trip(tmp_path):
    bundle = tmp_path / "bundle.tar"
    env = {**os.environ, "SVCLAB_NODE_IMAGE": ""}
    save = subprocess.run([sys.executable, "-m", "svclab", "images.save", "--output", str(bundle)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert save.returncode == 0, save.stderr
    assert "6 images" in save.stdout and bundle.stat().st_size > 100_000_000
    mirror = tmp_path / "mirror"
    mirror.mkdir()   # a mirror setting must name a folder that exists
    load = subprocess.run([sys.executable, "-m", "svclab", "images.load", "--archive", str(bundle)],
                          capture_output=True, text=True, timeout=600, env={**env, "SVCLAB_MIRROR": str(mirror)})
    assert load.returncode == 0, load.stderr
    assert f"SVCLAB_MIRROR={mirror}" in load.stdout
    for url, sha in pinned_files():
        assert hashlib.sha256(mirror_path(mirror, url).read_bytes()).hexdigest() == sha
