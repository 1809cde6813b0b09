"""Cells: what a step computes between its inputs and its new states, drawn as one unit.

A gated recurrence (an LSTM's gates ``f``, ``g``, ``q``, a GRU's ``u``, ``r``, a deep transition's
``z_1``, ``z_2``, or any user-defined cell) computes several *internal* values on the way from
``x(t)`` and the states ``h(t−1)`` to the states ``h(t)``. Unfolded, each internal value would be a
row of its own, read across steps: a tangle. The book instead draws such a network as a chain of
cells (Fig. 10.16's caption: "cells are connected recurrently to each other, replacing the usual
hidden units"). ``internals(book)`` finds those values from the graph alone (the named values
and points that some state update depends on within the step); ``compact(book)`` folds them,
with the state updates, into one ``cell`` variable, so that unfolded only the states cross from
one step to the next: ``x(t) → cell(t) → s(t), h(t)`` and ``s(t−1), h(t−1) → cell(t)``.
"""
from __future__ import annotations

from .book import Book, Edge, Variable, _merged

#: how many internal values make ``cells="auto"`` draw cells (one internal value, such as the
#: pre-activation ``a`` or Fig. 10.4's ``h``, reads well on its own row)
AUTO = 2

CELL_MODES = ("auto", "compact", "open", "flat")


def internals(book: Book) -> list[str]:
    """The named values and points on the way to a state update within one step, in order."""
    states = {v.name for v in book.variables.values() if v.kind == "state"}
    feeds: dict[str, set[str]] = {}
    for e in book.edges:
        if e.delay == 0:
            feeds.setdefault(e.src, set()).add(e.dst)
    reach: dict[str, bool] = {}

    def reaches_state(name: str, path: frozenset = frozenset()) -> bool:
        if name not in reach:
            reach[name] = any(d in states or (d not in path and reaches_state(d, path | {name}))
                              for d in feeds.get(name, ()))
        return reach[name]
    return [v.name for v in book.variables.values()
            if v.kind in ("named", "point") and reaches_state(v.name)]


def mode(book: Book, cells: str) -> str:
    """The cell mode actually used: ``compact``, ``open`` or ``flat``."""
    if cells not in CELL_MODES:
        from unfold.errors import UnfoldValueError
        raise UnfoldValueError(f"cells must be one of {CELL_MODES}, got {cells!r}")
    inner = internals(book)
    if not inner:
        return "flat"
    if cells == "auto":        # (one gate is a gated cell too: the minimal gated unit's f)
        gated = any(book.variables[n].role for n in inner)
        return "compact" if len(inner) >= AUTO or gated else "flat"
    return cells


def cell_name(book: Book) -> str:
    name = "cell"
    while name in book.variables:
        name += "'"
    return name


def compact(book: Book) -> Book:
    """``book`` with its internal values and state updates folded into one ``cell`` variable:
    what reads an internal value or a state within the step reads the cell; every state is
    written by the cell; edges into the cell carry no parameters (the cell's tooltip lists
    them)."""
    inner = internals(book)
    states = [v.name for v in book.variables.values() if v.kind == "state"]
    inside = set(inner) | set(states)
    cell = cell_name(book)
    params: list[str] = []
    edges: list[Edge] = []
    for e in book.edges:
        into = e.dst in inside
        if into and (e.src in inner or (e.src in states and e.delay == 0)):
            params += [p for p in e.labels + e.biases if p not in params]
            continue                                       # inside the cell
        if into:
            params += [p for p in e.labels + e.biases if p not in params]
            edges.append(Edge(e.src, cell, e.delay, e.backward))
        elif e.src in inner:
            edges.append(Edge(cell, e.dst, 0, False, e.labels, e.biases))
        else:
            edges.append(e)
    edges += [Edge(cell, s) for s in states]
    out = Book(book.name)
    placed = False
    for v in book.variables.values():
        if v.name in inner:
            continue
        if v.kind == "state" and not placed:
            out.variables[cell] = Variable(cell, "cell", members=tuple(inner),
                                           params=tuple(params))
            placed = True
        out.variables[v.name] = v
    out.edges = _merged(edges)
    return out
