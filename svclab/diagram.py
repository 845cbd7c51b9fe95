"""Where things go in a lab's diagram (SVG user units), in one fixed layout: the clients on the
left, the machines beside the cluster (router, HAProxy, DNS server) next to them, the nodes in a
row with the lab's pods inside, the ClusterIP and the load-balancer addresses in a row above the
nodes, and below them a row of marks for the probes that sent no traffic. The template draws it.

Each probe's legs become polylines between the boxes' ports, shifted a little per probe so that
probes along the same boxes stay apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .observed_cluster import ClusterView
from .probe_paths import ProbePath

__all__ = ["Box", "DrawnLeg", "DrawnProbe", "Diagram", "layout"]

MARGIN = 10
CLIENT_W, EDGE_W, NODE_W, LB_W = 150, 150, 210, 230
GAP = 20
ROW_H = 44
TOP_Y = MARGIN
NODE_Y = TOP_Y + ROW_H + 50      # below the row of addresses
NODE_Y_ALONE = TOP_Y + 34          # when no address is drawn above the nodes
NODE_HEAD = 52
POD_H, POD_GAP = 20, 4
MARK_R = 9


@dataclasses.dataclass(frozen=True)
class Box:
    place: str                 # the place's name (probe_paths): outside, node:<name>, ...
    kind: str                  # client, edge, svc, lb, node, pod: the CSS class
    x: float
    y: float
    w: float
    h: float
    lines: tuple[str, ...]     # the text, one line each
    holder: tuple[float, float] | None = None   # lb: where the node answering for it is

    def port(self, arriving: bool = False) -> tuple[float, float]:
        """Where paths meet the box: clients and edges on their right side (arriving at an edge:
        its left), low enough to pass below its text; the row above the nodes at its bottom,
        nodes at their top, pods on their left."""
        if self.kind in ("client", "edge"):
            return (self.x if arriving else self.x + self.w), self.y + self.h - 4
        if self.kind in ("lb", "svc"):
            return self.x + self.w / 2, self.y + self.h
        if self.kind == "node":
            return self.x + self.w / 2, self.y
        return self.x, self.y + self.h / 2


@dataclasses.dataclass(frozen=True)
class DrawnLeg:
    points: tuple[tuple[float, float], ...]
    answered: bool
    source_seen: str | None


@dataclasses.dataclass(frozen=True)
class DrawnProbe:
    key: str                   # lab/probe
    number: int                # its number in the lab, shown at the path's ends and in the list
    passed: bool
    legs: tuple[DrawnLeg, ...]
    mark: tuple[float, float]  # where its number is drawn


@dataclasses.dataclass(frozen=True)
class Diagram:
    width: float
    height: float
    boxes: tuple[Box, ...]
    probes: tuple[DrawnProbe, ...]
    api_row_y: float | None    # the row of probes that sent no traffic, if any


def _node_height(pods: int) -> float:
    return NODE_HEAD + pods * (POD_H + POD_GAP) + 6


def _boxes(view: ClusterView, needs_svc: bool, node_y: float) -> list[Box]:
    boxes = [Box("outside", "client", MARGIN, node_y, CLIENT_W, ROW_H,
                 ("outside client", view.client_ip or "address not recorded")),
             Box("pod-client", "client", MARGIN, node_y + ROW_H + 30, CLIENT_W, ROW_H,
                 ("in-cluster client pod", view.client_pod_ip or "address not recorded"))]
    x = MARGIN + CLIENT_W + GAP
    for i, (place, label) in enumerate(view.edges):
        name, _, address = label.rpartition(" ")
        lines = (name, address) if address[:1].isdigit() else (label,)
        boxes.append(Box(place, "edge", x, node_y + i * (ROW_H + 16), EDGE_W, ROW_H, lines))
    if view.edges:
        x += EDGE_W + GAP
    nodes_x = x
    node_boxes: dict[str, Box] = {}
    for node in view.nodes:
        box = Box(f"node:{node.name}", "node", x, node_y, NODE_W, _node_height(len(node.pods)),
                  (node.name, node.ip or "address not recorded"))
        node_boxes[node.name] = box
        boxes.append(box)
        for j, pod in enumerate(node.pods):
            boxes.append(Box(f"pod:{pod}", "pod", x + 10, node_y + NODE_HEAD + j * (POD_H + POD_GAP),
                             NODE_W - 20, POD_H, (pod,)))
        x += NODE_W + GAP
    x = nodes_x
    if needs_svc:
        boxes.append(Box("svc", "svc", x, TOP_Y, LB_W, ROW_H, ("ClusterIP / DNS name", "kube-proxy on every node")))
        x += LB_W + GAP
    for ip, holder in view.lbs:
        held = node_boxes.get(holder or "")
        boxes.append(Box(f"lb:{ip}", "lb", x, TOP_Y, LB_W, ROW_H,
                         (f"load balancer {ip}", "holder not seen" if not holder
                          else f"announced by {holder}" if "," in holder else f"held by {holder}"),
                         held.port() if held else None))
        x += LB_W + GAP
    return boxes


def layout(view: ClusterView, probes: Sequence[tuple[str, bool, ProbePath]]) -> Diagram:
    """The diagram of VIEW with PROBES drawn on it: (lab/probe, passed, its path), in the lab's order."""
    needs_svc = any(p == "svc" for _, _, path in probes for leg in path.legs for p in leg.places)
    node_y = NODE_Y if needs_svc or view.lbs else NODE_Y_ALONE
    boxes = _boxes(view, needs_svc, node_y)
    by_place = {b.place: b for b in boxes}
    bottom = max(b.y + b.h for b in boxes)
    right = max(b.x + b.w for b in boxes) + MARGIN
    api_y = bottom + 40 if any(not path.traffic for _, _, path in probes) else None
    api_x = MARGIN + 190
    drawn = []
    for number, (key, passed, path) in enumerate(probes, start=1):
        shift = ((number - 1) % 9 - 4) * 3
        legs = []
        for leg in path.legs:
            points: list[tuple[float, float]] = []
            previous = None
            for place in leg.places:
                box = by_place.get(place) or (by_place.get(f"node:{view.pods[place[4:]]}")
                                              if place.startswith("pod:") and place[4:] in view.pods else None)
                if box is None:
                    continue
                if box.kind == "edge" and previous is not None:   # through it: in on the left, out on the right
                    ax, ay = box.port(arriving=True)
                    points.append((ax, ay + shift / 3))
                px, py = box.port()
                if previous is not None and previous.kind in ("client", "edge") and box.kind == "node":
                    # From the left to a node: along a lane above the nodes, then down onto it.
                    bus = node_y - 22 + shift
                    points += [(previous.x + previous.w + 14 + shift, bus), (px + shift, bus)]
                points.append((px, py + shift / 3) if box.kind in ("pod", "edge", "client") else (px + shift, py + shift))
                previous = box
            if len(points) >= 2:
                legs.append(DrawnLeg(tuple(dict.fromkeys(points)), leg.answered, leg.source_seen))
        if legs:
            mark = legs[0].points[-1]
            # Numbers that would cover one another move right, one mark's width at a time.
            while any(abs(mark[0] - other.mark[0]) < 2 * MARK_R and abs(mark[1] - other.mark[1]) < 2 * MARK_R
                      for other in drawn):
                mark = (mark[0] + 2 * MARK_R + 2, mark[1])
        else:
            mark = (api_x, api_y or bottom + 40)
            api_x += 2 * MARK_R + 8
            if api_x > right - MARK_R:
                right = api_x + MARK_R + MARGIN
        drawn.append(DrawnProbe(key, number, passed, tuple(legs), mark))
    height = (api_y + MARK_R + MARGIN + 10) if api_y is not None else bottom + 30
    return Diagram(right, height, tuple(boxes), tuple(drawn), api_y)
