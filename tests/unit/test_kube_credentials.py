"""A kubeconfig's embedded certificates and key are written where svclab keeps that cluster's
files, never into the machine's temporary folder, where a killed process would leave a key."""

import base64
import shutil
import tempfile
from pathlib import Path

import yaml

from svclab.kube import Kube


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _kubeconfig(folder: Path, key: str) -> Path:
    folder.mkdir()
    kubeconfig = folder / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:6443",
                                                  "certificate-authority-data": _b64("the CA")}}],
        "users": [{"name": "lab", "user": {"client-certificate-data": _b64("the certificate"),
                                            "client-key-data": _b64(key)}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
    }))
    return kubeconfig


def test_embedded_credentials_go_to_the_cluster_folder(tmp_path, monkeypatch):
    machine_tmp = tmp_path / "tmp"
    machine_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(machine_tmp))   # what mkstemp uses without dir=
    kubeconfig = _kubeconfig(tmp_path / "cluster", "the key")
    kube = Kube(kubeconfig)
    written = {p.read_text() for p in (kubeconfig.parent / "credentials").iterdir()}
    assert written == {"the CA", "the certificate", "the key"}
    assert list(machine_tmp.iterdir()) == []
    assert kube.api.configuration.key_file.startswith(str(kubeconfig.parent / "credentials"))


def test_credentials_removed_with_their_folder_are_written_again(tmp_path):
    kubeconfig = _kubeconfig(tmp_path / "target", "the key of a target")
    Kube(kubeconfig)
    shutil.rmtree(kubeconfig.parent / "credentials")   # the target's state folder goes after a run
    again = Kube(kubeconfig).api.configuration.key_file
    assert Path(again).read_text() == "the key of a target"   # not the removed file, written again
