"""The outside client, driven through the Docker API: "a machine outside the cluster" that only
someone who may use Docker can command.

The client container (see ``network.start_client``) sits on the cluster's docker network with
no default route and publishes no port. svclab sends it shell commands over attached ``exec``
sessions (a long-lived ``sh`` whose stdin and stdout are the hijacked Docker API connection), so
the control channel needs exactly the authority of the Docker socket. Sessions are kept and
reused: a command costs a write and a read, not a new ``exec`` (which on some hosts goes through
a runtime wrapper and takes tens of milliseconds).

Framing on a session: svclab writes ::

    { COMMAND
    } </dev/null 2>&1; printf '\\036%s %s\\n' NONCE "$?"

and reads Docker's multiplexed frames (an 8-byte header: stream, 3 zero bytes, big-endian
length) until the record separator (0x1e) followed by the command's random NONCE, then the exit
status. Commands are built only from validated addresses, ports and names (``probes.traffic.lab_address``).

``dial_script`` and ``parse_dial`` turn "N HTTP requests to HOST:PORT/REQUEST" into one command
and its answer back into agnhost /dial's shape (``{"responses": [...], "errors": [...]}``), so
both clients answer probes alike.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import SvclabError

__all__ = ["OutsideClient", "Session", "dial_script", "parse_dial", "frame_payloads"]

_SEPARATOR = b"\x1e"      # ends a command's output, before its nonce and exit status
_TRY_END = "\x1f"         # ends one try of a dial, before curl's exit status
_VERBOSE = "\x1d"         # starts curl's verbose log of a failed try
_HEADER = struct.Struct(">BxxxL")


def frame_payloads(buffer: bytearray) -> bytes:
    """Removes every complete Docker stream frame from BUFFER and returns their payloads joined
    (stdout and stderr alike: commands already send stderr to stdout)."""
    out = bytearray()
    while len(buffer) >= _HEADER.size:
        _, size = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            break
        out += buffer[_HEADER.size:_HEADER.size + size]
        del buffer[:_HEADER.size + size]
    return bytes(out)


class Session:
    """One attached ``sh`` in the client container. Not thread-safe: the pool lends it out."""

    def __init__(self, open_socket: Callable[[], Any]):
        self._handle = open_socket()
        # docker-py hands back a SocketIO over the real socket (unix, tcp), the socket itself
        # (https) or an ssh channel: each has sendall/recv/settimeout on itself or on ._sock.
        self._sock = getattr(self._handle, "_sock", self._handle)
        self._frames = bytearray()
        self._text = bytearray()
        self.closed = False

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """Runs COMMAND; (exit status, output). Raises SvclabError when the shell ends or the
        command outlives TIMEOUT (the session is then closed: its shell may still be busy)."""
        nonce = secrets.token_hex(8)
        marker = _SEPARATOR + nonce.encode() + b" "
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(f"{{ {command}\n}} </dev/null 2>&1; printf '\\036%s %s\\n' {nonce} \"$?\"\n".encode())
            deadline = time.monotonic() + timeout
            while True:
                at = self._text.find(marker)
                if at >= 0:
                    end = self._text.find(b"\n", at)
                    if end >= 0:
                        output = bytes(self._text[:at]).decode(errors="replace")
                        status = int(self._text[at + len(marker):end])
                        del self._text[:end + 1]
                        return status, output
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise SvclabError("the outside client's shell ended: "
                                      + bytes(self._text).decode(errors="replace").strip()[:200])
                self._frames += chunk
                self._text += frame_payloads(self._frames)
        except (TimeoutError, socket.timeout):
            self.close()
            raise SvclabError(f"the outside client did not finish a command within {timeout:g}s") from None
        except OSError as e:
            self.close()
            raise SvclabError(f"lost the session with the outside client ({e})") from None
        except SvclabError:
            self.close()
            raise

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._handle.close()
            except OSError:
                pass


class OutsideClient:
    """A small pool of sessions with the client container CONTAINER (by name), opened through
    the docker SDK client DC as they are needed and reused; at most MAX_SESSIONS at once (three
    labs side by side, each with its probes side by side, each probe sending to every node at once)."""

    def __init__(self, dc, container: str, *, max_sessions: int = 24, routes_beyond: bool = False):
        self.dc, self.container, self.max_sessions = dc, container, max_sessions
        # svclab's own client has no default route; a user's container may (probes.traffic.lab_address)
        self.routes_beyond = routes_beyond
        self._idle: list[Session] = []
        self._open = 0
        self._lock = threading.Condition()

    def _open_socket(self):
        from docker.errors import APIError, NotFound

        try:
            exec_id = self.dc.api.exec_create(self.container, ["/bin/sh"], stdin=True, stdout=True, stderr=True,
                                              tty=False)["Id"]
            return self.dc.api.exec_start(exec_id, socket=True)
        except (NotFound, APIError) as e:
            raise SvclabError(f"cannot command the outside client {self.container} "
                              f"({getattr(e, 'explanation', None) or e})",
                              hint="run `svclab cluster.up` again: it starts the client anew") from None

    def _borrow(self, timeout: float) -> Session:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._idle and self._open >= self.max_sessions:
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    raise SvclabError(f"every session with the outside client stayed busy for {timeout:g}s")
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return Session(self._open_socket)
        except Exception:
            self._give_back(None)
            raise

    def _give_back(self, session: Session | None) -> None:
        with self._lock:
            if session is not None and not session.closed:
                self._idle.append(session)
            else:
                self._open -= 1
            self._lock.notify()

    def run(self, command: str, *, timeout: float) -> tuple[int, str]:
        """(exit status, output) of COMMAND run by ``sh`` in the client container."""
        session = self._borrow(timeout)
        try:
            return session.run(command, timeout)
        finally:
            self._give_back(session)

    def close(self) -> None:
        with self._lock:
            for session in self._idle:
                session.close()
            self._open -= len(self._idle)
            self._idle.clear()


def dial_script(url: str, *, tries: int, timeout: float, headers: tuple[str, ...] = (),
                http_errors_fail: bool = False) -> str:
    """A command that requests URL TRIES times, each on a new connection and within TIMEOUT
    seconds, printing each answer followed by 0x1f and curl's exit status (HTTP_ERRORS_FAIL: an
    HTTP status of 400 or more counts as a failed try). URL and HEADERS must be validated by the
    caller (they are placed inside single quotes)."""
    for part in (url, *headers):
        if "'" in part or "\n" in part:
            raise SvclabError(f"refusing to put {part!r} into a command")
    options = "-sSf" if http_errors_fail else "-sS"
    header_args = "".join(f" -H '{h}'" for h in headers)
    # curl's own message for a failed connection is generic ("Couldn't connect to server"); its
    # verbose log, printed only for a failed try (after 0x1d), has the reason the kernel gave
    # ("Network is unreachable": no route; "Connection refused": nothing listens). The image may
    # have no cat: the shell reads the log itself. One log per session ($$), gone after the tries.
    log = "/tmp/svclab-curl-$$"
    return (f"i=0; while [ $i -lt {int(tries)} ]; do i=$((i+1)); "
            f"curl {options} -v --stderr {log} -m {timeout:g} -H 'Connection: close'{header_args} '{url}'; s=$?; "
            f"if [ $s -ne 0 ]; then printf '{_VERBOSE}'; while IFS= read -r line; do printf '%s\\n' \"$line\"; "
            f"done < {log}; fi; printf '{_TRY_END}%s\\n' $s; done; rm -f {log} 2>/dev/null || :")


_TRY = re.compile(_TRY_END + r"(\d+)\n")


def parse_dial(output: str) -> dict[str, list[str]]:
    """What ``dial_script`` printed, as agnhost /dial answers: the bodies of tries that
    succeeded, and an error line for each that did not."""
    responses, errors, start = [], [], 0
    for match in _TRY.finditer(output):
        body, status = output[start:match.start()], int(match.group(1))
        start = match.end()
        if status == 0:
            responses.append(body.strip())
        else:
            errors.append(failure_reason(status, body.partition(_VERBOSE)[2]))
    return {"responses": responses, "errors": errors}


_REASON = re.compile(r"^\* (?:connect to .* failed|Immediate connect fail for .*?|Failed to connect to .*?): (.+)$", re.M)


def failure_reason(status: int, log: str) -> str:
    """One line for a failed try: curl's message, with the kernel's reason where its verbose LOG
    has one."""
    message = next((line for line in reversed(log.splitlines()) if line.startswith("curl: (")), f"curl exited {status}")
    reasons = [r.strip() for r in _REASON.findall(log)]
    reason = next((r for r in reasons if r not in message), None)
    return f"{message} ({reason})" if reason else message
