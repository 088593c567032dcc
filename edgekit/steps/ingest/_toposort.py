"""Nodes out of topological order: ONNX requires each node to come after the nodes that make its
inputs, but ONNX Runtime sorts a graph itself and runs one that is not sorted. Some tools write
such files: ONNX Runtime's float16 converter (``onnxruntime.transformers.float16``, also
``onnxconverter_common.float16``) appends the Cast nodes it inserts at the end of the graph.

``sort_nodes(proto)`` puts every graph (subgraphs of If/Loop/Scan and local functions included)
in topological order, in place, moving nothing that is already in order: a node waits only for
the nodes that make its inputs, and among the nodes ready to go, the earliest in the file goes
first. Nothing else changes. A graph with a cycle cannot be sorted: ``GraphCycle`` names it.
"""

from __future__ import annotations

import heapq


class GraphCycle(ValueError):
    """The nodes of a graph depend on each other's outputs in a loop."""

    def __init__(self, where: str, nodes: list):
        self.nodes = nodes
        shown = ", ".join(f"{n.op_type} {n.name or '(unnamed)'!r}" for n in nodes[:4])
        more = f" and {len(nodes) - 4} more" if len(nodes) > 4 else ""
        super().__init__(f"{where} has a cycle: {len(nodes)} nodes ({shown}{more}) each wait, directly or "
                         "through others, on their own output")


def _subgraphs(node):
    """The graphs a node's attributes hold (If's branches, Loop's and Scan's bodies)."""
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def _reads(node) -> set[str]:
    """The values a node reads: its inputs, and those its subgraphs take from the graphs around them."""
    names = {i for i in node.input if i}
    for sub in _subgraphs(node):
        made = {i.name for i in sub.input} | {i.name for i in sub.initializer}
        for inner in sub.node:
            names |= _reads(inner) - made
            made.update(o for o in inner.output if o)
    return names


def _order(nodes, reads: list[set[str]], where: str) -> list[int]:
    """Indices of ``nodes`` in topological order, the file's order kept where it already is one."""
    maker = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    users: list[list[int]] = [[] for _ in nodes]
    left = [0] * len(nodes)
    for i, names in enumerate(reads):
        for d in {maker[name] for name in names if name in maker}:
            users[d].append(i)
            left[i] += 1
    ready = [i for i, k in enumerate(left) if k == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            left[u] -= 1
            if left[u] == 0:
                heapq.heappush(ready, u)
    if len(order) < len(nodes):
        raise GraphCycle(where, [nodes[i] for i in _in_cycles(left, users)])
    return order


def _in_cycles(left: list[int], users: list[list[int]]) -> list[int]:
    """The nodes left unsorted, less those that only wait on a cycle (downstream of it)."""
    stuck = {i for i, k in enumerate(left) if k}
    trimmed = True
    while trimmed:
        downstream = {i for i in stuck if not any(u in stuck for u in users[i])}
        stuck -= downstream
        trimmed = bool(downstream)
    return sorted(stuck)


def _reorder(nodes, where: str) -> int:
    """Sort the repeated field ``nodes`` in place; returns how many nodes read a value made by
    themselves or by a later node (0: nothing moves)."""
    reads = [_reads(n) for n in nodes]
    maker = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    wrong = sum(any(maker.get(name, -1) >= i for name in names) for i, names in enumerate(reads))
    if wrong:
        order = _order(nodes, reads, where)
        copies = [type(nodes[i])() for i in order]
        for copy, i in zip(copies, order, strict=True):
            copy.CopyFrom(nodes[i])
        del nodes[:]
        nodes.extend(copies)
    return wrong


def _sort_graph(graph, where: str) -> int:
    """Sort ``graph`` and its subgraphs in place; returns the nodes that were out of order."""
    moved = 0
    for node in graph.node:
        for sub in _subgraphs(node):
            moved += _sort_graph(sub, f"subgraph {sub.name or '(unnamed)'!r} of node {node.name or node.op_type!r}")
    return moved + _reorder(graph.node, where)


def sort_nodes(proto) -> int:
    """Put the model's graphs in topological order, in place; returns how many nodes were out of
    order (0: the model is left as it was). Raises ``GraphCycle`` where a graph has a cycle."""
    moved = _sort_graph(proto.graph, "the main graph")
    for fn in proto.functions:
        moved += _reorder(fn.node, f"function {fn.name!r}")
    return moved
