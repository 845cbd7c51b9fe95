"""`svclab doctor`'s IPVS row: present only when kube_proxy_mode is ipvs (gather then puts what
ipvs.look found into the facts), failing when the kernel of Docker's engine has no IPVS."""

from svclab.doctor import FAIL, OK, WARN, judge

PINS = {"kind_pin": "v0.30.0", "kube_pin": "v1.34.5"}
FACTS = {"docker_version": "27.5.1", "os": "linux", "arch": "amd64"}   # the other rows do not matter here


def ipvs_row(found):
    rows = [f for f in judge(FACTS | {"ipvs": found}, **PINS) if f.check == "ipvs"]
    assert len(rows) == 1
    return rows[0]


def test_no_ipvs_row_unless_the_mode_is_ipvs():
    assert not [f for f in judge(FACTS, **PINS) if f.check == "ipvs"]


def test_loaded_ipvs_is_ok():
    row = ipvs_row({"kernel": "6.8.0-52-generic", "present": ["/proc/net/ip_vs", "/sys/module/ip_vs"], "error": None})
    assert row.status == OK and row.detail == "kernel 6.8.0-52-generic: IPVS is loaded (/proc/net/ip_vs, /sys/module/ip_vs)"


def test_missing_ipvs_fails_with_the_fix():
    row = ipvs_row({"kernel": "6.18.44", "present": [], "error": None})
    assert row.status == FAIL
    assert "no /proc/net/ip_vs, no /sys/module/ip_vs" in row.detail and "refuses" in row.detail
    assert "`sudo modprobe ip_vs`" in row.fix and "nftables or iptables" in row.fix


def test_not_looking_is_a_warning():
    row = ipvs_row({"kernel": "", "present": [], "error": "no local image to look with"})
    assert row.status == WARN and "no local image to look with" in row.detail and row.fix
