"""`svclab doctor`: what on this machine would make a lab fail, each finding with its fix.

Gathering facts (commands, /proc, Docker) is kept apart from judging them, so the judgements are
plain functions that tests feed with made-up facts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from . import ipvs
from .cluster import find_tool
from .config import Settings, pins
from .errors import SvclabError

__all__ = ["Finding", "gather", "judge", "run_doctor", "render_findings"]

OK, WARN, FAIL = "ok", "warn", "fail"
TESTBED_REGISTRY = "svclab.local/"   # images only the test bed builds; no registry serves them
CAP_SYS_RESOURCE = 24
IN_A_CHECKOUT = "in a checkout: `invoke testbed.build`"
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str
    fix: str = ""


def _cmd(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def gather(settings: Settings) -> dict:
    """Facts about this machine; missing ones stay None."""
    facts: dict = {}
    try:
        import docker

        dc = docker.from_env(timeout=20)
        info = dc.info()
        facts["docker_version"] = dc.version().get("Version")
        facts["cgroup_version"] = str(info.get("CgroupVersion", ""))
        facts["default_runtime"] = info.get("DefaultRuntime")
        facts["containers"] = [(c.name, c.image.tags[0] if c.image.tags else "") for c in dc.containers.list()]
        if settings.node_image:
            try:
                dc.images.get(settings.node_image)
                facts["node_image"] = (settings.node_image, True)
            except docker.errors.ImageNotFound:
                facts["node_image"] = (settings.node_image, False)
        net = next((n for n in dc.networks.list(names=[settings.network]) if n.name == settings.network), None)
        facts["network_subnets"] = [c["Subnet"] for c in ((net.attrs.get("IPAM") or {}).get("Config") or [])] if net else []
        if settings.kube_proxy_mode == "ipvs":
            facts["ipvs"] = ipvs.look(dc, settings)
    except Exception as e:  # noqa: BLE001 - any failure to talk to Docker is the finding itself
        facts["docker_error"] = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    facts["docker_host"] = os.environ.get("DOCKER_HOST")
    for tool in ("kind", "kubectl"):
        try:
            path = find_tool(tool, settings)
            args = ["version"] if tool == "kind" else ["version", "--client", "-o", "json"]
            facts[tool] = (path, _cmd([path, *args]) or "")
        except SvclabError:
            facts[tool] = None
    facts.update(platform_facts(settings))
    facts["network"] = settings.network
    for key in ("max_user_watches", "max_user_instances"):
        try:
            facts[key] = int(Path(f"/proc/sys/fs/inotify/{key}").read_text())
        except (OSError, ValueError):
            facts[key] = None
    try:
        capbnd = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith("CapBnd:"))
        facts["cap_sys_resource"] = bool(int(capbnd, 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, StopIteration, ValueError):
        facts["cap_sys_resource"] = None
    facts["routes"] = (_cmd(["ip", "-4", "route", "show"]) or "").splitlines()
    return facts


def platform_facts(settings: Settings) -> dict:
    """This machine's OS and architecture as release files name them, whether Go is on PATH,
    and svclab's own tool folder: what an install command depends on."""
    return {"os": platform.system().lower(),
            "arch": ARCHES.get(platform.machine().lower(), platform.machine().lower()),
            "go": shutil.which("go") is not None,
            "tools_dir": _shell_path(settings.tools_dir)}


def install_hint(tool: str, settings: Settings) -> str:
    """How to install kind or kubectl at the pinned version on this machine (one line)."""
    version = pins()["kind"]["version"] if tool == "kind" else pins()["kubernetes"]["version"]
    return _install(tool, version, platform_facts(settings))


def _shell_path(path: Path) -> str:
    """PATH as one would type it in a shell: under the home folder as ~/..., quoted where needed."""
    try:
        rest = path.relative_to(Path.home())
    except (ValueError, RuntimeError):   # not under the home folder, or no home folder known
        return shlex.quote(str(path))
    return "~/" + shlex.quote(str(rest)) if str(rest) != "." else "~"


def kind_version(output: str) -> str | None:
    """The version `kind version` printed (`kind v0.30.0 go1.24.6 linux/amd64`), or None."""
    found = re.search(r"\bv\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?", output or "")
    return found.group(0) if found else None


def kubectl_version(output: str) -> str | None:
    """clientVersion.gitVersion from `kubectl version --client -o json`, or None."""
    try:
        version = json.loads(output)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) and re.match(r"v\d+\.\d+\.\d+", version) else None


def _minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"v(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def _install_pinned(tool: str, version: str, facts: dict) -> str:
    """The command that puts TOOL at VERSION where svclab looks first, for this OS and architecture."""
    folder = facts.get("tools_dir") or "~/.local/share/svclab/bin"
    system, arch = facts.get("os") or "linux", facts.get("arch") or "amd64"
    if tool == "kind" and facts.get("go"):
        return f"`mkdir -p {folder} && GOBIN={folder} go install sigs.k8s.io/kind@{version}`"
    url = (f"https://kind.sigs.k8s.io/dl/{version}/kind-{system}-{arch}" if tool == "kind" else
           f"https://dl.k8s.io/release/{version}/bin/{system}/{arch}/kubectl")
    return (f"`mkdir -p {folder} && curl -fLo {folder}/{tool} {url} && chmod +x {folder}/{tool}` "
            f"(svclab looks in {folder} before PATH)")


def _install(tool: str, version: str, facts: dict) -> str:
    """How to install a missing TOOL on this machine."""
    if facts.get("os") == "darwin":
        return f"install {tool}: `brew install {tool}`"
    return f"install {tool} {version}: {_install_pinned(tool, version, facts)}"


def _tools(facts: dict, kind_pin: str, kube_pin: str, kube_minor: int) -> list[Finding]:
    findings = []
    for tool, pin in (("kind", kind_pin), ("kubectl", kube_pin)):
        found = facts.get(tool)
        if not found:
            findings.append(Finding(tool, FAIL, f"{tool} not found", f"{_install(tool, pin, facts)}; {IN_A_CHECKOUT}"))
            continue
        path, output = found
        version = kind_version(output) if tool == "kind" else kubectl_version(output)
        replace = f"install {tool} {pin}: {_install_pinned(tool, pin, facts)}"
        if version is None:
            shown = " ".join((output or "").split())[:80]
            findings.append(Finding(tool, WARN, f"version unknown ({path}"
                                    + (f" printed {shown!r})" if shown else " printed nothing)"), replace))
        elif tool == "kind" and version != kind_pin:
            findings.append(Finding(tool, WARN, f"{version} ({path}); svclab is tested with kind {kind_pin}", replace))
        elif tool == "kubectl" and (_minor(version)[0] != 1 or abs(_minor(version)[1] - kube_minor) > 1):
            findings.append(Finding(tool, WARN, f"{version} ({path}) is more than one minor version from the "
                                    f"cluster's v1.{kube_minor} (kubectl's version skew policy)", replace))
        else:
            findings.append(Finding(tool, OK, f"{version} ({path})"))
    return findings


def _docker_fix(facts: dict) -> str:
    error = facts.get("docker_error") or ""
    if "ermission denied" in error:
        return "let this user use Docker's socket: `sudo usermod -aG docker $USER`, then log in again"
    if facts.get("docker_host"):
        return f"start Docker at DOCKER_HOST={facts['docker_host']}, or `unset DOCKER_HOST` to use this machine's"
    if facts.get("os") == "darwin":
        return "start Docker: open Docker Desktop (`open -a Docker`), or `colima start`"
    return ("start Docker: `sudo systemctl start docker` (rootless: `systemctl --user start docker`; Docker "
            "Desktop: open it), or install it: https://docs.docker.com/engine/install/")


def _ipvs_finding(found: dict) -> Finding:
    """Whether kube_proxy_mode ipvs can work on the kernel of Docker's engine (ipvs.look's FOUND)."""
    verdict = ipvs.has_ipvs(found)
    kernel = f"kernel {found['kernel']}: " if found.get("kernel") else ""
    if verdict:
        return Finding("ipvs", OK, f"{kernel}IPVS is loaded ({', '.join(found['present'])})")
    if verdict is None:
        return Finding("ipvs", WARN, f"could not look for IPVS in the kernel of Docker's engine: {found['error']}",
                       "make sure Docker runs containers; kube_proxy_mode ipvs needs IPVS there")
    return Finding("ipvs", FAIL, f"kube_proxy_mode is ipvs, and the kernel of Docker's engine has no IPVS "
                   f"({ipvs.missing(found)}): `cluster.up` refuses to make the cluster",
                   "`sudo modprobe ip_vs` where Docker's engine runs (on macOS, inside Docker's VM), or set "
                   "kube_proxy_mode to nftables or iptables")


def judge(facts: dict, *, kube_minor: int | None = None, kind_pin: str | None = None,
          kube_pin: str | None = None) -> list[Finding]:
    """Findings from FACTS. The pins default to svclab/pins.toml's; KUBE_MINOR (the cluster's
    Kubernetes minor version) to the pinned Kubernetes version's."""
    kind_pin = kind_pin or pins()["kind"]["version"]
    kube_pin = kube_pin or pins()["kubernetes"]["version"]
    kube_minor = _minor(kube_pin)[1] if kube_minor is None else kube_minor
    findings = []
    if facts.get("docker_error"):
        findings.append(Finding("docker", FAIL, f"Docker does not answer: {facts['docker_error']}", _docker_fix(facts)))
    else:
        findings.append(Finding("docker", OK, f"Docker {facts.get('docker_version')} answers"))
    findings += _tools(facts, kind_pin, kube_pin, kube_minor)
    cgroup = facts.get("cgroup_version")
    if cgroup == "1":
        status = FAIL if kube_minor >= 35 else OK
        findings.append(Finding("cgroups", status, f"cgroup v1 host; kubelet 1.{kube_minor} "
                                + ("refuses it" if status == FAIL else "still runs on it"),
                                "use a node image of Kubernetes 1.34 or older" if status == FAIL else ""))
    elif cgroup:
        findings.append(Finding("cgroups", OK, f"cgroup v{cgroup}"))
    for key, want in (("max_user_watches", 524288), ("max_user_instances", 512)):
        have = facts.get(key)
        if have is not None and have < want:
            findings.append(Finding(f"inotify {key}", WARN, f"{have} (multi-node clusters need {want})",
                                    f"`sudo sysctl -w fs.inotify.{key}={want}`; to keep it after a reboot, add "
                                    f"`fs.inotify.{key}={want}` to /etc/sysctl.d/99-svclab.conf"))
    image = facts.get("node_image")
    if image and image[1]:
        findings.append(Finding("node image", OK, f"{image[0]} is in local Docker"))
    elif image and image[0].startswith(TESTBED_REGISTRY):
        findings.append(Finding("node image", FAIL, f"{image[0]} is not in local Docker (test-bed images are built "
                                "on this machine, never pulled)",
                                "unset SVCLAB_NODE_IMAGE to use kind's default, or load it from a bundle: "
                                f"`svclab images.load --archive svclab-bundle.tar` ({IN_A_CHECKOUT})"))
    elif image:
        findings.append(Finding("node image", WARN, f"{image[0]} is not in local Docker: `cluster.up` will pull it",
                                f"`docker pull {image[0]}` now, or unset SVCLAB_NODE_IMAGE to use kind's default"))
    if facts.get("ipvs") is not None:
        findings.append(_ipvs_finding(facts["ipvs"]))
    runtime = facts.get("default_runtime")
    if facts.get("cap_sys_resource") is False and (runtime == "runc" or (runtime is None and not facts.get("docker_error"))):
        findings.append(Finding("capabilities", FAIL,
                                "CAP_SYS_RESOURCE is missing from the bounding set: `docker run --privileged` (kind nodes) fails",
                                "run svclab on a machine or VM whose bounding set keeps CAP_SYS_RESOURCE, or make Docker's "
                                "default runtime a runc wrapper that drops it from each container's spec (README, "
                                "\"The test bed\")"))
    elif facts.get("cap_sys_resource") is False and runtime:
        findings.append(Finding("capabilities", OK, f"CAP_SYS_RESOURCE missing; handled by runtime {runtime}"))
    # (While Docker does not answer, the runtime it would use is unknown: the docker row says why.)
    for subnet in facts.get("network_subnets") or []:
        if ":" in subnet:
            continue
        net = ipaddress.ip_network(subnet)
        for route in facts.get("routes") or []:
            dest = route.split()[0]
            if dest == "default" or "linkdown" in route:
                continue
            try:
                other = ipaddress.ip_network(dest, strict=False)
            except ValueError:
                continue
            if other.overlaps(net) and not re.search(r"\bdev (br-|docker)", route):
                findings.append(Finding("subnet clash", WARN, f"the lab network {subnet} overlaps the route `{route}`",
                                        "disconnect the VPN, or `svclab cluster.down` and "
                                        f"`docker network rm {facts.get('network') or 'svclab'}` so that a free subnet "
                                        "is picked"))
    for name, image in facts.get("containers") or []:
        if "cloud-provider-kind" in image or "cloud-provider-kind" in name:
            findings.append(Finding("other load balancers", WARN,
                                    f"container {name} ({image}) assigns addresses to LoadBalancer Services in kind clusters",
                                    f"stop it (`docker stop {name}`) while running svclab labs"))
    return findings


def run_doctor(settings: Settings) -> list[Finding]:
    return judge(gather(settings))


def render_findings(findings: list[Finding], console) -> None:
    """The findings as a table on CONSOLE (a rich Console)."""
    from rich.table import Table

    table = Table(show_lines=False)
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    style = {OK: "green", WARN: "yellow", FAIL: "bold red"}
    for f in findings:
        table.add_row(f.check, f"[{style[f.status]}]{f.status}[/]", f.detail, f.fix)
    console.print(table)
