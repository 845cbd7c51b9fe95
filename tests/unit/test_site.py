"""The machines svclab runs beside the cluster, without docker: what a machine's configuration
digest changes with (a changed machine is replaced, an unchanged one kept), the container's name,
and the archive its files are copied in with."""

import dataclasses
import io
import tarfile

from svclab import site

MACHINE = site.Machine(role="haproxy-external-lb-shop-cluster", image="docker.io/library/haproxy:2.6.12",
                       argv=("haproxy", "-db", "-f", "/etc/svclab/haproxy.cfg"),
                       files=(("/etc/svclab/haproxy.cfg", "global\n  maxconn 256\n"),), user="65534:65534")


def test_digest_is_stable_for_equal_machines():
    same = site.Machine(role=MACHINE.role, image=MACHINE.image, argv=tuple(MACHINE.argv),
                        files=tuple(MACHINE.files), user=MACHINE.user)
    assert same == MACHINE and same is not MACHINE
    assert same.digest() == MACHINE.digest() == MACHINE.digest()
    assert len(MACHINE.digest()) == 16 and int(MACHINE.digest(), 16) >= 0


def test_digest_changes_with_a_file_text():
    changed = dataclasses.replace(MACHINE, files=(("/etc/svclab/haproxy.cfg", "global\n  maxconn 257\n"),))
    assert changed.digest() != MACHINE.digest()


def test_digest_changes_with_a_file_path():
    moved = dataclasses.replace(MACHINE, files=(("/etc/svclab/other.cfg", MACHINE.files[0][1]),))
    assert moved.digest() != MACHINE.digest()


def test_digest_changes_with_the_argv():
    assert dataclasses.replace(MACHINE, argv=("haproxy", "-f", "/etc/svclab/haproxy.cfg")).digest() != MACHINE.digest()
    assert dataclasses.replace(MACHINE, argv=MACHINE.argv + ("-V",)).digest() != MACHINE.digest()


def test_digest_changes_with_image_user_and_capabilities():
    digests = {MACHINE.digest(),
               dataclasses.replace(MACHINE, image="docker.io/library/haproxy:2.6.13").digest(),
               dataclasses.replace(MACHINE, user=None).digest(),
               dataclasses.replace(MACHINE, cap_add=("NET_BIND_SERVICE",)).digest()}
    assert len(digests) == 4


def test_container_name():
    assert site.container_name("haproxy-external-lb-shop-cluster", "dev") == "svclab-haproxy-external-lb-shop-cluster-dev"
    assert site.container_name("dns-dns-round-robin-echo", "svclab") == "svclab-dns-dns-round-robin-echo-svclab"
    assert site.container_name("a", "b") != site.container_name("b", "a")


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def _text(data: bytes, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(name).read().decode()


def test_archive_of_one_file():
    text = "global\n  maxconn 256\n# → every node\n"
    data = site._archive((("/etc/svclab/haproxy.cfg", text),))
    members = _members(data)
    # /etc itself is not in the archive: Docker would give an existing top-level folder its mode.
    assert [(m.name, m.isdir(), m.mode) for m in members] == [
        ("etc/svclab", True, 0o755), ("etc/svclab/haproxy.cfg", False, 0o644)]
    assert members[-1].isfile() and members[-1].size == len(text.encode())
    assert _text(data, "etc/svclab/haproxy.cfg") == text


def test_archive_folders_once_before_their_files():
    data = site._archive((("/etc/svclab/Corefile", ". {\n  hosts /etc/svclab/hosts\n}\n"),
                          ("/etc/svclab/hosts", "172.18.255.200 echo.svclab.test\n"),
                          ("/srv/x", "")))
    members = _members(data)
    assert [m.name for m in members] == ["etc/svclab", "etc/svclab/Corefile", "etc/svclab/hosts", "srv/x"]
    assert {m.name: m.mode for m in members if m.isdir()} == {"etc/svclab": 0o755}
    assert {m.name: m.mode for m in members if m.isfile()} == {
        "etc/svclab/Corefile": 0o644, "etc/svclab/hosts": 0o644, "srv/x": 0o644}
    assert _text(data, "etc/svclab/hosts") == "172.18.255.200 echo.svclab.test\n"
    assert _text(data, "srv/x") == ""


def test_archive_of_nothing():
    assert _members(site._archive(())) == []
