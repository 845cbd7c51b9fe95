"""The outside client's command sessions, against a real /bin/sh behind a socket that frames its
output the way Docker's attach stream does, and the dial script run by that shell against a
real HTTP server on loopback."""

import glob
import http.server
import socket
import struct
import subprocess
import threading

import pytest

from svclab.errors import SvclabError
from svclab.outside import OutsideClient, Session, dial_script, frame_payloads, parse_dial


def _frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class FramedShell:
    """A socket whose far end is a real `sh`: what is sent is its stdin, its stdout comes back
    in Docker's multiplexed frames (split at odd places, to exercise the reassembly)."""

    def __init__(self):
        self.ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(["/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.opened = 0

        def pump_in():
            try:
                while data := theirs.recv(4096):
                    self.proc.stdin.write(data)
                    self.proc.stdin.flush()
                self.proc.stdin.close()
            except OSError:   # the shell ended first
                pass

        def pump_out():
            try:
                while data := self.proc.stdout.read1(4096):
                    framed = _frame(1, data)
                    for i in range(0, len(framed), 5):   # frames arrive in pieces
                        theirs.sendall(framed[i:i + 5])
                theirs.shutdown(socket.SHUT_WR)   # as Docker ends the stream when the process exits
            except OSError:   # svclab closed the session first
                pass

        threading.Thread(target=pump_in, daemon=True).start()
        threading.Thread(target=pump_out, daemon=True).start()

    def open(self):
        self.opened += 1
        return self.ours


def test_frames_are_joined_and_partial_ones_kept():
    buffer = bytearray(_frame(1, b"hello ") + _frame(2, b"world") + _frame(1, b"par"))
    del buffer[-1]
    assert frame_payloads(buffer) == b"hello world"
    assert len(buffer) == 8 + 2    # the incomplete frame stays for the next read
    buffer += b"r"
    assert frame_payloads(buffer) == b"par"
    assert buffer == bytearray()


def test_session_returns_output_and_exit_status_of_each_command():
    session = Session(FramedShell().open)
    assert session.run("echo one; echo two", 5) == (0, "one\ntwo\n")
    assert session.run("echo oops >&2; exit_code=3; (exit $exit_code)", 5) == (3, "oops\n")
    # The shell keeps its state between commands: it is one session.
    session.run("x=42", 5)
    assert session.run("echo $x", 5) == (0, "42\n")


def test_session_output_may_look_like_a_marker_without_the_nonce():
    session = Session(FramedShell().open)
    status, output = session.run("printf '\\036deadbeef 7\\nafter'", 5)
    assert (status, output) == (0, "\x1edeadbeef 7\nafter")


def test_a_command_cannot_read_the_session_input():
    session = Session(FramedShell().open)
    assert session.run("cat", 5) == (0, "")   # stdin is /dev/null: it does not eat the next command
    assert session.run("echo next", 5) == (0, "next\n")


def test_a_slow_command_times_out_and_closes_the_session():
    session = Session(FramedShell().open)
    with pytest.raises(SvclabError, match="did not finish a command within 0.3s"):
        session.run("sleep 5", 0.3)
    assert session.closed


def test_a_shell_that_ends_is_reported():
    session = Session(FramedShell().open)
    with pytest.raises(SvclabError, match="shell ended"):
        session.run("exit 0", 5)
    assert session.closed


class _Client(OutsideClient):
    def __init__(self, max_sessions=2):
        super().__init__(dc=None, container="test", max_sessions=max_sessions)
        self.shells = []

    def _open_socket(self):
        shell = FramedShell()
        self.shells.append(shell)
        return shell.open()


def test_pool_reuses_sessions_and_replaces_broken_ones():
    client = _Client()
    assert client.run("echo a", timeout=5) == (0, "a\n")
    assert client.run("echo b", timeout=5) == (0, "b\n")
    assert len(client.shells) == 1
    with pytest.raises(SvclabError):
        client.run("sleep 5", timeout=0.2)
    assert client.run("echo c", timeout=5) == (0, "c\n")
    assert len(client.shells) == 2


def test_pool_runs_commands_side_by_side_up_to_its_size():
    client = _Client(max_sessions=3)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(client.run(f"sleep 0.3; echo {i}", timeout=5)))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [(0, f"{i}\n") for i in range(6)]
    assert len(client.shells) == 3


def test_pool_waits_for_a_free_session_only_until_its_deadline():
    client = _Client(max_sessions=1)
    busy = threading.Thread(target=lambda: client.run("sleep 1", timeout=5))
    busy.start()
    threading.Event().wait(0.2)
    with pytest.raises(SvclabError, match="stayed busy"):
        client.run("echo late", timeout=0.2)
    busy.join(5)


@pytest.fixture
def echo_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/missing":
                self.send_error(404)
                return
            body = f"{self.headers.get('Host')} {self.headers.get('Connection')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _run(script: str) -> str:
    return Session(FramedShell().open).run(script, 30)[1]


def test_dial_script_counts_answers_and_errors(echo_server):
    logs_before = set(glob.glob("/tmp/svclab-curl-*"))
    url = f"http://127.0.0.1:{echo_server}/hostname"
    got = parse_dial(_run(dial_script(url, tries=3, timeout=2, headers=("Host: a.shops.svclab.test",))))
    assert got == {"responses": ["a.shops.svclab.test close"] * 3, "errors": []}
    # Nothing listens on port 1: each try is an error with curl's own words.
    refused = parse_dial(_run(dial_script("http://127.0.0.1:1/hostname", tries=2, timeout=2)))
    assert refused["responses"] == [] and len(refused["errors"]) == 2
    assert refused["errors"][0].startswith("curl: (7) Failed to connect to 127.0.0.1 port 1")
    assert refused["errors"][0].endswith("(Connection refused)")   # the kernel's reason, from curl's verbose log
    assert set(glob.glob("/tmp/svclab-curl-*")) == logs_before   # each script removes its curl log


def test_dial_script_counts_http_errors_only_when_asked(echo_server):
    url = f"http://127.0.0.1:{echo_server}/missing"
    assert len(parse_dial(_run(dial_script(url, tries=1, timeout=2)))["responses"]) == 1
    failed = parse_dial(_run(dial_script(url, tries=1, timeout=2, http_errors_fail=True)))
    assert failed["responses"] == [] and "404" in failed["errors"][0]


def test_dial_script_refuses_quotes_and_newlines():
    for bad in ("http://1.2.3.4/'; rm -rf /; '", "http://1.2.3.4/\nid"):
        with pytest.raises(SvclabError, match="refusing"):
            dial_script(bad, tries=1, timeout=1)
    with pytest.raises(SvclabError):
        dial_script("http://1.2.3.4/", tries=1, timeout=1, headers=("Host: x'y",))
