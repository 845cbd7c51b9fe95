"""What a running svclab cluster exposes on this host, tried as an attacker would: every port
published for the cluster's containers, and the outside client's own address. The only port is
the API server's, on loopback, and it refuses anything without kind's client certificate; svclab
commands the outside client over the Docker API, and its probes still pass."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from .conftest import run_labs

pytestmark = pytest.mark.e2e

ATTEMPTS = [("GET", "/shell?cmd=id&shellCommand=id"), ("POST", "/shell"), ("GET", "/dial?request=hostname&host=127.0.0.1&port=8080"),
            ("POST", "/exit"), ("GET", "/exit?code=1"), ("POST", "/upload")]


def _containers(cluster: str) -> list[dict]:
    ids = set()
    for label in (f"io.x-k8s.kind.cluster={cluster}", f"svclab.io/cluster={cluster}"):
        out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True,
                             check=True).stdout
        ids.update(out.split())
    assert ids, f"no containers for cluster {cluster}"
    return json.loads(subprocess.run(["docker", "inspect", *sorted(ids)], capture_output=True, text=True,
                                     check=True).stdout)


def _published(containers: list[dict]) -> list[tuple[str, str, str, int]]:
    """(container, container port, host address, host port) of every published port."""
    found = []
    for c in containers:
        for port, bindings in (c["NetworkSettings"].get("Ports") or {}).items():
            for b in bindings or []:
                found.append((c["Name"].lstrip("/"), port, b["HostIp"], int(b["HostPort"])))
    return found


def _try(url: str, method: str) -> tuple[int | None, str]:
    """(HTTP status or None when the connection itself failed, body) of one request without
    credentials, as a web page or another local user could send it."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, method=method, data=b"shellCommand=id" if method == "POST" else None,
                                     headers={"Origin": "http://evil.example"})
    try:
        with urllib.request.urlopen(request, timeout=5, context=insecure if url.startswith("https") else None) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def test_only_the_api_server_is_published_and_it_refuses_strangers(cluster, tmp_path):
    containers = _containers(cluster)
    published = _published(containers)
    assert published == [(f"{cluster}-control-plane", "6443/tcp", "127.0.0.1", published[0][3])], published

    _, _, address, port = published[0]
    for scheme in ("http", "https"):
        for method, path in ATTEMPTS:
            status, body = _try(f"{scheme}://{address}:{port}{path}", method)
            # Plain HTTP to the TLS port: 400; TLS without kind's client certificate: 401/403.
            assert status in (400, 401, 403), (scheme, method, path, status, body[:200])
            assert "uid=" not in body

    # The outside client serves nothing, not even on its own address on the docker network.
    (client,) = [c for c in containers if c["Name"].lstrip("/") == f"svclab-client-{cluster}"]
    assert not client["HostConfig"].get("PortBindings")
    client_ip = next(iter(client["NetworkSettings"]["Networks"].values()))["IPAddress"]
    for port in (8080, 80):
        status, body = _try(f"http://{client_ip}:{port}/shell?cmd=id", "GET")
        assert status is None and "refused" in body.lower(), (port, status, body[:200])

    # The in-cluster client is reached only through the API server (its pod proxy needs the
    # kubeconfig): no host network, no host port, no Service in front of it.
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=_kubeconfig(cluster)))
    pods = api.list_namespaced_pod("svclab-system").items
    assert pods
    for pod in pods:
        assert not pod.spec.host_network
        assert not [p for c in pod.spec.containers for p in (c.ports or []) if p.host_port]
    services = api.list_namespaced_service("svclab-system").items
    assert services == []

    # svclab's own probes, which command the outside client, still pass.
    proc, doc = run_labs("lab.nodeport", "--name", cluster, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outside = [r for r in doc["results"] if r["path"].startswith("outside")]
    assert outside and all(r["passed"] for r in outside)


def _kubeconfig(cluster: str) -> str:
    from .conftest import svclab

    return json.loads(svclab("cluster.status", "--name", cluster, "--json").stdout)["kubeconfig"]
