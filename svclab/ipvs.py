"""IPVS (the kernel's IP Virtual Server), as kube-proxy's ipvs mode uses it: whether the kernel of
Docker's engine has it, and the table of virtual servers read back from a node.

A kind node is a container, so its kernel is the Docker engine's (on macOS, the VM's), not this
machine's: svclab looks from inside a short-lived container. The ip_vs module, once loaded (or
built in), shows as /proc/net/ip_vs and /sys/module/ip_vs; svclab counts only that, since a module
that is merely on disk may not load.

`ipvsadm -Ln` lists one virtual server per line, each followed by its real servers:

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
    TCP  10.96.0.1:443 rr
      -> 172.18.0.3:6443              Masq    1      0          0
    TCP  10.96.14.20:80 rr persistent 10800
      -> 10.244.1.7:8080              Masq    1      0          0

The kernel's /proc/net/ip_vs has the same layout with addresses and ports in hex (0A600001:01BB
is 10.96.0.1:443; an IPv6 address is written out in full, in brackets) and a persistent service's
netmask after its timeout ("persistent 10800 FFFFFFFF"). Both parsers below give the same
VirtualServer list; they and the filter are pure, `look` and `require` talk to Docker.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable

from .config import Settings, agnhost_image
from .errors import PrerequisiteError

__all__ = ["RealServer", "VirtualServer", "parse_ipvsadm", "parse_proc_ip_vs", "service_virtual_servers",
           "format_table", "IPVS_SIGNS", "look", "has_ipvs", "missing", "refusal", "require"]

IPVS_SIGNS = ("/proc/net/ip_vs", "/sys/module/ip_vs")
# Shell builtins only: the agnhost image has /bin/sh but no uname.
_LOOK_SCRIPT = ('read -r release < /proc/sys/kernel/osrelease; echo "kernel $release"; '
                f'for p in {" ".join(IPVS_SIGNS)}; do '
                'if [ -e "$p" ]; then echo "present $p"; else echo "absent $p"; fi; done')
_VIRTUAL = re.compile(r"^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)\s*(.*)$")
_REAL = re.compile(r"^\s+->\s+(\S+)\s+(\S+)\s+(-?\d+)\s+\d+\s+\d+\s*$")


@dataclasses.dataclass(frozen=True)
class RealServer:
    address: str
    port: int
    forward: str   # Masq (NAT, what kube-proxy uses), Route, Tunnel or Local
    weight: int


@dataclasses.dataclass(frozen=True)
class VirtualServer:
    protocol: str   # TCP, UDP or SCTP
    address: str
    port: int
    scheduler: str  # rr unless kube-proxy's ipvs.scheduler says otherwise
    flags: str = ""  # "persistent 10800" for sessionAffinity ClientIP
    real_servers: tuple[RealServer, ...] = ()


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _split(token: str) -> tuple[str, str]:
    host, _, port = token.rpartition(":")
    return host.strip("[]"), port


def _decimal(token: str) -> tuple[str, int]:
    host, port = _split(token)
    return str(ipaddress.ip_address(host)), int(port)


def _hex(token: str) -> tuple[str, int]:
    host, port = _split(token)
    address = ipaddress.ip_address(host) if ":" in host else ipaddress.IPv4Address(int(host, 16))
    return str(address), int(port, 16)


def _proc_flags(flags: str, address: str) -> str:
    """The kernel's "persistent TIMEOUT NETMASK" as ipvsadm shows it: the netmask only when it is
    not a single host's (hex for IPv4, a prefix length for IPv6)."""
    words = flags.split()
    if "persistent" not in words or words.index("persistent") + 2 >= len(words):
        return " ".join(words)
    at = words.index("persistent")
    mask = int(words[at + 2], 16)
    if ":" in address:
        shown = [] if mask == 128 else ["mask", str(mask)]
    else:
        shown = [] if mask == 0xFFFFFFFF else ["mask", str(ipaddress.IPv4Address(mask))]
    return " ".join([*words[:at + 2], *shown, *words[at + 3:]])


def _parse(text: str, decode: Callable[[str], tuple[str, int]],
           flags: Callable[[str, str], str]) -> list[VirtualServer]:
    table: list[VirtualServer] = []
    current: VirtualServer | None = None
    for line in text.splitlines():
        if match := _VIRTUAL.match(line):
            protocol, where, scheduler, rest = match.groups()
            if protocol == "FWM":   # a firewall-mark service; kube-proxy makes none
                current = None
                continue
            address, port = decode(where)
            current = VirtualServer(protocol, address, port, scheduler, flags(rest, address))
            table.append(current)
        elif current is not None and (match := _REAL.match(line)):
            address, port = decode(match.group(1))
            real = RealServer(address, port, match.group(2), int(match.group(3)))
            current = dataclasses.replace(current, real_servers=(*current.real_servers, real))
            table[-1] = current
    return table


def parse_ipvsadm(text: str) -> list[VirtualServer]:
    """The virtual servers in `ipvsadm -Ln` output."""
    return _parse(text, _decimal, lambda rest, _address: " ".join(rest.split()))


def parse_proc_ip_vs(text: str) -> list[VirtualServer]:
    """The virtual servers in /proc/net/ip_vs."""
    return _parse(text, _hex, _proc_flags)


def _service_keys(svc: dict) -> set[tuple[str, str | None, int]]:
    """(protocol, address, port) of each address kube-proxy serves SVC on; address None for a
    nodePort, which it serves on every node address."""
    spec = svc.get("spec") or {}
    addresses = [*(spec.get("clusterIPs") or [spec.get("clusterIP")]), *(spec.get("externalIPs") or []),
                 *(i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])]
    canonical = {str(ipaddress.ip_address(a)) for a in addresses if a and a != "None"}
    keys: set[tuple[str, str | None, int]] = set()
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        keys.update((protocol, address, port["port"]) for address in canonical)
        if port.get("nodePort"):
            keys.add((protocol, None, port["nodePort"]))
    return keys


def service_virtual_servers(table: list[VirtualServer], svc: dict) -> list[VirtualServer]:
    """The virtual servers of TABLE that serve the Service SVC (its object as the API returns it):
    its ClusterIP:port, each externalIP and load-balancer ingress ip:port, and its nodePorts on any
    address."""
    keys = _service_keys(svc)
    return [vs for vs in table
            if (vs.protocol, vs.address, vs.port) in keys or (vs.protocol, None, vs.port) in keys]


def format_table(table: list[VirtualServer]) -> list[str]:
    """TABLE as ipvsadm lays it out (decimal addresses), without the counters."""
    out = []
    for vs in table:
        out.append(" ".join(filter(None, (f"{vs.protocol}  {_host_port(vs.address, vs.port)}", vs.scheduler, vs.flags))))
        out.extend(f"  -> {_host_port(r.address, r.port):28} {r.forward:7} weight {r.weight}" for r in vs.real_servers)
        if not vs.real_servers:
            out.append("  -> (no real servers)")
    return out


# ---------------------------------------------------------------- the engine's kernel

def _image(dc, settings: Settings, pull: bool) -> str | None:
    """An image to look with: the node image or agnhost, whichever Docker holds; else agnhost,
    pulled when PULL (`up` needs it for its client anyway)."""
    from docker.errors import ImageNotFound

    for image in filter(None, (settings.node_image, agnhost_image())):
        try:
            dc.images.get(image)
            return image
        except ImageNotFound:
            continue
    if pull:
        dc.images.pull(agnhost_image())
        return agnhost_image()
    return None


def _read_look(output: str) -> dict:
    """What _LOOK_SCRIPT printed, as `look` returns it; an answer that does not name every sign is an error."""
    kernel = next((line.split(None, 1)[1] for line in output.splitlines()
                   if line.startswith("kernel ") and len(line.split()) > 1), "")
    present = [line.split(None, 1)[1] for line in output.splitlines() if line.startswith("present ")]
    looked = [line.split(None, 1)[1] for line in output.splitlines() if line.startswith(("present ", "absent "))]
    if sorted(looked) != sorted(IPVS_SIGNS):
        return {"kernel": kernel, "present": present, "error": f"unexpected answer {output.strip()[:80]!r}"}
    return {"kernel": kernel, "present": present, "error": None}


def look(dc, settings: Settings, *, pull: bool = False) -> dict:
    """Which of IPVS_SIGNS exist in the kernel of DC's engine, asked of a short-lived container:
    {"kernel": release, "present": [paths], "error": why it could not look, or None}."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    from .network import MANAGED_LABEL

    try:
        image = _image(dc, settings, pull)
        if image is None:
            return {"kernel": "", "present": [], "error": f"no local image to look with (`docker pull {agnhost_image()}`)"}
        container = dc.containers.create(image, entrypoint=["/bin/sh", "-c", _LOOK_SCRIPT], network_mode="none",
                                         labels={MANAGED_LABEL: "true"})
        try:
            container.start()
            container.wait(timeout=60)
            output = container.logs(stdout=True, stderr=False).decode(errors="replace")
        finally:
            container.remove(force=True)
    except (DockerException, RequestException) as e:   # RequestException: the wait timed out
        return {"kernel": "", "present": [], "error": (str(e).splitlines() or [type(e).__name__])[0][:120]}
    return _read_look(output)


def has_ipvs(found: dict) -> bool | None:
    """From what `look` FOUND: True when the kernel has IPVS loaded, False when it has not, None
    when svclab could not look."""
    if found.get("error"):
        return None
    return bool(found.get("present"))


def missing(found: dict) -> str:
    """What `look` FOUND missing: "kernel 6.8.0: no /proc/net/ip_vs, no /sys/module/ip_vs"."""
    absent = ", ".join(f"no {sign}" for sign in IPVS_SIGNS if sign not in (found.get("present") or []))
    return f"kernel {found['kernel']}: {absent}" if found.get("kernel") else absent


def refusal(found: dict, source: str | None = None) -> PrerequisiteError | None:
    """The error that stops a cluster in ipvs mode from being made on the kernel `look` FOUND, or
    None. SOURCE names where the mode was asked for ("SVCLAB_KUBE_PROXY_MODE", "svclab.yaml")."""
    verdict = has_ipvs(found)
    if verdict:
        return None
    other = (f"or ask for kube_proxy_mode nftables or iptables instead ({source} asked for ipvs)" if source
             else "or ask for kube_proxy_mode nftables or iptables instead")
    if verdict is None:
        return PrerequisiteError(f"kube-proxy mode ipvs needs IPVS in the kernel of Docker's engine, and svclab "
                                 f"could not look ({found['error']})", hint=f"check that Docker runs containers, {other}")
    return PrerequisiteError(f"kube-proxy mode ipvs needs IPVS in the kernel of Docker's engine, which has none "
                             f"({missing(found)})",
                             hint=f"load the module where Docker's engine runs (`sudo modprobe ip_vs`; on macOS, "
                                  f"inside Docker's VM), {other}")


def require(dc, settings: Settings) -> None:
    """Raises PrerequisiteError unless the kernel of DC's engine has IPVS loaded."""
    error = refusal(look(dc, settings, pull=True), settings.sources.get("kube_proxy_mode"))
    if error is not None:
        raise error
