"""The svclab test bed: every image a kind cluster and the labs need, built on a host that can
reach Debian's archive and the Go module proxy but no container registry.

What it makes (each cached by a hash of its pinned versions and recipe):

    go binaries   stages/go-binaries.sh  kind, containerd, runc, crictl, CNI plugins, etcd, CoreDNS,
                                         Kubernetes (+ agnhost), podnet, MetalLB, kube-vip, ...
    root fs       stages/rootfs.sh       debootstrap'd Debian for the node and for iptables images
                  slim.py                that root cut down twice: to iptables/nft/conntrack/ipset,
                                         the base of kube-proxy and podnet, and to sh/curl/ip, the
                                         base of agnhost (each unpacked on every node that runs it)
    images        docker build           one image per component, tagged as svclab's manifests
                                         and kubeadm name them, labelled ``svclab.testbed=<hash>``
    node image    docker run/commit      base + Kubernetes binaries + the system and lab images
                                         imported into the node's containerd
    tools         kind and kubectl copied to svclab's tool folder
    mirror        pinned upstream manifests, checked against their sha256, in the mirror folder

The Go binaries build in two lanes side by side while a third makes the root file systems, the
images beside the cluster and the mirror: a single `go build` leaves a core idle while it downloads
modules and links, and debootstrap waits on the network, so on two cores the lanes finish sooner
than one after another. The images of the node come after all three. The first lane to fail stops
the others.

The product consumes all of it the way a user would: a node-image setting, its image preload
step and a mirror folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LABEL = "svclab.testbed"
PINS_FILE = REPO / "svclab" / "pins.toml"

NODE_PACKAGES = (
    "systemd dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod "
    "libseccomp2 pigz bash ca-certificates curl jq procps"
).split()
NETBASE_PACKAGES = "iptables nftables conntrack ipset iproute2 curl ca-certificates haproxy frr netcat-openbsd".split()
# Files every cut-down root keeps: name and user lookups, and a place for temporary files.
SLIM_COMMON = ("/etc/protocols", "/etc/services", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/tmp")
SLIM_COMMON_OPTIONAL = ("/usr/lib/x86_64-linux-gnu/libnss_files.so.2",)
# What kube-proxy (iptables, nftables and ipvs modes) and podnet run, and the files they read.
NETSLIM_KEEP = (
    *(f"/usr/sbin/{cmd}{suffix}" for cmd in ("iptables", "ip6tables") for suffix in ("", "-save", "-restore")),
    "/usr/sbin/nft", "/usr/sbin/conntrack", "/usr/sbin/ipset", "/usr/lib/x86_64-linux-gnu/xtables",
    "/etc/ethertypes", "/run", "/var/run", *SLIM_COMMON,
)
NETSLIM_OPTIONAL = SLIM_COMMON_OPTIONAL
# What agnhost (the labs' backends and both probe clients) runs besides itself: /shell's sh, the
# probes' curl, ip, getent and nc (raw TCP and UDP), and what the lab texts have students type into the clients.
CLIENTSLIM_KEEP = ("/bin/sh", "/usr/bin/curl", "/usr/bin/ip", "/usr/sbin/ip", "/usr/bin/getent", "/bin/nc",
                   *SLIM_COMMON)
CLIENTSLIM_OPTIONAL = (*SLIM_COMMON_OPTIONAL, "/etc/ssl/certs/ca-certificates.crt")
# The external load balancer of the external-lb lab: Debian's haproxy and the libraries it loads.
HAPROXY_KEEP = ("/usr/sbin/haproxy", *SLIM_COMMON)
# The router of the bgp lab: Debian's FRR, its routing daemon, BGP daemon and shell, and what its
# start makes: the daemons' run and crash-log folders, owned by user frr.
FRR_KEEP = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/bin/vtysh", "/bin/sh", "/bin/mkdir", "/bin/chown",
            "/run", "/var/run", "/var/tmp", *SLIM_COMMON)
KUBE_SERVER_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KUBE_NODE_COMMANDS = ("kubeadm", "kubelet", "kubectl")
# The Go components in two lanes of about equal length, longest first: from cold on a 2-core
# machine 1,330 s (Kubernetes 820 s with the node's smaller parts) and 1,349 s (Traefik 770 s,
# kube-vip, MetalLB). podnet builds inside the Kubernetes wrapper module, so it follows kubernetes.
GO_LANES = (
    ("kubernetes", "podnet", "coredns", "etcd", "containerd", "kind", "crictl", "runc", "cni"),
    ("traefik", "kube_vip", "metallb"),
)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("SVCLAB_TESTBED_CACHE", Path(base) / "svclab" / "testbed"))


def default_tools_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "svclab" / "bin"


def default_mirror_dir() -> Path:
    return default_cache().parent / "mirror"


class BuildError(RuntimeError):
    """A step of the test-bed build failed; the message says which and why."""


def load_pins() -> dict:
    with PINS_FILE.open("rb") as f:
        return tomllib.load(f)


def render_template(name: str, **values: str) -> str:
    """The test bed's file NAME (under scripts/testbed/) with its ${NAME} placeholders filled from
    VALUES, by svclab's own manifest renderer."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from svclab.render import render_text

    return render_text((HERE / name).read_text(), values, source=f"scripts/testbed/{name}")


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def process_tree(pid: int) -> list[int]:
    """PID and every process below it, the deepest first (so none is left to start new ones)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, ()))
    return tree[::-1]


def tree_digest(root: Path) -> str:
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        mode = "x" if os.access(path, os.X_OK) else "-"
        parts.append(f"{path.relative_to(root)} {mode} {file_digest(path)}")
    return digest(*parts)


@dataclasses.dataclass
class Builder:
    cache: Path = dataclasses.field(default_factory=default_cache)
    tools_dir: Path = dataclasses.field(default_factory=default_tools_dir)
    mirror_dir: Path = dataclasses.field(default_factory=default_mirror_dir)
    log: Callable[[str], None] = lambda msg: print(f"[testbed] {msg}", file=sys.stderr, flush=True)
    pins: dict = dataclasses.field(default_factory=load_pins)
    _running: set = dataclasses.field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False, repr=False)
    _stopping: threading.Event = dataclasses.field(default_factory=threading.Event, init=False, repr=False)

    # ----------------------------------------------------------------- helpers
    def run(self, argv: Sequence[str], *, input: bytes | None = None, capture: bool = False,
            env: dict | None = None, cwd: Path | None = None) -> str:
        """Runs ARGV; stop_all() ends it and every process it started."""
        with self._lock:
            if self._stopping.is_set():
                raise BuildError("stopped: another part of the test bed failed")
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE if input is not None else None,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if capture else None,
            )
            self._running.add(proc)
        try:
            stdout, stderr = proc.communicate(input)
        finally:
            with self._lock:
                self._running.discard(proc)
        if proc.returncode != 0:
            if self._stopping.is_set():
                raise BuildError("stopped: another part of the test bed failed")
            detail = (stderr or b"").decode(errors="replace").strip()[-2000:]
            raise BuildError(f"{' '.join(argv[:4])}... exited {proc.returncode}" + (f": {detail}" if detail else ""))
        return (stdout or b"").decode()

    def stop_all(self) -> None:
        """Ends every command still running (go builds, debootstrap, docker) and refuses new ones."""
        with self._lock:
            self._stopping.set()
            running = list(self._running)
        # The commands stay in svclab's process group, so that Ctrl-C and a CI runner's timeout
        # reach them; a lane's failure ends the others' process trees from /proc.
        for pid in (pid for proc in running for pid in process_tree(proc.pid)):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass

    def in_lanes(self, lanes: Sequence[Callable[[], object]]) -> list:
        """Runs each of LANES in a thread of its own and returns their results in order; the first
        lane to raise stops the others and its error is raised."""
        pool = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="testbed")
        try:
            futures = [pool.submit(lane) for lane in lanes]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is not None:
                raise failed.exception()
            return [f.result() for f in futures]
        except BaseException:  # a lane's error, or Ctrl-C while the lanes run
            self.stop_all()
            raise
        finally:
            pool.shutdown(wait=True)

    def timed(self, what: str, step: Callable[[], object]) -> Callable[[], object]:
        def lane():
            start = time.monotonic()
            result = step()
            self.log(f"{what}: done in {time.monotonic() - start:.0f}s")
            return result
        return lane

    @property
    def go_dir(self) -> Path:
        return self.cache / "go"

    def go_env(self) -> dict[str, str]:
        p, tb = self.pins, self.pins["testbed"]
        return {
            "V_KIND": p["kind"]["version"],
            "V_CONTAINERD": tb["containerd"],
            "V_RUNC": tb["runc"],
            "V_CRICTL": tb["crictl"],
            "V_CNI_PLUGINS": tb["cni_plugins"],
            "V_ETCD": tb["etcd"],
            "V_COREDNS": tb["coredns"],
            "V_KUBERNETES": p["kubernetes"]["version"],
            "V_KUBE_STAGING": p["kubernetes"]["staging_version"],
            "V_METALLB": p["metallb"]["version"],
            "V_KUBE_VIP": p["kube_vip"]["version"],
            "V_KUBE_VIP_CLOUD_PROVIDER": p["kube_vip"]["cloud_provider_version"],
            "V_TRAEFIK": p["traefik"]["version"],
            "V_PODNET_SRC": str(HERE / "podnet"),
        }

    def image_label(self, tag: str) -> str | None:
        proc = subprocess.run(
            ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', tag],
            capture_output=True, text=True,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    def image_current(self, tag: str, recipe: str) -> bool:
        return self.image_label(tag) == recipe

    def docker_build(self, tag: str, recipe: str, dockerfile: str, files: dict[str, Path]) -> None:
        """Builds TAG from DOCKERFILE with FILES (context path -> source) unless it is current."""
        if self.image_current(tag, recipe):
            self.log(f"{tag}: cached")
            return
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="svclab-ctx-") as ctx:
            for name, src in files.items():
                dest = Path(ctx) / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, dest, symlinks=True)
                else:
                    shutil.copy2(src, dest)
            (Path(ctx) / "Dockerfile").write_text(dockerfile + f'\nLABEL {LABEL}="{recipe}"\n')
            self.run(["docker", "build", "-q", "-t", tag, ctx], env={"DOCKER_BUILDKIT": "0"}, capture=True)
        self.log(f"{tag}: built in {time.monotonic() - start:.0f}s")

    # ----------------------------------------------------------------- stages
    def go(self, components: Iterable[str]) -> None:
        self.run(["bash", str(HERE / "stages" / "go-binaries.sh"), str(self.go_dir), *components],
                 env=self.go_env())

    def go_stamp(self, component: str) -> str:
        return (self.go_dir / component / ".stamp").read_text().strip()

    def rootfs(self, name: str, packages: list[str]) -> tuple[Path, str]:
        tb = self.pins["testbed"]
        script = HERE / "stages" / "rootfs.sh"
        recipe = digest(tb["debian_suite"], tb["debian_mirror"], *packages, script.read_text())
        out = self.cache / "rootfs" / f"{name}-{recipe}.tar"
        if out.exists():
            self.log(f"rootfs {name}: cached")
            return out, recipe
        out.parent.mkdir(parents=True, exist_ok=True)
        for old in out.parent.glob(f"{name}-*.tar"):
            old.unlink()
        start = time.monotonic()
        self.run(["bash", str(script), tb["debian_suite"], tb["debian_mirror"], str(out), *packages])
        self.log(f"rootfs {name}: built in {time.monotonic() - start:.0f}s")
        return out, recipe

    def imported(self, name: str, packages: list[str]) -> tuple[str, str]:
        """A plain image of a debootstrapped root fs (no entrypoint): the base for others."""
        tar, recipe = self.rootfs(name, packages)
        tag = f"svclab.local/{name}:{recipe}"
        if self.image_current(tag, recipe):
            return tag, recipe
        self.run(["docker", "import", "--change", f"LABEL {LABEL}={recipe}",
                  "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  str(tar), tag], capture=True)
        self.log(f"{tag}: imported")
        return tag, recipe

    def slimmed(self, name: str, rootfs: tuple[Path, str], keep: Sequence[str],
                optional: Sequence[str] = ()) -> tuple[str, str]:
        """An image of ROOTFS (its tarball and recipe) cut down to KEEP (see slim.py)."""
        from slim import slim_rootfs

        tar, source_recipe = rootfs
        recipe = digest(source_recipe, *keep, "|", *optional, (HERE / "slim.py").read_text())
        tag = f"svclab.local/{name}:{recipe}"
        if self.image_current(tag, recipe):
            return tag, recipe
        with tempfile.TemporaryDirectory(prefix="svclab-slim-") as tmp:
            out = Path(tmp) / f"{name}.tar"
            entries = slim_rootfs(tar, out, keep, optional=optional)
            self.run(["docker", "import", "--change", f"LABEL {LABEL}={recipe}",
                      "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      str(out), tag], capture=True)
        self.log(f"{tag}: {entries} entries from {tar.name}")
        return tag, recipe

    def kubeadm_images(self) -> dict[str, str]:
        """Image names kubeadm will ask the node for, keyed by component (etcd, coredns, ...)."""
        out = self.run([str(self.go_dir / "kubernetes" / "kubeadm"), "config", "images", "list",
                        "--kubernetes-version", self.pins["kubernetes"]["version"]], capture=True)
        images = {}
        for ref in out.split():
            name = ref.rsplit(":", 1)[0].rsplit("/", 1)[1]
            images[name] = ref
        return images

    def system_images(self, netslim: str, netslim_recipe: str) -> list[str]:
        """Builds every image the node's kubeadm, CNI and sandbox need; returns their tags."""
        k = self.go_dir / "kubernetes"
        want = self.kubeadm_images()
        self.check_companion_versions(want)
        tags = []
        for cmd in KUBE_SERVER_COMMANDS:
            tags.append(self.binary_image(want[cmd], "scratch", "kubernetes", {cmd: k / cmd}))
        tags.append(self.binary_image(want["kube-proxy"], netslim, "kubernetes",
                                      {"kube-proxy": k / "kube-proxy"}, base_recipe=netslim_recipe))
        etcd = self.go_dir / "etcd"
        tags.append(self.binary_image(want["etcd"], "scratch", "etcd",
                                      {"etcd": etcd / "etcd", "etcdctl": etcd / "etcdctl"}))
        # kubeadm's CoreDNS Deployment passes only arguments: the image's entrypoint is /coredns.
        tags.append(self.binary_image(want["coredns"], "scratch", "coredns",
                                      {"coredns": self.go_dir / "coredns" / "coredns"},
                                      entrypoint="/coredns", dest_dir="/"))
        tags.append(self.pause_image(want["pause"]))
        tags.append(self.binary_image(self.podnet_image(), netslim, "podnet",
                                      {"podnet": self.go_dir / "podnet" / "podnet"},
                                      entrypoint="/usr/local/bin/podnet", base_recipe=netslim_recipe))
        return tags

    def check_companion_versions(self, want: dict[str, str]) -> None:
        tb = self.pins["testbed"]
        etcd_tag = want["etcd"].rsplit(":", 1)[1]
        coredns_tag = want["coredns"].rsplit(":", 1)[1]
        problems = []
        if not etcd_tag.startswith(tb["etcd"].lstrip("v") + "-"):
            problems.append(f"kubeadm wants etcd {etcd_tag}, pins.toml builds {tb['etcd']}")
        if coredns_tag != tb["coredns"]:
            problems.append(f"kubeadm wants CoreDNS {coredns_tag}, pins.toml builds {tb['coredns']}")
        if problems:
            raise BuildError("; ".join(problems) + ": update [testbed] in svclab/pins.toml")

    def podnet_image(self) -> str:
        return f"svclab.local/podnet:{self.go_stamp('podnet')}"

    def binary_image(self, tag: str, base: str, component: str, binaries: dict[str, Path], *,
                     entrypoint: str | None = None, dest_dir: str = "/usr/local/bin/",
                     base_recipe: str = "", user: str | None = None) -> str:
        lines = [f"FROM {base}"]
        if base == "scratch":
            lines.append("ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        lines.extend(f"COPY {name} {dest_dir}" for name in binaries)
        if user:
            lines.append(f"USER {user}")
        if entrypoint:
            lines.append(f'ENTRYPOINT ["{entrypoint}"]')
        dockerfile = "\n".join(lines)
        recipe = digest(dockerfile, base_recipe, self.go_stamp(component))
        self.docker_build(tag, recipe, dockerfile, binaries)
        return tag

    def pause_image(self, tag: str) -> str:
        src = HERE / "pause" / "pause.c"
        dockerfile = 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]'
        recipe = digest(dockerfile, file_digest(src), self.run(["gcc", "-dumpfullversion"], capture=True))
        if not self.image_current(tag, recipe):
            with tempfile.TemporaryDirectory() as tmp:
                binary = Path(tmp) / "pause"
                self.run(["gcc", "-Os", "-Wall", "-Werror", "-static", "-o", str(binary), str(src)])
                self.docker_build(tag, recipe, dockerfile, {"pause": binary})
        return tag

    def node_base(self) -> tuple[str, str]:
        rootfs_tag, rootfs_recipe = self.imported("node-rootfs", NODE_PACKAGES)
        g = self.go_dir
        files = {
            "node": HERE / "node",
            "bin/containerd": g / "containerd" / "containerd",
            "bin/ctr": g / "containerd" / "ctr",
            "bin/containerd-shim-runc-v2": g / "containerd" / "containerd-shim-runc-v2",
            "bin/crictl": g / "crictl" / "crictl",
            "sbin/runc": g / "runc" / "runc",
            "cni": g / "cni",
        }
        dockerfile = f"""FROM {rootfs_tag}
COPY node/ /
COPY bin/ /usr/local/bin/
COPY sbin/ /usr/local/sbin/
COPY cni/ /opt/cni/bin/
RUN rm -f /opt/cni/bin/.stamp \\
 && find /lib/systemd/system/sysinit.target.wants -name 'systemd-tmpfiles-setup.service' -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
          /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
          /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo 'ReadKMsg=no' >> /etc/systemd/journald.conf \\
 && systemctl enable containerd.service kubelet.service \\
 && systemctl mask systemd-binfmt.service getty.target systemd-udevd.service \\
 && mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /kind \\
 && ctr oci spec | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && ln -sf /lib/systemd/systemd /sbin/init
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]"""
        recipe = digest(dockerfile, rootfs_recipe, tree_digest(HERE / "node"),
                        *(self.go_stamp(c) for c in ("containerd", "crictl", "runc", "cni")))
        tag = f"svclab.local/kind-node-base:{recipe}"
        self.docker_build(tag, recipe, dockerfile, files)
        return tag, recipe

    def node_image(self, system_tags: list[str]) -> tuple[str, str]:
        """Returns (node image tag, base image tag). SYSTEM_TAGS are imported into the node's
        containerd, pinned so kubelet's image garbage collection leaves them alone."""
        tag = self.pins["kind"]["node_image"]
        base, base_recipe = self.node_base()
        want = self.kubeadm_images()
        k = self.go_dir / "kubernetes"
        cni_manifest = render_template("podnet/default-cni.yaml", PODNET_IMAGE=self.podnet_image())
        # Written over the base image's template (node/), which names no pause image yet.
        containerd_config = render_template("node/etc/containerd/config.toml", PAUSE_IMAGE=want["pause"])
        image_ids = self.run(["docker", "image", "inspect", "--format", "{{.Id}}", *system_tags],
                             capture=True).split()
        recipe = digest(base_recipe, cni_manifest, containerd_config, *image_ids,
                        *(file_digest(k / c) for c in KUBE_NODE_COMMANDS))
        if self.image_current(tag, recipe):
            self.log(f"{tag}: cached")
            return tag, base
        start = time.monotonic()
        name = f"svclab-testbed-node-{os.getpid()}"
        self.run(["docker", "run", "-d", "--name", name, "--entrypoint", "sleep", base, "infinity"], capture=True)
        try:
            for cmd in KUBE_NODE_COMMANDS:
                self.run(["docker", "cp", str(k / cmd), f"{name}:/usr/bin/{cmd}"])
            version = self.pins["kubernetes"]["version"]
            self.run(["docker", "exec", "-i", name, "bash", "-c", "cat > /etc/containerd/config.toml"],
                     input=containerd_config.encode())
            script = (f"echo {version} > /kind/version && mkdir -p /kind/manifests"
                      " && cat > /kind/manifests/default-cni.yaml")
            self.run(["docker", "exec", "-i", name, "bash", "-c", script], input=cni_manifest.encode())
            self.run(["docker", "exec", "-d", name, "bash", "-c", "containerd >/var/log/build-containerd.log 2>&1"])
            self.run(["docker", "exec", name, "bash", "-c",
                      "for i in $(seq 1 100); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"])
            saved = subprocess.Popen(["docker", "save", *system_tags], stdout=subprocess.PIPE)
            self.run(["docker", "exec", "-i", name, "ctr", "--namespace=k8s.io", "images", "import",
                      "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack",
                      "--digests", "-"], input=saved.stdout.read(), capture=True)
            if saved.wait() != 0:
                raise BuildError("docker save of the system images failed")
            listed = self.run(["docker", "exec", name, "ctr", "--namespace=k8s.io", "images", "ls", "-q"],
                              capture=True).split()
            missing = [t for t in system_tags if t not in listed and f"docker.io/{t}" not in listed]
            if missing:
                raise BuildError(f"images missing in the node's containerd after import: {missing}")
            self.run(["docker", "exec", name, "bash", "-c",
                      "pkill containerd; for i in $(seq 1 100); do pgrep containerd >/dev/null || exit 0; sleep 0.1; done; exit 1"])
            self.run(["docker", "commit",
                      "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                      "--change", "CMD []",
                      "--change", f"LABEL {LABEL}={recipe}",
                      name, tag], capture=True)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        self.log(f"{tag}: built in {time.monotonic() - start:.0f}s")
        return tag, base

    def app_images(self, clientslim: str, clientslim_recipe: str) -> list[str]:
        """Images the labs run, tagged with the exact names svclab's manifests and pins use."""
        p, g = self.pins, self.go_dir
        return [
            self.binary_image(p["agnhost"]["image"], clientslim, "kubernetes", {"agnhost": g / "kubernetes" / "agnhost"},
                              entrypoint="/agnhost", dest_dir="/", base_recipe=clientslim_recipe),
            self.binary_image(p["metallb"]["controller_image"], "scratch", "metallb",
                              {"controller": g / "metallb" / "controller"}, entrypoint="/controller", dest_dir="/"),
            self.binary_image(p["metallb"]["speaker_image"], "scratch", "metallb",
                              {"speaker": g / "metallb" / "speaker"}, entrypoint="/speaker", dest_dir="/"),
            self.binary_image(p["traefik"]["image"], "scratch", "traefik", {"traefik": g / "traefik" / "traefik"}),
            self.binary_image(p["kube_vip"]["image"], "scratch", "kube_vip",
                              {"kube-vip": g / "kube_vip" / "kube-vip"}, entrypoint="/kube-vip", dest_dir="/"),
            self.binary_image(p["kube_vip"]["cloud_provider_image"], "scratch", "kube_vip",
                              {"kube-vip-cloud-provider": g / "kube_vip" / "kube-vip-cloud-provider"},
                              entrypoint="/kube-vip-cloud-provider", dest_dir="/"),
        ]

    def site_images(self, netbase: tuple[Path, str]) -> list[str]:
        """Images of the machines svclab runs beside the cluster (not inside its nodes), tagged as
        the pins name them: HAProxy and FRR (the CoreDNS image of the DNS server is a system image)."""
        tags = []
        for name, keep, pin, entrypoint in (("haproxyslim", HAPROXY_KEEP, "haproxy", "/usr/sbin/haproxy"),
                                            ("frrslim", FRR_KEEP, "frr", "/bin/sh")):
            slim, slim_recipe = self.slimmed(name, netbase, keep, SLIM_COMMON_OPTIONAL)
            dockerfile = f'FROM {slim}\nENTRYPOINT ["{entrypoint}"]'
            tag = self.pins[pin]["image"]
            self.docker_build(tag, digest(dockerfile, slim_recipe), dockerfile, {})
            tags += [slim, tag]
        return tags

    def mirror(self) -> None:
        """Puts pinned upstream manifests into the mirror folder, from the module sources of the
        same release (identical to the files at the pinned URLs; the sha256 check proves it)."""
        sys.path.insert(0, str(REPO))
        from svclab.mirror import mirror_path

        m, kv = self.pins["metallb"], self.pins["kube_vip"]
        wanted = [
            (m["manifest_url"], m["manifest_sha256"], "go.universe.tf/metallb", m["version"],
             "config/manifests/metallb-native.yaml"),
            (kv["cloud_provider_manifest_url"], kv["cloud_provider_manifest_sha256"],
             "github.com/kube-vip/kube-vip-cloud-provider", kv["cloud_provider_version"],
             "manifest/kube-vip-cloud-controller.yaml"),
        ]
        gw = self.pins["gateway_api"]
        wanted += [(f["url"], f["sha256"], "sigs.k8s.io/gateway-api", gw["version"],
                    f["url"].split(f"/{gw['version']}/", 1)[1]) for f in gw["files"]]
        for url, sha, module, version, inner in wanted:
            dest = mirror_path(self.mirror_dir, url)
            if dest.exists() and file_digest(dest) == sha:
                continue
            info = json.loads(self.run(["go", "mod", "download", "-json", f"{module}@{version}"], capture=True,
                                       env={"GOFLAGS": "-mod=mod"}, cwd=Path(tempfile.gettempdir())))
            src = Path(info["Dir"]) / inner
            if file_digest(src) != sha:
                raise BuildError(f"{module}@{version}/{inner} does not match the sha256 pinned for {url}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            self.log(f"mirrored {url}")

    def prune(self, keep: set[str]) -> None:
        """Removes test-bed images a newer recipe has replaced (dangling ones, and svclab.local
        tags not in KEEP), so rebuilds do not pile up gigabytes of old node images."""
        removed = 0
        for row in self.status():
            tag = f"{row['Repository']}:{row['Tag']}"
            stale = row["Repository"] == "<none>" or (tag.startswith("svclab.local/") and tag not in keep)
            if stale and subprocess.run(["docker", "rmi", row["ID"] if row["Repository"] == "<none>" else tag],
                                        capture_output=True).returncode == 0:
                removed += 1
        if removed:
            self.log(f"removed {removed} superseded test-bed images")

    def install_tools(self) -> None:
        self.tools_dir.mkdir(parents=True, exist_ok=True)
        for src in (self.go_dir / "kind" / "kind", self.go_dir / "kubernetes" / "kubectl"):
            dest = self.tools_dir / src.name
            if not dest.exists() or file_digest(dest) != file_digest(src):
                shutil.copy2(src, dest)
                self.log(f"installed {dest}")

    # ----------------------------------------------------------------- top level
    def roots(self) -> tuple:
        """The lane that needs no Go binary: root file systems, their cut-down images, the images
        beside the cluster and the mirror."""
        netbase = self.rootfs("netbase", NETBASE_PACKAGES)
        self.imported("node-rootfs", NODE_PACKAGES)
        netslim = self.slimmed("netslim", netbase, NETSLIM_KEEP, NETSLIM_OPTIONAL)
        clientslim = self.slimmed("clientslim", netbase, CLIENTSLIM_KEEP, CLIENTSLIM_OPTIONAL)
        site = self.site_images(netbase)
        self.mirror()
        return netslim, clientslim, site

    def build(self) -> dict:
        start = time.monotonic()
        self.run(["docker", "info"], capture=True)
        *_, (netslim_tag, clientslim_tag, site) = self.in_lanes([
            *(self.timed(f"go lane {i + 1} ({', '.join(lane)})", lambda lane=lane: self.go(lane))
              for i, lane in enumerate(GO_LANES)),
            self.timed("root file systems, site images and mirror", self.roots),
        ])
        netslim, netslim_recipe = netslim_tag
        clientslim, clientslim_recipe = clientslim_tag
        system = self.system_images(netslim, netslim_recipe)
        apps = self.app_images(clientslim, clientslim_recipe)
        # The labs' images ride in the node image too: a fresh cluster starts them at once
        # instead of streaming ~600 MB into every node on each `cluster.up`.
        node, base = self.node_image([*system, *apps])
        rootfs = [self.imported("node-rootfs", NODE_PACKAGES)[0]]
        self.prune({node, base, netslim, clientslim, *system, *apps, *site, *rootfs})
        self.install_tools()
        took = time.monotonic() - start
        self.log(f"test bed ready in {took:.0f}s: node image {node}")
        return {"node_image": node, "mirror": str(self.mirror_dir), "tools": str(self.tools_dir),
                "seconds": round(took, 1)}

    def status(self) -> list[dict]:
        proc = subprocess.run(
            ["docker", "images", "--filter", f"label={LABEL}", "--format", "{{json .}}"],
            capture_output=True, text=True,
        )
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def clean(self, *, all_caches: bool = False) -> None:
        ids = sorted({row["ID"] for row in self.status()})
        if ids:
            subprocess.run(["docker", "rmi", "-f", *ids], capture_output=True)
            self.log(f"removed {len(ids)} test-bed images")
        if all_caches and self.cache.exists():
            shutil.rmtree(self.cache)
            self.log(f"removed {self.cache}")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "build"
    builder = Builder()
    try:
        if command == "build":
            print(json.dumps(builder.build()))
        elif command == "status":
            for row in builder.status():
                print(f"{row['Repository']}:{row['Tag']}\t{row['Size']}")
        elif command == "clean":
            builder.clean(all_caches="--all" in argv)
        else:
            print("usage: builder.py build|status|clean [--all]", file=sys.stderr)
            return 2
    except BuildError as e:
        print(f"test bed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
