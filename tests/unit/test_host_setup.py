"""scripts/host-setup.sh run for real against a made-up machine: a PATH of small stand-ins
(docker, sysctl, sudo, apt-get, uname, id, ...) that write each call to a log and answer as the
scenario says, and SVCLAB_HOSTSETUP_ROOT, a folder that stands in for / (/proc/self/status,
/etc/docker, /usr/sbin/dockerd, /run/systemd). Nothing on the real machine is read or changed:
the only real commands on that PATH are plain text and file tools, and those that write refuse
any path outside the test's folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "host-setup.sh"
CAPBND_FULL = "000001ffffffffff"
CAPBND_NO_SYS_RESOURCE = "000001fffeffffff"   # this CI host's: capability 24 missing

# Real commands the script may use as they are: they read, or print, nothing else.
READ_ONLY = ["awk", "grep", "sed", "head", "tail", "seq", "sleep", "cat", "jq", "dirname", "readlink", "env", "bash"]
# Real commands that write: wrapped so that they refuse any absolute path outside the test folder.
WRITING = ["install", "tee", "mkdir", "nohup"]


class Machine:
    """A made-up machine: stubs on PATH, a folder standing in for /, and the log of every call."""

    def __init__(self, tmp: Path, *, uid: int = 1000, os_name: str = "Linux", sudo: str = "password",
                 docker: str | None = "up", dockerd: str | None = None, watches: int = 524288,
                 instances: int = 512, capbnd: str = CAPBND_FULL, apt: bool = True, systemd: bool = False,
                 dpkg_owner: str | None = None, docker_error: str | None = None):
        self.tmp = tmp
        self.bin = tmp / "bin"          # the stubs
        self.tools = tmp / "tools"      # the real commands allowed
        self.root = tmp / "root"        # stands in for /
        self.state = tmp / "state"      # what the stubs remember between calls
        self.home = tmp / "home"
        self.log = tmp / "calls"
        for d in (self.bin, self.tools, self.root / "proc" / "self", self.root / "var" / "log", self.state, self.home):
            d.mkdir(parents=True)
        self.log.touch()
        (self.root / "proc" / "self" / "status").write_text(f"Name:\tbash\nCapBnd:\t{capbnd}\n")
        if systemd:
            (self.root / "run" / "systemd" / "system").mkdir(parents=True)
        self.env_extra: dict[str, str] = {}
        self._tools()
        self.sysctl = {"fs.inotify.max_user_watches": watches, "fs.inotify.max_user_instances": instances}
        for key, value in self.sysctl.items():
            (self.state / key).write_text(str(value))

        self.stub("uname", f'echo {os_name}')
        self.stub("id", f'case $1 in -u) echo {uid} ;; -un) echo {"root" if uid == 0 else "student"} ;; esac')
        self.stub("sysctl", """
            if [[ $1 == -n ]]; then cat "$STATE/$2"; exit; fi
            [[ $1 == -q ]] && shift
            [[ $1 == -w ]] || exit 2
            [[ -e $STATE/is-root ]] || { echo "sysctl: permission denied on key '${2%=*}'" >&2; exit 1; }
            echo "${2#*=}" > "$STATE/${2%=*}"
        """)
        if uid == 0:
            (self.state / "is-root").touch()
        if sudo == "nopasswd":
            self.stub("sudo", """
                [[ $1 == -n ]] || { echo "[sudo] password for student:" >&2; exit 1; }
                shift; touch "$STATE/is-root"; "$@"; rc=$?; rm -f "$STATE/is-root"; exit $rc
            """)
        elif sudo == "password":
            self.stub("sudo", """
                if [[ $1 == -n ]]; then echo "sudo: a password is required" >&2; exit 1; fi
                echo "[sudo] password for student:" >&2; exit 1
            """)
        elif sudo == "none":
            self.stub("sudo", 'echo "student is not in the sudoers file." >&2; exit 1')
        if apt:
            # Installing docker.io brings dockerd and the docker CLI, as the package does.
            self.stub("apt-get", f"""
                [[ -e $STATE/is-root ]] || {{ echo "E: Could not open lock file - are you root?" >&2; exit 100; }}
                if [[ $1 == install && " $* " == *" docker.io "* ]]; then
                    mkdir -p {self.root}/usr/sbin
                    cp {self.tmp}/dockerd.stub {self.root}/usr/sbin/dockerd
                    cp {self.tmp}/docker.stub {self.bin}/docker
                fi
            """)
        self.stub("pgrep", '[[ -e $STATE/docker-up ]]')
        self.stub("pkill", 'rm -f "$STATE/docker-up"')
        self.stub("systemctl", '[[ $1 == restart || $1 == start ]] && touch "$STATE/docker-up"; true')
        if dpkg_owner:
            self.stub("dpkg-query", f'echo "{dpkg_owner}: $2"')
        else:
            self.stub("dpkg-query", 'echo "dpkg-query: no path found matching pattern $2" >&2; exit 1')

        error = docker_error or "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
        self.write_stub(self.tmp / "docker.stub", "docker", f"""
            up() {{ [[ -e $STATE/docker-up ]]; }}
            case $1 in
              info)
                up || {{ echo "Client:"; echo "ERROR: {error}" >&2; exit 1; }}
                [[ ${{2:-}} == --format ]] && echo 2 || echo "Server Version: 26.1.5" ;;
              version) up && echo 26.1.5 ;;
              images) cat "$STATE/images" 2>/dev/null || true ;;
              # An image listed in one-program-images has neither /bin/true nor /bin/sh.
              run) [[ -e $STATE/privileged-works ]] || exit 126
                   for arg in "$@"; do [[ -e "$STATE/one-program-images" ]] && [[ "$(cat "$STATE/one-program-images")" == *"$arg"* ]] && [[ $arg == *:* ]] && exit 127; done; true ;;
            esac
        """)
        self.write_stub(self.tmp / "dockerd.stub", "dockerd", 'touch "$STATE/docker-up"')
        if docker:
            shutil.copy(self.tmp / "docker.stub", self.bin / "docker")
        if docker == "up":
            (self.state / "docker-up").touch()
        if dockerd:   # where the dockerd of an installed engine lives: /usr/sbin (docker.io), /usr/bin (docker-ce)
            target = self.root / dockerd.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.tmp / "dockerd.stub", target)

    def write_stub(self, path: Path, name: str, body: str) -> None:
        # The stubs' own file tools, outside the PATH the script sees.
        helpers = "".join(f'{tool}() {{ {shutil.which(tool)} "$@"; }}\n' for tool in ("cp", "touch", "rm", "mkdir", "cat"))
        path.write_text(f'#!/bin/bash\nSTATE={self.state}\n{helpers}printf "%s\\n" "{name} $*" >> {self.log}\n'
                        + textwrap.dedent(body).strip("\n") + "\n")
        path.chmod(0o755)

    def stub(self, name: str, body: str) -> None:
        self.write_stub(self.bin / name, name, body)

    def _tools(self) -> None:
        for name in READ_ONLY:
            (self.tools / name).symlink_to(shutil.which(name))
        for name in WRITING:
            real = shutil.which(name)
            (self.tools / name).write_text(f"""#!/bin/bash
for arg in "$@"; do
  case $arg in /*) [[ $arg == {self.tmp}/* || $arg == {ROOT}/* || $arg == /dev/null ]] || {{ echo "test: {name} refuses $arg" >&2; exit 99; }} ;; esac
done
exec {real} "$@"
""")
            (self.tools / name).chmod(0o755)

    def run(self, script: Path = SCRIPT, **env: str) -> subprocess.CompletedProcess:
        base = {"PATH": f"{self.bin}:{self.tools}", "HOME": str(self.home), "LANG": "C",
                "XDG_RUNTIME_DIR": str(self.tmp / "run-user"), "SVCLAB_HOSTSETUP_ROOT": str(self.root)}
        return subprocess.run(["bash", str(script)], env={**base, **self.env_extra, **env},
                              capture_output=True, text=True, timeout=60)

    def calls(self, name: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [line for line in lines if name is None or line.split()[0] == name]

    def value(self, key: str) -> int:
        return int((self.state / key).read_text())


def missing_block(stderr: str) -> str:
    """The report of what is missing, without the [host-setup] prefixes."""
    return "\n".join(line.removeprefix("[host-setup] ") for line in stderr.splitlines())


# ------------------------------------------------------------------ Linux, Docker already works

def test_ready_laptop_changes_nothing(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="password")
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("sudo") == [] and m.calls("apt-get") == []
    assert [c for c in m.calls("sysctl") if "-w" in c] == []
    assert "docker 26.1.5 answers; cgroup 2" in run.stderr
    assert "not ready" not in run.stderr


def test_low_limits_without_passwordless_sudo_say_how_and_exit_3(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="password", instances=128)
    run = m.run()
    assert run.returncode == 3, run.stderr
    # sudo was asked only whether it needs a password, never to run anything that could prompt.
    assert m.calls("sudo") == ["sudo -n true"]
    assert [c for c in m.calls("sysctl") if "-w" in c] == []
    assert m.value("fs.inotify.max_user_instances") == 128
    text = missing_block(run.stderr)
    assert "fs.inotify.max_user_instances is 128" in text
    assert "    sudo sysctl -w fs.inotify.max_user_instances=512\n" in text + "\n"
    assert "max_user_watches=524288\n" not in text.split("keep them")[0]   # only the low one is raised
    assert ("printf '%s\\n' fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512"
            " | sudo tee /etc/sysctl.d/99-svclab.conf") in text
    assert "[sudo] password" not in run.stderr and "a password is required" not in run.stderr
    assert run.stderr.rstrip().endswith("then run this again.")


def test_user_without_any_sudo_gets_the_same_report(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="none", watches=8192, instances=128)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert m.calls("sudo") == ["sudo -n true"]
    text = missing_block(run.stderr)
    assert "max_user_watches is 8192, fs.inotify.max_user_instances is 128" in text
    assert "sudo sysctl -w fs.inotify.max_user_watches=524288" in text
    assert "sudo sysctl -w fs.inotify.max_user_instances=512" in text
    assert "only as root or with passwordless sudo" in text


def test_passwordless_sudo_raises_the_limits(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="nopasswd", watches=8192, instances=128)
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("sudo") == ["sudo -n true",
                               "sudo -n sysctl -q -w fs.inotify.max_user_watches=524288",
                               "sudo -n sysctl -q -w fs.inotify.max_user_instances=512"]
    assert m.value("fs.inotify.max_user_watches") == 524288 and m.value("fs.inotify.max_user_instances") == 512
    assert "raised fs.inotify.max_user_instances from 128 to 512" in run.stderr
    assert m.calls("apt-get") == []


def test_root_whose_sysctl_write_fails_reports_it(tmp_path):
    m = Machine(tmp_path, uid=0, instances=128)
    m.stub("sysctl", '[[ $1 == -n ]] && { cat "$STATE/$2"; exit; }; echo "sysctl: permission denied" >&2; exit 1')
    run = m.run()
    assert run.returncode == 3, run.stderr
    text = missing_block(run.stderr)
    assert "    sysctl -w fs.inotify.max_user_instances=512" in text   # root: no sudo in the command
    assert "setting it failed here" in text
    assert m.calls("sudo") == []


# ------------------------------------------------------------------ macOS

def test_macos_only_checks_docker(tmp_path):
    m = Machine(tmp_path, uid=501, os_name="Darwin", sudo="password", instances=128)
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("sysctl") == [] and m.calls("sudo") == [] and m.calls("apt-get") == []
    assert "docker 26.1.5 answers" in run.stderr


def test_macos_docker_desktop_not_running(tmp_path):
    m = Machine(tmp_path, uid=501, os_name="Darwin", docker="down")
    (m.root / "Applications" / "Docker.app").mkdir(parents=True)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "Docker Desktop is installed but does not answer" in run.stderr and "    open -a Docker" in run.stderr
    assert m.calls("sysctl") == [] and m.calls("sudo") == [] and m.calls("apt-get") == []


def test_macos_colima_context_stopped(tmp_path):
    m = Machine(tmp_path, uid=501, os_name="Darwin", docker="down")
    (m.home / ".docker").mkdir()
    (m.home / ".docker" / "config.json").write_text(json.dumps({"auths": {}, "currentContext": "colima"}))
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "the Docker context 'colima' does not answer" in run.stderr and "    colima start" in run.stderr


def test_macos_without_docker_says_what_to_install(tmp_path):
    m = Machine(tmp_path, uid=501, os_name="Darwin", docker=None)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "no Docker is installed" in run.stderr and "brew install colima docker && colima start" in run.stderr
    assert m.calls("apt-get") == []


# ------------------------------------------------------------------ a Docker is installed but does not answer

def test_docker_ce_not_answering_is_started_not_replaced(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="password", docker="down", dockerd="/usr/bin/dockerd",
                dpkg_owner="docker-ce-cli", systemd=True)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert m.calls("apt-get") == [] and m.calls("dockerd") == [] and m.calls("systemctl") == []
    assert m.calls("sudo") == ["sudo -n true"]
    text = missing_block(run.stderr)
    assert f"Docker is installed ({m.root}/usr/bin/dockerd) but does not answer" in text
    assert "    sudo systemctl start docker" in text


def test_root_starts_an_installed_dockerd_and_installs_nothing(tmp_path):
    # This CI host after a Docker restart: dockerd installed and stopped, no systemd.
    m = Machine(tmp_path, uid=0, docker="down", dockerd="/usr/sbin/dockerd")
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("apt-get") == [] and m.calls("sudo") == []
    assert m.calls("dockerd") == ["dockerd "]
    assert f"starting dockerd (log: {m.root}/var/log/svclab-dockerd.log)" in run.stderr


def test_docker_ce_with_systemd_and_passwordless_sudo_is_restarted_by_systemd(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="nopasswd", docker="down", dockerd="/usr/bin/dockerd", systemd=True)
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("sudo") == ["sudo -n true", "sudo -n systemctl restart docker"]
    assert m.calls("apt-get") == [] and m.calls("dockerd") == [] and m.calls("pkill") == []


def test_user_not_in_the_docker_group(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="nopasswd", docker="down", dockerd="/usr/bin/dockerd",
                docker_error="permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock")
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "    sudo usermod -aG docker $USER" in run.stderr
    # A running dockerd is never restarted for a permission problem.
    assert m.calls("sudo") == [] and m.calls("pkill") == [] and m.calls("dockerd") == []


def test_rootless_docker_not_running(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="nopasswd", docker="down", dockerd="/usr/bin/dockerd")
    unit = m.home / ".config" / "systemd" / "user" / "docker.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "    systemctl --user start docker" in run.stderr
    assert f"export DOCKER_HOST=unix://{tmp_path}/run-user/docker.sock" in run.stderr
    assert m.calls("apt-get") == [] and m.calls("dockerd") == [] and m.calls("sudo") == []


def test_docker_host_that_does_not_answer_is_not_replaced(tmp_path):
    m = Machine(tmp_path, uid=0, docker="down")
    run = m.run(DOCKER_HOST="tcp://10.0.0.5:2376")
    assert run.returncode == 3, run.stderr
    assert "DOCKER_HOST=tcp://10.0.0.5:2376 does not answer" in run.stderr and "    unset DOCKER_HOST" in run.stderr
    assert m.calls("apt-get") == [] and m.calls("dockerd") == []


def test_packaged_docker_cli_without_dockerd_is_not_replaced(tmp_path):
    m = Machine(tmp_path, uid=0, docker="down", dpkg_owner="docker-ce-cli")
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert f"the docker command {m.bin}/docker (package docker-ce-cli) finds no engine" in run.stderr
    assert m.calls("apt-get") == []


# ------------------------------------------------------------------ no Docker at all

def test_nothing_installed_root_debian_installs_docker_io(tmp_path):
    m = Machine(tmp_path, uid=0, docker=None)
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("apt-get") == ["apt-get update -qq", "apt-get install -y -qq docker.io jq"]
    assert m.calls("dockerd") == ["dockerd "]
    assert "installing Debian's docker.io" in run.stderr and "docker 26.1.5 answers" in run.stderr
    assert not (m.root / "etc" / "docker" / "daemon.json").exists()   # full capabilities: no wrapper


def test_nothing_installed_without_sudo_says_how_to_install(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="password", docker=None)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert m.calls("apt-get") == [] and m.calls("sudo") == ["sudo -n true"]
    assert "    sudo apt-get install docker.io" in run.stderr


def test_nothing_installed_on_another_distribution(tmp_path):
    m = Machine(tmp_path, uid=0, docker=None, apt=False)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "https://docs.docker.com/engine/install/" in run.stderr


def test_ci_host_gets_docker_io_the_runtime_wrapper_and_limits(tmp_path):
    """This CI host: root, Debian, a docker binary in /usr/local/bin that no package owns and no
    engine, CAP_SYS_RESOURCE missing from the bounding set, kernel-default inotify limits."""
    m = Machine(tmp_path, uid=0, docker="down", capbnd=CAPBND_NO_SYS_RESOURCE, watches=8192, instances=128)
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert m.calls("sudo") == []
    assert [c for c in m.calls("sysctl") if "-w" in c] == ["sysctl -q -w fs.inotify.max_user_watches=524288",
                                                           "sysctl -q -w fs.inotify.max_user_instances=512"]
    assert m.calls("apt-get") == ["apt-get update -qq", "apt-get install -y -qq docker.io jq"]
    wrapper = m.root / "usr" / "local" / "libexec" / "svclab" / "runc-without-sys-resource"
    assert wrapper.read_bytes() == (ROOT / "scripts" / "host" / "runc-without-sys-resource").read_bytes()
    assert os.access(wrapper, os.X_OK)
    daemon = json.loads((m.root / "etc" / "docker" / "daemon.json").read_text())
    assert daemon == {"runtimes": {"svclab-runc": {"path": str(wrapper)}}, "default-runtime": "svclab-runc"}
    assert m.calls("dockerd") == ["dockerd "]
    assert "registered svclab-runc" in run.stderr and "docker 26.1.5 answers" in run.stderr


def test_a_one_program_image_does_not_pass_for_a_privileged_failure(tmp_path):
    """The newest images may hold one program and no `true` (svclab's slimmed HAProxy): a run that
    fails for that reason is not taken as `--privileged` failing; the next image is tried."""
    m = Machine(tmp_path, uid=1000, sudo="password", capbnd=CAPBND_NO_SYS_RESOURCE, dockerd="/usr/sbin/dockerd",
                docker="up")
    (m.state / "images").write_text("haproxy:2.6.12\nquay.io/frrouting/frr:8.4.4\ndebian:bookworm\n")
    (m.state / "one-program-images").write_text("haproxy:2.6.12\nquay.io/frrouting/frr:8.4.4\n")
    (m.state / "privileged-works").touch()
    run = m.run()
    assert run.returncode == 0, run.stderr
    assert "lacks CAP_SYS_RESOURCE" not in run.stderr
    runs = [c for c in m.calls("docker") if c.startswith("docker run")]
    assert runs[-1].endswith("debian:bookworm") and len(runs) == 5


def test_wrapper_needed_but_not_allowed(tmp_path):
    m = Machine(tmp_path, uid=1000, sudo="password", capbnd=CAPBND_NO_SYS_RESOURCE, dockerd="/usr/sbin/dockerd")
    (m.state / "images").write_text("debian:bookworm\n")   # privileged run fails (no privileged-works)
    run = m.run()
    assert run.returncode == 3, run.stderr
    assert "lacks CAP_SYS_RESOURCE" in run.stderr and f"    sudo bash {SCRIPT}" in run.stderr
    assert not (m.root / "etc" / "docker").exists() and m.calls("pkill") == [] and m.calls("dockerd") == []


# ------------------------------------------------------------------ env.sh passes the exit code through

def test_env_sh_stops_with_exit_3_and_the_message(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts" / "host").mkdir(parents=True)
    for part in ("env.sh", "host-setup.sh", "host/runc-without-sys-resource"):
        shutil.copy(ROOT / "scripts" / part, checkout / "scripts" / part)
    m = Machine(tmp_path / "machine", uid=1000, sudo="password", instances=128)
    m.stub("python3", 'echo "env.sh went on past host-setup" >&2; exit 1')
    proc = subprocess.run(["bash", "-c", f"source {checkout}/scripts/env.sh; echo went-on"],
                          env={"PATH": f"{m.bin}:{m.tools}", "HOME": str(m.home), "SVCLAB_USE_TESTBED": "0",
                               "SVCLAB_HOSTSETUP_ROOT": str(m.root)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "sudo sysctl -w fs.inotify.max_user_instances=512" in proc.stderr
    assert proc.stderr.rstrip().endswith("stopped: this machine is not ready for svclab (see above)")
    assert "went-on" not in proc.stdout and "went on" not in proc.stderr
    assert not (checkout / ".venv").exists()


@pytest.mark.parametrize("bad", ["sudo", "apt-get"])
def test_the_stand_ins_are_the_only_ones_reachable(tmp_path, bad):
    """The PATH the scenarios use offers no real sudo or apt-get to fall back on."""
    m = Machine(tmp_path)
    (m.bin / bad).unlink(missing_ok=True)
    proc = subprocess.run(["bash", "-c", f"command -v {bad}"], env={"PATH": f"{m.bin}:{m.tools}"},
                          capture_output=True, text=True)
    assert proc.returncode != 0
