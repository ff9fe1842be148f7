"""A layered top-to-bottom drawing of an ASL definition, computed once per definition.

The console draws what the definition says, not a hand-made picture: every edge comes
from ``Next``, ``Default``, ``Choices`` and ``Catch``. Layout follows the usual
Sugiyama steps, small enough to read: back edges found by depth-first search run upwards
through their own channel, states get the longest-path layer, long edges pass through dummy
points, barycenter sweeps order each layer, and x positions follow the parents.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

NODE_HEIGHT: Final = 38
LAYER_GAP: Final = 46
NODE_GAP: Final = 26
DUMMY_WIDTH: Final = 12
CHAR_WIDTH: Final = 7.4
MIN_NODE_WIDTH: Final = 120
MARGIN: Final = 24
SWEEPS: Final = 8
PORT_GAP: Final = 14


@dataclass
class _Edge:
    source: str
    target: str
    kind: str  # next | default | choice | catch
    label: str | None = None
    back: bool = False
    chain: list[str] = field(default_factory=list)


def _edges(states: dict[str, Any]) -> list[_Edge]:
    edges: list[_Edge] = []
    for name, state in states.items():
        for choice in state.get("Choices", []):
            if choice.get("Next"):
                edges.append(_Edge(name, choice["Next"], "choice", _choice_label(choice)))
        if state.get("Default"):
            edges.append(_Edge(name, state["Default"], "default", "Default"))
        if state.get("Next"):
            edges.append(_Edge(name, state["Next"], "next"))
        for catcher in state.get("Catch", []):
            if catcher.get("Next"):
                edges.append(_Edge(name, catcher["Next"], "catch", ", ".join(catcher.get("ErrorEquals", []))))
    return [edge for edge in edges if edge.target in states]


_OPERATORS: Final = (
    ("GreaterThanEquals", ">="),
    ("LessThanEquals", "<="),
    ("Equals", "="),
    ("GreaterThan", ">"),
    ("LessThan", "<"),
    ("Matches", "matches"),
)


def _choice_label(choice: dict[str, Any]) -> str:
    """A short rule label such as ``duplicate = true``; compound rules (And/Or/Not) just say so."""
    variable = str(choice.get("Variable", "")).split(".")[-1]
    for key, value in choice.items():
        if key in ("Variable", "Next", "Comment"):
            continue
        if key in ("And", "Or", "Not"):
            return f"{key} rule"
        symbol = next((text for suffix, text in _OPERATORS if key.removesuffix("Path").endswith(suffix)), key)
        shown = str(value).lower() if isinstance(value, bool) else value
        return f"{variable} {symbol} {shown}".strip()
    return variable or "rule"


def _mark_back_edges(start: str, states: dict[str, Any], edges: list[_Edge]) -> list[str]:
    """Depth-first from StartAt (main path first); an edge into a state still on the stack is a back edge."""
    outgoing: dict[str, list[_Edge]] = {name: [] for name in states}
    for edge in edges:
        outgoing[edge.source].append(edge)
    order = {"next": 0, "choice": 1, "default": 2, "catch": 3}
    for name in outgoing:
        outgoing[name].sort(key=lambda e: order[e.kind])
    visited: set[str] = set()
    on_stack: set[str] = set()
    discovery: list[str] = []
    roots = [start] + [name for name in states if name != start]
    for root in roots:
        if root in visited:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        visited.add(root)
        on_stack.add(root)
        discovery.append(root)
        while stack:
            name, index = stack[-1]
            if index < len(outgoing[name]):
                stack[-1] = (name, index + 1)
                edge = outgoing[name][index]
                if edge.target in on_stack:
                    edge.back = True
                elif edge.target not in visited:
                    visited.add(edge.target)
                    on_stack.add(edge.target)
                    discovery.append(edge.target)
                    stack.append((edge.target, 0))
            else:
                on_stack.discard(name)
                stack.pop()
    return discovery


def _layers(names: list[str], edges: list[_Edge]) -> dict[str, int]:
    """Longest path from the sources over forward edges, so every forward edge points down."""
    layer = dict.fromkeys(names, 0)
    forward = [edge for edge in edges if not edge.back]
    for _ in range(len(names)):
        changed = False
        for edge in forward:
            if layer[edge.target] < layer[edge.source] + 1:
                layer[edge.target] = layer[edge.source] + 1
                changed = True
        if not changed:
            break
    return layer


def _node_width(name: str) -> float:
    return max(MIN_NODE_WIDTH, round(len(name) * CHAR_WIDTH + 36))


def _offsets(row: list[str], width: dict[str, float]) -> list[float]:
    """Centre of each node when the row is packed tightly from 0."""
    offsets: list[float] = []
    cursor = 0.0
    for index, name in enumerate(row):
        if index:
            cursor += (width[row[index - 1]] + width[name]) / 2 + NODE_GAP
        offsets.append(cursor)
    return offsets


def _isotonic(values: list[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators): keeps the order, moves nodes least."""
    blocks: list[list[float]] = []  # [mean, count]
    for value in values:
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            previous = blocks[-1]
            previous[0] = (previous[0] * previous[1] + mean * count) / (previous[1] + count)
            previous[1] += count
    fitted: list[float] = []
    for mean, count in blocks:
        fitted.extend([mean] * int(count))
    return fitted


def _path_points(edge: _Edge, x: dict[str, float], y: dict[str, float], width: dict[str, float]) -> list[list[float]]:
    half = NODE_HEIGHT / 2
    if edge.back:
        # Back edges run upwards through their own dummy channel, leaving the top and entering the bottom.
        shift = min(width[edge.source], width[edge.target]) / 4
        points = [[x[edge.source] + shift, y[edge.source] - half]]
        points += [[x[d], y[d]] for d in reversed(edge.chain)]
        points.append([x[edge.target] + shift, y[edge.target] + half])
        return points
    points = [[x[edge.source], y[edge.source] + half]]
    points += [[x[d], y[d]] for d in edge.chain]
    points.append([x[edge.target], y[edge.target] - half])
    return points


def _spread_ports(edges: list[_Edge], paths: dict[int, list[list[float]]], width: dict[str, float]) -> None:
    """Edges sharing a node side leave or enter it side by side, ordered by where they come from."""
    sides: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
    for edge in edges:
        points = paths[id(edge)]
        sides.setdefault((edge.source, "out"), []).append((points[1][0], points[0]))
        sides.setdefault((edge.target, "in"), []).append((points[-2][0], points[-1]))
    for (name, _), ports in sides.items():
        if len(ports) < 2:
            continue
        ports.sort(key=lambda port: port[0])
        spread = min(width[name] * 0.5, (len(ports) - 1) * PORT_GAP)
        for index, (_, point) in enumerate(ports):
            point[0] += -spread / 2 + spread * index / (len(ports) - 1)


def _barycenter(
    links: dict[str, list[str]], neighbours: dict[str, int], current: dict[str, int]
) -> Callable[[str], tuple[float, int]]:
    def key(name: str) -> tuple[float, int]:
        linked = [neighbours[n] for n in links[name] if n in neighbours]
        return (sum(linked) / len(linked) if linked else float(current[name]), current[name])

    return key


def _order_rows(rows: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]]) -> None:
    """Barycenter sweeps, alternately down and up: each node moves towards its neighbours' mean position."""
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        links = up if downward else down
        for level in range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1):
            neighbours = {name: i for i, name in enumerate(rows[level - 1] if downward else rows[level + 1])}
            current = {name: i for i, name in enumerate(rows[level])}

            rows[level].sort(key=_barycenter(links, neighbours, current))


def _place(
    rows: list[list[str]], up: dict[str, list[str]], down: dict[str, list[str]], width: dict[str, float]
) -> dict[str, float]:
    """x centres: each row packed, then repeatedly pulled under its parents (down) and over its children (up)."""
    x: dict[str, float] = {}
    for row in rows:
        offsets = _offsets(row, width)
        for name, offset in zip(row, offsets, strict=True):
            x[name] = offset - offsets[-1] / 2
    for sweep in range(SWEEPS):
        links = up if sweep % 2 == 0 else down
        for row in rows if sweep % 2 == 0 else reversed(rows):
            wanted = [sum(x[n] for n in links[name]) / len(links[name]) if links[name] else x[name] for name in row]
            offsets = _offsets(row, width)
            fitted = _isotonic([w - o for w, o in zip(wanted, offsets, strict=True)])
            for name, fit, offset in zip(row, fitted, offsets, strict=True):
                x[name] = fit + offset
    return x


def layout(definition: dict[str, Any]) -> dict[str, Any]:
    """Node boxes and edge polylines of ``definition``, in SVG user units."""
    states: dict[str, Any] = definition.get("States", {})
    start = definition.get("StartAt")
    if not states or start not in states:
        raise ValueError("definition has no States or its StartAt is not one of them")
    edges = _edges(states)
    discovery = _mark_back_edges(start, states, edges)
    layer = _layers(discovery, edges)

    width: dict[str, float] = {name: _node_width(name) for name in discovery}
    rank: dict[str, int] = dict(layer)
    dummy_count = 0
    for edge in edges:
        top, bottom = (edge.target, edge.source) if edge.back else (edge.source, edge.target)
        for level in range(layer[top] + 1, layer[bottom]):
            dummy = f"\0dummy{dummy_count}"
            dummy_count += 1
            rank[dummy] = level
            width[dummy] = DUMMY_WIDTH
            edge.chain.append(dummy)

    rows: list[list[str]] = [[] for _ in range(max(rank.values()) + 1)]
    for name in discovery:
        rows[rank[name]].append(name)
    for edge in edges:
        for dummy in edge.chain:
            rows[rank[dummy]].append(dummy)

    up: dict[str, list[str]] = {name: [] for name in rank}
    down: dict[str, list[str]] = {name: [] for name in rank}
    for edge in edges:
        path = [edge.target, *edge.chain, edge.source] if edge.back else [edge.source, *edge.chain, edge.target]
        for a, b in itertools.pairwise(path):
            down[a].append(b)
            up[b].append(a)

    _order_rows(rows, up, down)
    x = _place(rows, up, down, width)

    left_edge = min(x[name] - width[name] / 2 for name in rank)
    for name in x:
        x[name] += MARGIN - left_edge
    y = {name: MARGIN + rank[name] * (NODE_HEIGHT + LAYER_GAP) + NODE_HEIGHT / 2 for name in rank}
    right_edge = max(x[name] + width[name] / 2 for name in rank)

    nodes = [
        {
            "name": name,
            "type": states[name].get("Type", "Task"),
            "x": round(x[name] - width[name] / 2, 1),
            "y": round(y[name] - NODE_HEIGHT / 2, 1),
            "width": width[name],
            "height": NODE_HEIGHT,
            "layer": rank[name],
            "start": name == start,
            "end": states[name].get("Type") in ("Succeed", "Fail") or bool(states[name].get("End")),
        }
        for name in discovery
    ]

    paths = {id(edge): _path_points(edge, x, y, width) for edge in edges}
    _spread_ports([e for e in edges if not e.back], paths, width)
    drawn = [
        {
            "source": edge.source,
            "target": edge.target,
            "kind": edge.kind,
            "label": edge.label,
            "back": edge.back,
            "points": [[round(px, 1), round(py, 1)] for px, py in paths[id(edge)]],
        }
        for edge in edges
    ]
    total_width = right_edge + MARGIN
    total_height = max(y.values()) + NODE_HEIGHT / 2 + MARGIN
    return {"nodes": nodes, "edges": drawn, "width": round(total_width, 1), "height": round(total_height, 1)}
