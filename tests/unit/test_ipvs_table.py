"""Reading kube-proxy's IPVS table: both parsers, the filter down to one Service, and how lab.rules
shows it.

The samples are written by hand in the formats ipvsadm and the kernel document (ipvsadm(8)'s
listing, net/netfilter/ipvs/ip_vs_ctl.c's /proc/net/ip_vs): this host has no IPVS to record
them from. Both describe one node's table: the kubernetes and kube-dns Services, demo/web
(LoadBalancer 172.18.255.200, nodePort 30080, node address 172.18.0.2, two endpoints), demo/web-admin,
demo/shop (sessionAffinity ClientIP) and demo/empty (no endpoints).
"""

import dataclasses

import pytest

from svclab.ipvs import RealServer, VirtualServer, format_table, parse_ipvsadm, parse_proc_ip_vs, service_virtual_servers
from svclab.rules import NodeRules, node_rules, render

IPVSADM = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.1:443 rr
  -> 172.18.0.3:6443              Masq    1      0          0
TCP  10.96.0.10:53 rr
  -> 10.244.0.3:53                Masq    1      0          0
  -> 10.244.0.4:53                Masq    1      0          0
TCP  10.96.14.20:80 rr
  -> 10.244.1.7:8080              Masq    1      2          0
  -> 10.244.2.9:8080              Masq    1      0          1
TCP  10.96.14.21:80 rr
  -> 10.244.2.10:8080             Masq    1      0          0
TCP  10.96.14.22:80 rr persistent 10800
  -> 10.244.1.8:80                Masq    1      0          0
TCP  10.96.14.23:80 rr
TCP  172.18.0.2:30080 rr
  -> 10.244.1.7:8080              Masq    1      0          0
  -> 10.244.2.9:8080              Masq    1      0          0
TCP  172.18.255.200:80 rr
  -> 10.244.1.7:8080              Masq    1      0          0
  -> 10.244.2.9:8080              Masq    1      0          0
UDP  10.96.0.10:53 rr
  -> 10.244.0.3:53                Masq    1      0          0
  -> 10.244.0.4:53                Masq    1      0          0
"""

# The same table as the kernel lists it: hex, in its hash order, and the persistent service's netmask.
PROC_IP_VS = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
UDP  0A60000A:0035 rr
  -> 0AF40003:0035      Masq    1      0          0
  -> 0AF40004:0035      Masq    1      0          0
TCP  AC120002:7580 rr
  -> 0AF40107:1F90      Masq    1      0          0
  -> 0AF40209:1F90      Masq    1      0          0
TCP  0A600E14:0050 rr
  -> 0AF40107:1F90      Masq    1      2          0
  -> 0AF40209:1F90      Masq    1      0          1
TCP  0A600001:01BB rr
  -> AC120003:192B      Masq    1      0          0
TCP  0A600E16:0050 rr  persistent 10800 FFFFFFFF
  -> 0AF40108:0050      Masq    1      0          0
TCP  0A600E15:0050 rr
  -> 0AF4020A:1F90      Masq    1      0          0
TCP  0A60000A:0035 rr
  -> 0AF40003:0035      Masq    1      0          0
  -> 0AF40004:0035      Masq    1      0          0
TCP  0A600E17:0050 rr
TCP  AC12FFC8:0050 rr
  -> 0AF40107:1F90      Masq    1      0          0
  -> 0AF40209:1F90      Masq    1      0          0
"""

WEB_ENDPOINTS = (RealServer("10.244.1.7", 8080, "Masq", 1), RealServer("10.244.2.9", 8080, "Masq", 1))
WEB = {
    "metadata": {"namespace": "demo", "name": "web"},
    "spec": {"type": "LoadBalancer", "clusterIP": "10.96.14.20", "clusterIPs": ["10.96.14.20"],
             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}},
}


def by_address(table):
    return sorted(table, key=lambda vs: (vs.protocol, vs.address, vs.port))


def test_ipvsadm_listing_parses_into_virtual_and_real_servers():
    table = parse_ipvsadm(IPVSADM)
    assert len(table) == 9
    assert table[0] == VirtualServer("TCP", "10.96.0.1", 443, "rr", "", (RealServer("172.18.0.3", 6443, "Masq", 1),))
    assert table[2] == VirtualServer("TCP", "10.96.14.20", 80, "rr", "", WEB_ENDPOINTS)
    assert table[4].flags == "persistent 10800"
    assert table[5] == VirtualServer("TCP", "10.96.14.23", 80, "rr")
    assert table[-1].protocol == "UDP" and len(table[-1].real_servers) == 2


def test_the_kernels_hex_listing_gives_the_same_table():
    assert by_address(parse_proc_ip_vs(PROC_IP_VS)) == by_address(parse_ipvsadm(IPVSADM))


def test_lines_as_the_printf_formats_pad_them():
    # ipvsadm's "  -> %-28s %-7s %-6d %-10u %-10u" and the kernel's "%s  %08X:%04X %s %s " leave
    # trailing blanks that hand-written samples lack.
    ipvsadm = "TCP  10.96.0.1:443 rr\n" + "  -> %-28s %-7s %-6d %-10u %-10u\n" % ("172.18.0.3:6443", "Masq", 1, 0, 0)
    proc = ("%s  %08X:%04X %s %s \n" % ("TCP", 0x0A600001, 443, "rr", "")
            + "  -> %08X:%04X      %-7s %-6d %-10d %-10d\n" % (0xAC120003, 6443, "Masq", 1, 0, 0))
    want = [VirtualServer("TCP", "10.96.0.1", 443, "rr", "", (RealServer("172.18.0.3", 6443, "Masq", 1),))]
    assert parse_ipvsadm(ipvsadm) == want
    assert parse_proc_ip_vs(proc) == want


def test_ipv6_and_odd_flags():
    ipvsadm = ("TCP  [fd00:10:96::1]:443 rr ops\n  -> [fc00:f853:ccd:e793::3]:6443 Masq    1      0          0\n"
               "TCP  10.96.14.22:80 rr persistent 10800 mask 255.255.255.0\n"
               "FWM  1 rr\n  -> 10.1.1.1:80                  Route   1      0          0\n")
    proc = ("TCP  [fd00:0010:0096:0000:0000:0000:0000:0001]:01BB rr ops  \n"
            "  -> [fc00:f853:0ccd:e793:0000:0000:0000:0003]:192B      Masq    1      0          0\n"
            "TCP  0A600E16:0050 rr  persistent 10800 FFFFFF00\n"
            "FWM  00000001 rr \n  -> 0A010101:0050      Route   1      0          0\n")
    assert parse_proc_ip_vs(proc) == parse_ipvsadm(ipvsadm) == [
        VirtualServer("TCP", "fd00:10:96::1", 443, "rr", "ops", (RealServer("fc00:f853:ccd:e793::3", 6443, "Masq", 1),)),
        VirtualServer("TCP", "10.96.14.22", 80, "rr", "persistent 10800 mask 255.255.255.0"),
    ]


def test_empty_listings():
    header = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n"
    assert parse_ipvsadm(header) == parse_proc_ip_vs(header) == parse_ipvsadm("") == []


def test_filter_keeps_the_cluster_ip_the_node_ports_and_the_load_balancer_address():
    kept = service_virtual_servers(parse_ipvsadm(IPVSADM), WEB)
    assert [(vs.address, vs.port) for vs in kept] == [("10.96.14.20", 80), ("172.18.0.2", 30080), ("172.18.255.200", 80)]
    assert all(vs.real_servers == WEB_ENDPOINTS for vs in kept)


def test_filter_matches_the_protocol_and_external_ips():
    dns = {"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}
    assert [vs.protocol for vs in service_virtual_servers(parse_ipvsadm(IPVSADM), dns)] == ["UDP"]
    external = {"spec": {"clusterIP": "10.96.14.99", "externalIPs": ["172.18.255.200"], "ports": [{"port": 80}]}}
    assert [vs.address for vs in service_virtual_servers(parse_ipvsadm(IPVSADM), external)] == ["172.18.255.200"]


def test_a_headless_or_unknown_service_keeps_nothing():
    headless = {"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}}
    other = {"spec": {"clusterIP": "10.96.99.99", "ports": [{"port": 80}]}}
    assert service_virtual_servers(parse_ipvsadm(IPVSADM), headless) == []
    assert service_virtual_servers(parse_ipvsadm(IPVSADM), other) == []


def test_format_table_reads_like_ipvsadm():
    shop, empty = parse_ipvsadm(IPVSADM)[4:6]
    assert format_table([shop, empty]) == [
        "TCP  10.96.14.22:80 rr persistent 10800",
        "  -> 10.244.1.8:80                Masq    weight 1",
        "TCP  10.96.14.23:80 rr",
        "  -> (no real servers)",
    ]


@dataclasses.dataclass
class Result:
    exit_code: int
    output: bytes


class Node:
    """A node container that answers the commands node_rules runs."""

    def __init__(self, outputs: dict[str, str], has_ipvsadm: bool):
        self.name = "demo-worker"
        self.outputs = outputs
        self.has_ipvsadm = has_ipvsadm
        self.ran: list[str] = []

    def exec_run(self, argv):
        command = " ".join(argv)
        self.ran.append(command)
        if command == "sh -c command -v ipvsadm":
            return Result(0 if self.has_ipvsadm else 1, b"/usr/sbin/ipvsadm\n" if self.has_ipvsadm else b"")
        return Result(0, self.outputs[command].encode())


NAT = """\
*nat
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "demo/web loadbalancer IP" -d 172.18.255.200/32 -j KUBE-MARK-MASQ
COMMIT
"""


@pytest.mark.parametrize("has_ipvsadm, command", [(True, "ipvsadm -Ln"), (False, "cat /proc/net/ip_vs")])
def test_node_rules_in_ipvs_mode_read_the_ipvs_table(has_ipvsadm, command):
    node = Node({"iptables-save -t nat": NAT, "ipvsadm -Ln": IPVSADM, "cat /proc/net/ip_vs": PROC_IP_VS}, has_ipvsadm)
    rules = node_rules(node, "ipvs", "demo/web", WEB)
    assert command in node.ran and "iptables-save -t filter" not in node.ran
    assert set(rules.sections) == {"nat", "ipvs"}
    assert rules.sections["nat"] == [NAT.splitlines()[3]]
    assert by_address(rules.sections["ipvs"]) == by_address(service_virtual_servers(parse_ipvsadm(IPVSADM), WEB))


def test_node_rules_in_ipvs_mode_need_the_service():
    with pytest.raises(ValueError, match="Service object"):
        node_rules(Node({}, True), "ipvs", "demo/web")


def test_render_shows_virtual_servers_and_explains_an_empty_nat_section():
    kept = service_virtual_servers(parse_ipvsadm(IPVSADM), WEB)
    text = render([NodeRules("n1", "ipvs", {"nat": [], "ipvs": kept[:1]}), NodeRules("n2", "ipvs", {"nat": [], "ipvs": []})])
    assert text.splitlines() == [
        "== node n1 (kube-proxy ipvs)", "-- nat",
        "(none names this Service: in ipvs mode these rules match ipsets shared by all Services)",
        "-- ipvs", "TCP  10.96.14.20:80 rr",
        "  -> 10.244.1.7:8080              Masq    weight 1",
        "  -> 10.244.2.9:8080              Masq    weight 1",
        "",
        "== node n2 (kube-proxy ipvs)", "-- nat",
        "(none names this Service: in ipvs mode these rules match ipsets shared by all Services)",
        "-- ipvs", "(no IPVS virtual server for this Service)",
    ]
