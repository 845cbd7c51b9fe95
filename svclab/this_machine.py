"""This machine as the outside client: on a cluster svclab did not make whose nodes are not
containers of this machine's Docker (k3s on a server, a kubeadm lab, a cloud), the requests "from
outside the cluster" are plain HTTP requests made by svclab itself.

What it can and cannot show:
  - it sends HTTP only: to the nodes' addresses (NodePorts, health-check ports) and to the
    load-balancer addresses the cluster gave the labs' own Services; never a shell command;
  - it never sends to a ClusterIP or a pod address: this machine has routes beyond the cluster
    (a default route), so "unreachable from outside" cannot be shown from here without sending
    traffic towards networks that are nobody's lab;
  - before the labs, `reach` tries a TCP connection to every node's kubelet port (10250, which
    every node listens on), so that NodePort probes are skipped with the reason ("timed out":
    private nodes behind a cloud's network) rather than failing;
  - the source address a backend sees from it is the one this machine's kernel picks for the
    route to the nodes (`reach` reads it from its own connected socket);
  - a load balancer that hands out a host name (AWS's a1b2c3.elb.amazonaws.com) is reached at
    what this machine's resolver gives for it (`ThisMachine.resolve`), and only there.

Proxies from the environment (HTTP_PROXY) are ignored: a request meant for a node must go to it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import socket
from collections.abc import Sequence

from .errors import SvclabError

__all__ = ["ThisMachine", "Reach", "reach", "KUBELET_PORT", "failure_reason"]

KUBELET_PORT = 10250
REACH_TIMEOUT = 3.0
RESOLVE_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class Reach:
    """What `reach` found: the nodes this machine cannot connect to (address -> why) and the
    address it sends from."""

    unreachable: dict[str, str]
    source: str

    def lines(self) -> list[str]:
        if not self.unreachable:
            return [f"this machine ({self.source}) is the outside client; it reaches every node"]
        return [f"this machine ({self.source}) is the outside client; it cannot reach "
                + ", ".join(f"{ip} ({why})" for ip, why in sorted(self.unreachable.items()))]


def failure_reason(error: BaseException) -> str:
    """A few words for a failed connection: "timed out", "connection refused", "no route to host"."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = str(error)
    for words in ("timed out", "refused", "no route to host", "network is unreachable", "reset"):
        if words in text.lower():
            return {"refused": "connection refused", "reset": "connection reset"}.get(words, words)
    return (text.splitlines() or [type(error).__name__])[0][:120]


def _connect(ip: str, port: int, timeout: float) -> tuple[str | None, str | None]:
    """(the local address, None) when a TCP connection to IP:PORT is made, else (None, why)."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            return sock.getsockname()[0], None
    except OSError as e:
        return None, failure_reason(e)


def _route_source(ip: str) -> str:
    """The address this machine's kernel would send to IP from (a UDP socket's connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((ip, KUBELET_PORT))
            return sock.getsockname()[0]
        except OSError:
            return "0.0.0.0"


def reach(node_ips: Sequence[str], *, port: int = KUBELET_PORT, timeout: float = REACH_TIMEOUT,
          connect=_connect) -> Reach:
    """Tries a TCP connection to every node address at once (one try each, within TIMEOUT)."""
    if not node_ips:
        return Reach({}, "0.0.0.0")
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(node_ips))) as pool:
        answers = dict(zip(node_ips, pool.map(lambda ip: connect(ip, port, timeout), node_ips)))
    unreachable = {ip: why for ip, (_, why) in answers.items() if why}
    sources = [local for local, _ in answers.values() if local]
    return Reach(unreachable, sources[0] if sources else _route_source(node_ips[0]))


class ThisMachine:
    """The outside client that is svclab's own process: HTTP requests with `requests`, each on a
    new connection, answered in agnhost /dial's shape like the container's."""

    kind = "this machine"

    def __init__(self, source: str, *, getaddrinfo=socket.getaddrinfo):
        self.source = source
        self.resolved: dict[str, list[str]] = {}   # host name -> the IPv4 addresses it was resolved to here
        self._getaddrinfo = getaddrinfo

    def resolve(self, name: str, *, timeout: float = RESOLVE_TIMEOUT) -> list[str]:
        """The IPv4 addresses this machine's resolver gives for NAME (a load balancer's host name),
        within TIMEOUT; remembered, so that only they may be sent to (probes.traffic)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            lookup = pool.submit(self._getaddrinfo, name, None, socket.AF_INET, socket.SOCK_STREAM)
            try:
                answers = lookup.result(timeout=timeout)
            except concurrent.futures.TimeoutError:
                raise SvclabError(f"{name} did not resolve within {timeout:g}s on this machine") from None
            except OSError as e:
                raise SvclabError(f"{name} does not resolve on this machine ({failure_reason(e)})") from None
        addresses = sorted({info[4][0] for info in answers})
        self.resolved[name] = addresses
        return addresses

    def dial(self, url: str, *, tries: int, timeout: float, headers: Sequence[str] = (),
             http_errors_fail: bool = False) -> dict[str, list[str]]:
        """TRIES GETs of URL (its address already checked by the caller), each within TIMEOUT;
        HTTP_ERRORS_FAIL: a status of 400 or more counts as a failed try."""
        responses, errors = [], []
        for _ in range(int(tries)):
            code, text = self.status(url, timeout=timeout, headers=headers)
            if not code or (http_errors_fail and code >= 400):
                errors.append(f"{url}: {text if not code else f'HTTP {code}'}")
            else:
                responses.append(text.strip())
        return {"responses": responses, "errors": errors}

    def status(self, url: str, *, timeout: float, headers: Sequence[str] = ()) -> tuple[int, str]:
        """(HTTP status, body) of one GET of URL on a new connection; (0, why) when nothing answered."""
        import requests

        with requests.Session() as session:
            session.trust_env = False   # no proxy from the environment: the request goes to the node
            try:
                answer = session.get(url, timeout=(timeout, timeout), allow_redirects=False,
                                     headers={"Connection": "close", **dict(h.split(": ", 1) for h in headers)})
            except requests.RequestException as e:
                return 0, failure_reason(_cause(e))
        return answer.status_code, answer.text

    def run(self, command: str, *, timeout: float) -> tuple[int, str]:
        raise SvclabError("this machine is the outside client here: svclab runs no shell command on it")

    def close(self) -> None:
        pass


def _cause(error: BaseException) -> BaseException:
    """The innermost error under requests' and urllib3's wrappers (the OSError with the kernel's reason)."""
    seen = error
    for _ in range(8):
        inner = seen.__context__ or seen.__cause__ or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        if inner is None:
            break
        seen = inner
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            seen = reason
    return seen
