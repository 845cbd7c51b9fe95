"""Timelines of the probes where time is the story: the failover probe's attempts until the address
answers again, the requests through the BGP router until it withdraws the cut node's path, the
requests through HAProxy until it marks the cut node DOWN, the DNS round-robin client's attempts.
One mark per recorded attempt, answered or failed, in a lane per node; the moments the probe
measured as vertical lines. Geometry in SVG user units; the template draws it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["Mark", "Event", "Timeline", "timeline"]

WIDTH, LEFT, RIGHT = 760, 160, 20
TOP, LANE_H = 34, 24
NO_ANSWER = "no answer"


@dataclasses.dataclass(frozen=True)
class Mark:
    x: float
    y: float
    answered: bool
    text: str          # what the attempt was, for its tooltip


@dataclasses.dataclass(frozen=True)
class Event:
    x: float
    label: str


@dataclasses.dataclass(frozen=True)
class Timeline:
    key: str                                   # lab/probe
    title: str
    axis: str                                  # what x is: seconds after the cut, or the attempt's number
    width: float
    height: float
    lanes: tuple[tuple[str, float], ...]       # (node, y)
    marks: tuple[Mark, ...]
    events: tuple[Event, ...]
    ticks: tuple[tuple[float, str], ...]
    note: str | None = None                    # what the file does not record


def _timed(facts: Mapping[str, Any]) -> tuple[list[tuple[float, bool, str | None, str]], list[tuple[float, str]], str]:
    """(attempts as (seconds, answered, node, text)), measured moments, title) of a probe that
    cut a node off and timed what followed."""
    attempts = []
    for a in facts.get("attempts") or []:
        if not isinstance(a, dict) or a.get("at") is None:
            continue
        text = f"{a['at']:.2f}s: " + (f"answered by {a.get('pod') or '?'} on {a.get('node') or '?'}"
                                      if a.get("answered") else "no answer")
        if a.get("cut_status"):
            text += f"; HAProxy has {facts.get('cut_node')} {a['cut_status']}"
        attempts.append((float(a["at"]), bool(a.get("answered")), a.get("node"), text))
    events = []
    if "holder_before" in facts:
        title = f"failover: {facts.get('holder_before')} frozen, the address asked until it answers again"
        if facts.get("failover_seconds") is not None:
            events.append((float(facts["failover_seconds"]), f"answers again via {facts.get('holder_after') or '?'}"))
    elif "withdrawn_after" in facts:
        title = f"BGP: {facts.get('cut_node')} cut off, requests through the router until its path is withdrawn"
        if facts.get("withdrawn_after") is not None:
            events.append((float(facts["withdrawn_after"]), f"{facts.get('cut_node')}'s path withdrawn"))
    else:
        title = f"HAProxy: {facts.get('cut_node')} cut off, requests through HAProxy until it is DOWN"
        if facts.get("marked_down_after") is not None:
            events.append((float(facts["marked_down_after"]), f"{facts.get('cut_node')} marked DOWN"))
    return attempts, events, title


def _round_robin(facts: Mapping[str, Any]) -> list[tuple[float, bool, str | None, str]]:
    nodes = facts.get("nodes") or {}
    marks = []
    for i, a in enumerate(facts.get("attempts") or [], start=1):
        node = nodes.get(a.get("first"), a.get("first"))
        retry = (f"; retried {nodes.get(a.get('retry_by'), a.get('retry_by'))}: "
                 f"{'answered' if a.get('retry_ok') else 'failed'}") if a.get("retry_failed") else ""
        marks.append((float(i), bool(a.get("first_ok")), node,
                      f"attempt {i}: first address {a.get('first')} ({node}) "
                      f"{'answered' if a.get('first_ok') else 'failed'}{retry}"))
    return marks


def timeline(key: str, facts: Mapping[str, Any]) -> Timeline | None:
    """The timeline of the probe KEY (lab/probe) from its FACTS, or None when time is not its story."""
    note = None
    if "first_by_node" in facts and facts.get("attempts"):
        attempts, events = _round_robin(facts), []
        cut = f", {facts['cut_node']} cut off" if facts.get("cut_node") else ""
        title, axis = f"DNS round robin: first address of each answer{cut}", "attempt"
    elif ("holder_before" in facts and "failover_seconds" in facts) or "withdrawn_after" in facts \
            or "marked_down_after" in facts:
        attempts, events, title = _timed(facts)
        axis = "seconds after the cut"
        if not attempts:
            note = "this file records no attempt one by one (written before svclab recorded them): the measured moments only"
            if facts.get("sent_during") is not None:
                note += f"; {facts['sent_during']} requests meanwhile, {facts.get('failed_during', 0)} failed"
    else:
        return None
    def lane(ok: bool, node: str | None) -> str:
        return node or ("answered, node not known" if ok else NO_ANSWER)

    named = {lane(ok, node) for _, ok, node, _ in attempts}
    ordered = sorted(named - {NO_ANSWER}) + ([NO_ANSWER] if NO_ANSWER in named else [])
    lanes = {name: TOP + i * LANE_H for i, name in enumerate(ordered or [""])}
    end = max([t for t, *_ in attempts] + [t for t, _ in events] + [1.0])
    span = WIDTH - LEFT - RIGHT
    start = 1.0 if axis == "attempt" else 0.0

    def x(t: float) -> float:
        return round(LEFT + (t - start) / ((end - start) or 1.0) * span, 1)

    marks = tuple(Mark(x(t), lanes[lane(ok, node)], ok, text) for t, ok, node, text in attempts)
    step = max(1, round(end / 6)) if axis == "attempt" else max(0.5, round(end / 6 * 2) / 2)
    ticks, t = [], start
    while t <= end + 1e-9:
        ticks.append((x(t), f"{t:g}" if axis == "attempt" else f"{t:g}s"))
        t += step
    height = TOP + max(len(lanes), 1) * LANE_H + 26
    return Timeline(key, title, axis, WIDTH, height, tuple(lanes.items()), marks,
                    tuple(Event(x(t), label) for t, label in events), tuple(ticks), note)
