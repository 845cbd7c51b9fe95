"""A leak counter: a snapshot of everything svclab or kind could leave behind, compared before and
after a test.

It counts, for the cluster names a test uses (all starting with one PREFIX):

- containers, running or not: kind's nodes (label ``io.x-k8s.kind.cluster``), svclab's client
  (label ``svclab.io/cluster``), anything else named after the prefix;
- docker networks named after the prefix or labelled with such a cluster;
- volumes: those mounted by the containers above (recorded whenever a snapshot or ``observe()``
  sees them, so a node's anonymous ``/var`` volume is still counted after its container is gone),
  and volumes created since the counter started that no container uses;
- kind clusters (``kind get clusters``);
- clusters, contexts and users in svclab's own kubeconfig files, and in ``~/.kube/config``, whose
  digest is part of the snapshot too: svclab must never write it;
- files and folders under the test's svclab state folder (``$XDG_STATE_HOME/svclab``).

Other people's clusters on the same Docker engine are never counted: only names and labels that
start with the prefix, and volumes no container holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import signal
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import docker
import yaml
from docker.errors import NotFound

__all__ = ["Snapshot", "LeakCounter", "diff", "kind_binary", "home_kubeconfig_digest", "cli_env", "svclab", "Run",
           "Running"]

KIND_LABEL = "io.x-k8s.kind.cluster"
SVCLAB_LABEL = "svclab.io/cluster"
MANAGED_LABEL = "svclab.io/managed"


def kind_binary() -> str:
    own = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "svclab" / "bin" / "kind"
    return str(own) if own.exists() else "kind"


def home_kubeconfig() -> Path:
    return Path(os.environ.get("HOME", str(Path.home()))) / ".kube" / "config"


def home_kubeconfig_digest() -> str:
    path = home_kubeconfig()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    containers: frozenset[str]       # "name id12 status"
    networks: frozenset[str]         # "name id12"
    volumes: frozenset[str]
    kind_clusters: frozenset[str]
    kubeconfigs: frozenset[str]      # "file: clusters/NAME" (contexts/, users/)
    home_kubeconfig: frozenset[str]  # "sha256 …" and the prefix's entries in ~/.kube/config
    state: frozenset[str]            # paths relative to $XDG_STATE_HOME/svclab

    def nonempty(self) -> dict[str, list[str]]:
        """What exists of the prefix's objects at all (the home kubeconfig digest aside)."""
        out = {}
        for field in dataclasses.fields(self):
            items = [i for i in getattr(self, field.name) if not i.startswith("sha256 ")]
            if items:
                out[field.name] = sorted(items)
        return out


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """What appeared ("+ kind: item") and disappeared ("- kind: item") between two snapshots."""
    changes = []
    for field in dataclasses.fields(Snapshot):
        b, a = getattr(before, field.name), getattr(after, field.name)
        changes += [f"+ {field.name}: {item}" for item in sorted(a - b)]
        changes += [f"- {field.name}: {item}" for item in sorted(b - a)]
    return changes


def _kubeconfig_entries(path: Path, prefix: str | None = None) -> set[str]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        return {f"{path}: unreadable ({type(e).__name__})"}
    entries = set()
    for section in ("clusters", "contexts", "users"):
        for item in data.get(section) or []:
            name = str((item or {}).get("name", ""))
            if prefix is None or prefix in name:
                entries.add(f"{path}: {section}/{name}")
    return entries


class LeakCounter:
    """Snapshots of the objects of clusters whose names start with PREFIX, with svclab's state in
    STATE_HOME (the test's $XDG_STATE_HOME)."""

    def __init__(self, prefix: str, state_home: Path):
        self.prefix = prefix
        self.state_home = Path(state_home)
        self.dc = docker.from_env(timeout=60)
        self.volumes_at_start = self._all_volumes()
        self.known_volumes: set[str] = set()   # ever mounted by one of the prefix's containers

    # -------------------------------------------------------------- docker

    def _mine(self, name: str, labels: dict[str, str]) -> bool:
        return (name.startswith(self.prefix)
                or name.startswith(f"svclab-client-{self.prefix}")
                or labels.get(KIND_LABEL, "").startswith(self.prefix)
                or labels.get(SVCLAB_LABEL, "").startswith(self.prefix))

    def _all_volumes(self) -> set[str]:
        return {v["Name"] for v in (self.dc.api.volumes().get("Volumes") or [])}

    def _containers(self) -> tuple[list[dict], set[str]]:
        """(the prefix's containers, every volume any container mounts)."""
        mine, mounted = [], set()
        for c in self.dc.api.containers(all=True):
            names = [n.lstrip("/") for n in c.get("Names") or []]
            volumes = {m["Name"] for m in c.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")}
            mounted |= volumes
            if any(self._mine(n, c.get("Labels") or {}) for n in names):
                # The list leaves out the mounts of a container still being created: ask it.
                try:
                    details = self.dc.api.inspect_container(c["Id"])
                    volumes |= {m["Name"] for m in details.get("Mounts") or [] if m.get("Type") == "volume"}
                except NotFound:
                    pass
                mounted |= volumes
                mine.append({"name": names[0] if names else c["Id"][:12], "id": c["Id"][:12],
                             "state": c.get("State", ""), "volumes": volumes})
        return mine, mounted

    def observe(self) -> None:
        """Records the volumes the prefix's containers mount now (call it while a cluster is being
        made, so that volumes of nodes that exist only briefly are counted)."""
        mine, _ = self._containers()
        for c in mine:
            self.known_volumes |= c["volumes"]

    def _volumes(self, mine: list[dict], mounted: set[str], settle: float) -> set[str]:
        for c in mine:
            self.known_volumes |= c["volumes"]
        present = self._all_volumes()
        held = {v for c in mine for v in c["volumes"]} | (self.known_volumes & present)
        # A volume made during the test that no container holds is a leak, unless it belongs to a
        # container someone else is removing right now: look again for a while before counting it.
        deadline = time.monotonic() + settle
        while True:
            stray = (present - self.volumes_at_start) - mounted - held
            if not stray or time.monotonic() >= deadline:
                return held | {f"{v} (unused, created during the test)" for v in stray}
            time.sleep(1)
            present = self._all_volumes()
            _, mounted = self._containers()

    def _networks(self) -> set[str]:
        out = set()
        for n in self.dc.api.networks():
            if self._mine(n["Name"], n.get("Labels") or {}):
                out.add(f"{n['Name']} {n['Id'][:12]}")
        return out

    # -------------------------------------------------------------- kind, kubeconfig, state

    def _kind_clusters(self) -> set[str]:
        proc = subprocess.run([kind_binary(), "get", "clusters"], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"kind get clusters exited {proc.returncode}: {proc.stderr}")
        return {line.strip() for line in proc.stdout.splitlines() if line.strip().startswith(self.prefix)}

    @property
    def state_dir(self) -> Path:
        return self.state_home / "svclab"

    def _state(self) -> set[str]:
        root = self.state_dir
        if not root.exists():
            return set()
        out = set()
        for path in root.rglob("*"):
            rel = path.relative_to(root)
            # svclab/ and svclab/clusters/ are the folders every cluster shares; what is below counts.
            if path.is_dir() and rel.parts == ("clusters",):
                continue
            out.add(str(rel) + ("/" if path.is_dir() else ""))
        return out

    def _kubeconfigs(self) -> set[str]:
        entries = set()
        for path in sorted((self.state_dir / "clusters").glob("*/kubeconfig")):
            entries |= _kubeconfig_entries(path)
        return entries

    def _home_kubeconfig(self) -> set[str]:
        path = home_kubeconfig()
        entries = {f"sha256 {home_kubeconfig_digest()}"}
        if path.exists():
            entries |= _kubeconfig_entries(path, self.prefix)
        return entries

    # -------------------------------------------------------------- snapshots

    def snapshot(self, *, settle: float = 20.0) -> Snapshot:
        mine, mounted = self._containers()
        return Snapshot(
            containers=frozenset(f"{c['name']} {c['id']} {c['state']}" for c in mine),
            networks=frozenset(self._networks()),
            volumes=frozenset(self._volumes(mine, mounted, settle)),
            kind_clusters=frozenset(self._kind_clusters()),
            kubeconfigs=frozenset(self._kubeconfigs()),
            home_kubeconfig=frozenset(self._home_kubeconfig()),
            state=frozenset(self._state()),
        )

    def node_ids(self, cluster: str) -> dict[str, str]:
        """{node container name: full id} of one kind cluster."""
        found = self.dc.api.containers(all=True, filters={"label": f"{KIND_LABEL}={cluster}"})
        return {c["Names"][0].lstrip("/"): c["Id"] for c in found if c.get("Names")}

    def remove_everything(self, keep: Iterable[str] = ()) -> list[str]:
        """Last resort after a failed test: deletes what is left of the prefix's clusters and
        networks except those named in KEEP, so that one failure does not spill into the next
        test. Returns what it removed."""
        keep = set(keep)
        removed = []
        for name in self._kind_clusters() - keep:
            subprocess.run([kind_binary(), "delete", "cluster", "--name", name, "--kubeconfig",
                            str(self.state_home / "kind-cleanup.kubeconfig")], capture_output=True, timeout=300)
            removed.append(f"kind cluster {name}")
        mine, _ = self._containers()
        for c in mine:
            labels = {c["name"], c["name"].removeprefix("svclab-client-")}
            if any(c["name"].startswith(k + "-") or k in labels for k in keep):
                continue
            try:
                self.dc.api.remove_container(c["id"], force=True, v=True)
                removed.append(c["name"])
            except NotFound:
                pass
        for n in self._networks():
            if n.split()[0] in keep:
                continue
            try:
                self.dc.api.remove_network(n.split()[1])
                removed.append(n)
            except docker.errors.APIError:
                pass   # still in use
        for v in self.known_volumes & self._all_volumes():
            try:
                self.dc.api.remove_volume(v, force=True)
                removed.append(v)
            except docker.errors.APIError:
                pass
        return removed


# ------------------------------------------------------------------ running svclab as its user does

ROOT = Path(__file__).resolve().parents[2]
PROGRESS = (" • ", " ! ", " ✓ ", "   ")   # step, warning, done and verbose command lines


def cli_env(state_home: Path, **extra: str) -> dict[str, str]:
    """The environment of one test's svclab: its own state folder, the test bed's node image and
    mirror from the caller's environment, and no other SVCLAB_* setting or svclab.yaml."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SVCLAB_") or k in ("SVCLAB_NODE_IMAGE", "SVCLAB_MIRROR")}
    env["XDG_STATE_HOME"] = str(state_home)
    env.update(extra)
    return env


@dataclasses.dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        """stderr without progress lines: what svclab reports as wrong."""
        return [line for line in self.stderr.splitlines() if line.strip() and not line.startswith(PROGRESS)]

    @property
    def steps(self) -> list[str]:
        return [line[3:] for line in self.stderr.splitlines() if line.startswith(" • ")]

    def __str__(self) -> str:
        return (f"svclab {' '.join(self.args)} exited {self.returncode} after {self.seconds:.0f}s\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


def svclab(*args: str, env: dict[str, str], cwd: Path, timeout: float = 900) -> Run:
    """Runs `python -m svclab ARGS` in CWD (never the checkout, whose svclab.yaml would count)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
    return Run(tuple(args), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """`python -m svclab ARGS` in its own process group (as a shell runs a foreground command),
    its stderr read line by line as it appears."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path):
        self.args = args
        self.started = time.monotonic()
        # A session of its own, with Ctrl-C's default action restored: a test runner started in
        # the background inherits SIGINT ignored, which a terminal's foreground job never has.
        self.proc = subprocess.Popen([sys.executable, "-m", "svclab", *args], env=env, cwd=cwd, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=_sigint_default)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, False), daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self, stream, into: list[str], tell: bool) -> None:
        for line in stream:
            into.append(line)
            if tell:
                self.lines.put(line.rstrip("\n"))
        if tell:
            self.lines.put(None)

    def wait_for_steps(self, count: int, *, timeout: float, tick=None) -> list[str]:
        """Waits until COUNT step lines have appeared; returns them. Fails when the process ends
        first or TIMEOUT passes. TICK is called at least once a second meanwhile."""
        deadline = time.monotonic() + timeout
        steps: list[str] = []
        while len(steps) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(steps)} of {count} steps within {timeout:.0f}s: {steps}")
            try:
                line = self.lines.get(timeout=min(1.0, left))
            except queue.Empty:
                line = ""
            if line is None:
                raise AssertionError(f"svclab ended after {len(steps)} of {count} steps:\n{''.join(self.stderr)}")
            if line.startswith(" • "):
                steps.append(line[3:])
            if tick:
                tick()
        return steps

    def signal(self, sig: int) -> None:
        """Sends SIG to the whole process group, as a terminal does for Ctrl-C (SIGINT)."""
        os.killpg(self.proc.pid, sig)

    def finish(self, *, timeout: float, tick=None) -> Run:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                self.signal(signal.SIGKILL)
                self.proc.wait(30)
                raise AssertionError(f"svclab {' '.join(self.args)} still ran after {timeout:.0f}s: killed\n"
                                     + "".join(self.stderr))
            if tick:
                tick()
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                pass
        for t in self._readers:
            t.join(30)
        return Run(self.args, self.proc.returncode, "".join(self.stdout), "".join(self.stderr),
                   time.monotonic() - self.started)


def installed_copy(dest: Path) -> Path:
    """A copy of the package under DEST laid out as it is installed (the labs and manifests as
    package data inside it), for tests that change a lab: `python -m svclab` run from DEST uses
    the copy. Returns the copy's labs folder."""
    shutil.copytree(ROOT / "svclab", dest / "svclab", ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("labs", "manifests"):
        shutil.copytree(ROOT / part, dest / "svclab" / "builtin" / part, ignore=shutil.ignore_patterns("__pycache__"))
    return dest / "svclab" / "builtin" / "labs"
