"""Tree positions: the ``step`` of a recursive net's copies is a node of its tree, not a time.

``unfold.models.Recursive.unfold`` tags every copy of the node body with its *position* ``p`` in
the forest (leaves first, then the inner nodes, each after its children), and what is read out
of a root (``o``, ``L``, ``y``, ``V(k)``) with the index ``k`` of its tree. An op view of such a
graph speaks of positions (``node p``, ``∇W = Σ_p ∇W(p)``) and draws each tree's readout in the
column of its root, where the book's Fig. 10.14 puts it (by the tree index it stood in leaf 1's
column).
"""
from __future__ import annotations

from unfold.graph import Node

#: the op of the placeholders a recursive net's folded bodies read (its children, its root)
CHILD = "child"


def _reads_child(node: Node, which: tuple[str, ...]) -> bool:
    return any(i.op.name == CHILD and i.attrs.get("child") in which for i in node.inputs)


def tree_positions(forward: list[Node]) -> dict[Node, int] | None:
    """None if ``forward`` (inputs before users) is not a recursive net's unfolding; else the
    position to draw each readout node at instead of its tree index: its tree's root."""
    sources = {n.source for n in forward if n.source is not None}
    if not any(_reads_child(s, ("left", "right", "root")) for s in sources):
        return None
    readout = {s for s in sources if _reads_child(s, ("root",))}
    users: dict[Node, set[Node]] = {}
    for s in sources:
        for i in s.inputs:
            users.setdefault(i, set()).add(s)
    for n in forward:                   # (inputs before users: what the readout computes)
        s = n.source
        if s is not None and any(i in readout for i in s.inputs):
            readout.add(s)
    for s in sources:                   # its parameters and targets (V, c, y): read only there
        if not s.inputs and users.get(s) and users[s] <= readout:
            readout.add(s)
    root: dict[int, int] = {}           # tree index → its root's position
    for n in forward:
        if n.source in readout and n.step is not None:
            for i in n.inputs:
                if i.step is not None and i.source not in readout:
                    root[n.step] = i.step
    return {n: root[n.step] for n in forward
            if n.source in readout and n.step is not None and n.step in root}
