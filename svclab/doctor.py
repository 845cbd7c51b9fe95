"""`svclab doctor`: what on this machine would make a lab fail, each finding with its fix.

Gathering facts (commands, /proc, Docker) is kept apart from judging them, so the judgements are
plain functions that tests feed with made-up facts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import subprocess
from pathlib import Path

from .cluster import find_tool
from .config import Settings
from .errors import SvclabError

__all__ = ["Finding", "gather", "judge", "run_doctor"]

OK, WARN, FAIL = "ok", "warn", "fail"
TESTBED_REGISTRY = "svclab.local/"   # images only the test bed builds; no registry serves them
CAP_SYS_RESOURCE = 24


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
    except Exception as e:  # noqa: BLE001 - any failure to talk to Docker is the finding itself
        facts["docker_error"] = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    for tool in ("kind", "kubectl"):
        try:
            path = find_tool(tool, settings)
            args = ["version"] if tool == "kind" else ["version", "--client"]
            facts[tool] = (path, _cmd([path, *args]) or "")
        except SvclabError:
            facts[tool] = None
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


def judge(facts: dict, *, kube_minor: int = 34) -> list[Finding]:
    findings = []
    if facts.get("docker_error"):
        findings.append(Finding("docker", FAIL, f"Docker does not answer: {facts['docker_error']}",
                                "start Docker, or run scripts/host-setup.sh"))
    else:
        findings.append(Finding("docker", OK, f"Docker {facts.get('docker_version')} answers"))
    for tool, hint in (("kind", "run `invoke testbed.build`, or install kind v0.30.0"),
                       ("kubectl", "run `invoke testbed.build`, or install kubectl")):
        found = facts.get(tool)
        if not found:
            findings.append(Finding(tool, FAIL, f"{tool} not found", hint))
            continue
        version = re.search(r"v\d+\.\d+\.\d+", found[1] or "")
        findings.append(Finding(tool, OK, f"{found[0]} {version.group(0) if version else '(version unknown)'}"))
        if tool == "kubectl" and version:
            minor = int(version.group(0).split(".")[1])
            if abs(minor - kube_minor) > 1:
                findings.append(Finding("kubectl skew", WARN,
                                        f"kubectl 1.{minor} is more than one minor version from the cluster's 1.{kube_minor}",
                                        f"use {found[0].rsplit('/', 1)[0]}/kubectl from the test bed, or kubectl 1.{kube_minor}"))
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
                                    f"sudo sysctl fs.inotify.{key}={want}"))
    image = facts.get("node_image")
    if image and image[1]:
        findings.append(Finding("node image", OK, f"{image[0]} is in local Docker"))
    elif image and image[0].startswith(TESTBED_REGISTRY):
        findings.append(Finding("node image", FAIL, f"{image[0]} is not in local Docker (test-bed images are built "
                                "on this machine, never pulled)",
                                "build it with `invoke testbed.build`, or unset SVCLAB_NODE_IMAGE to use kind's default"))
    elif image:
        findings.append(Finding("node image", WARN, f"{image[0]} is not in local Docker: `cluster.up` will pull it",
                                f"`docker pull {image[0]}` now, or set SVCLAB_NODE_IMAGE to an image this machine has"))
    runtime = facts.get("default_runtime")
    if facts.get("cap_sys_resource") is False and (runtime == "runc" or (runtime is None and not facts.get("docker_error"))):
        findings.append(Finding("capabilities", FAIL,
                                "CAP_SYS_RESOURCE is missing from the bounding set: `docker run --privileged` (kind nodes) fails",
                                "run scripts/host-setup.sh (registers a runtime that drops that capability)"))
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
                                        "disconnect the VPN, or remove the svclab network so a free subnet is picked"))
    for name, image in facts.get("containers") or []:
        if "cloud-provider-kind" in image or "cloud-provider-kind" in name:
            findings.append(Finding("other load balancers", WARN,
                                    f"container {name} ({image}) assigns addresses to LoadBalancer Services in kind clusters",
                                    f"stop it (`docker stop {name}`) while running svclab labs"))
    return findings


def run_doctor(settings: Settings) -> list[Finding]:
    return judge(gather(settings))
