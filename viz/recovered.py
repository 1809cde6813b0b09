"""The folded step behind an unfolded graph, recovered from the graph alone.

``viz.graph`` is given nodes, not the ``Recurrence`` they were unfolded from; but every copy
``n`` of an unfolded step keeps its folded source (``n.source``), and the folded nodes reach
the state reads ``h(t−d)`` (``STATE`` leaves) and the named update ``h`` of each state. From
those, ``recurrences(nodes)`` rebuilds one ``Recurrence`` per folded graph met (an
encoder–decoder has two), so that what the book view derives from a recurrence — which unnamed
σ is a gate, and its letter (``viz.gates``) — can name the op view's nodes too: an LSTM written
with ``uf.sigmoid`` inline has ``f(t)``, ``∇f(t)`` there, as one whose gates were named with
``rec.name_node``.

What the graph does not say is left at its default: every input is a sequence (not a
context), a state runs forward in time, and a named value that no state update and no other
named value reads (the loss, or an output no loss reads) is an output.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from unfold.graph import Node, topological
from unfold.ops import constant
from unfold.ops.base import CONSTANT, INPUT, PARAM
from unfold.recurrence import STATE, Recurrence, _State

from .book import _unnamed_gates


def folded_of(nodes: Iterable[Node]) -> list[Node]:
    """The folded nodes behind ``nodes``: their sources (nodes of an unfolded graph), or the
    nodes themselves where they are a folded step (they read a state ``h(t−d)``)."""
    nodes = list(nodes)
    found = {n.source for n in nodes if n.source is not None}
    if any(n.op is STATE for n in nodes):
        found |= {n for n in nodes if n.source is None}
    return topological(list(found)) if found else []


def recurrences(nodes: Iterable[Node]) -> list[Recurrence]:
    """One recurrence per connected folded graph behind ``nodes`` that reads a state and
    updates it (see the module doc)."""
    out = []
    for part in _components(folded_of(nodes)):
        rec = _rebuilt(part)
        if rec is not None:
            out.append(rec)
    return out


def owners(nodes: Iterable[Node]) -> tuple[dict[Node, int], list[str]]:
    """When ``nodes`` join several recurrences (``bind``): the index of the recurrence each
    node's folded source belongs to, and the recurrences' names (in the order their first
    nodes come); empty for one recurrence."""
    nodes = list(nodes)
    parts = [p for p in _components(folded_of(nodes)) if any(n.op is STATE for n in p)]
    if len(parts) < 2:
        return {}, []
    found = {f: k for k, part in enumerate(parts) for f in part}
    first: dict[int, int] = {}
    for i, n in enumerate(nodes):
        if n.source in found:
            first.setdefault(found[n.source], i)
    order = sorted(first, key=first.__getitem__)            # (the encoder before the decoder)
    rank = {k: r for r, k in enumerate(order)}
    names = [next((f.attrs["recurrence"] for f in parts[k] if "recurrence" in f.attrs),
                  f"#{r + 1}") for r, k in enumerate(order)]
    return {n: rank[found[n.source]] for n in nodes if n.source in found}, names


def gate_names(nodes: Iterable[Node]) -> dict[Node, str]:
    """The gates among ``nodes`` that the user left unnamed, each with the book's letter for
    what it gates (``f``, ``g``, ``q``, ``u``, ``r``: ``viz.gates``), as the book view names
    them: an unfolded copy is named as its folded source."""
    nodes = list(nodes)
    letters: dict[Node, str] = {}
    for rec in recurrences(nodes):
        unnamed, _ = _unnamed_gates(rec, frozenset())
        letters.update((n, letter) for n, (letter, _) in unnamed.items())
    if not letters:
        return {}
    return {n: letters[k] for n in nodes
            if (k := n.source if n.source is not None else n) in letters}


def _components(nodes: list[Node]) -> list[list[Node]]:
    """``nodes`` split into the parts no edge joins (in the order given); a constant joins
    nothing (two recurrences may read one constant node)."""
    part_of: dict[Node, int] = {}
    parent: list[int] = []

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k
    for n in nodes:
        part_of[n] = len(parent)
        parent.append(len(parent))
        for i in n.inputs:
            if i in part_of and i.op is not CONSTANT:
                a, b = root(part_of[i]), root(part_of[n])
                parent[max(a, b)] = min(a, b)
    parts: dict[int, list[Node]] = {}
    for n in nodes:
        parts.setdefault(root(part_of[n]), []).append(n)
    return list(parts.values())


def _rebuilt(part: list[Node]) -> Recurrence | None:
    """The recurrence whose folded body is ``part``, or None if it has no state with its
    update among the nodes."""
    reads = [n for n in part if n.op is STATE]
    updates = {n.name: n for n in part if n.name is not None and n.op is not STATE and
               n.inputs and any(r.name == n.name for r in reads)}
    if not updates or any(r.name not in updates for r in reads):
        return None
    rec = Recurrence("recovered")
    for r in reads:
        st = rec._states.get(r.name)
        if st is None:
            v = updates[r.name]
            st = rec._states[r.name] = _State(r.name, r.shape, r.dtype,
                                              constant(np.zeros(r.shape, r.dtype)), False,
                                              value=v)
        st.reads[r.attrs["delay"]] = r
        rec._state_of[r] = st
    for n in part:
        if n.op is PARAM and n.name is not None:
            rec.params[n.name] = n
        elif n.op is INPUT and n.name is not None:
            rec.sequences[n.name] = n
    values = [n for n in part if n.name is not None and n.inputs and n.op is not STATE and
              n.name not in updates]
    # (a named value read by a state update or by another named value — the SRU's h, read by
    # its output o — is a value of the step: its gates are gates)
    inner = set(topological(list(updates.values()) + [i for n in values for i in n.inputs]))
    for n in values:
        if n.name not in rec.outputs and n.name not in rec.named:
            (rec.named if n in inner else rec.outputs)[n.name] = n
    return rec
