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

from typing import Iterable

from .book import Book, Edge, Source, Variable, _merged
from .gates import LETTERS

#: how many internal values make ``cells="auto"`` draw cells (one internal value, such as the
#: pre-activation ``a`` or Fig. 10.4's ``h``, reads well on its own row)
AUTO = 2
#: how many values of an open cell two inputs must both feed to meet at a join point first
JOIN = 3

CELL_MODES = ("auto", "compact", "open", "flat")


def internals(book: Book) -> list[str]:
    """The named values and points on the way to a state update within one step, and the
    step's gates on the way to anything else (the SRU's output gate r in r ⊙ tanh(c) + (1 − r)
    ⊙ P x, whose h is no state), in order."""
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
            if v.kind in ("named", "point") and (reaches_state(v.name) or is_gate(book, v.name))]


def is_gate(book: Book, name: str) -> bool:
    """Whether ``name`` is a gate of the step (``viz.gates.roles``: forget, input, output,
    update, reset), whether the user named it (``rec.name_node("f", σ(…))``) or left it inline:
    one model, one drawing."""
    return book.roles.get(name, book.variables[name].role) in LETTERS


def mode(book: Book, cells: str) -> str:
    """The cell mode actually used: ``compact``, ``open`` or ``flat``."""
    if cells not in CELL_MODES:
        from unfold.errors import UnfoldValueError
        raise UnfoldValueError(f"cells must be one of {CELL_MODES}, got {cells!r}")
    inner = internals(book)
    if not inner:
        return "flat"
    if cells == "auto":        # (one gate is a gated cell too: the minimal gated unit's f)
        gated = any(is_gate(book, n) for n in inner)
        return "compact" if len(inner) >= AUTO or gated else "flat"
    return cells


def groups(book: Book) -> list[tuple[list[str], list[str]]]:
    """The step's cells: (internal values, states) of each, in the order they are computed. An
    internal value belongs with what it feeds within the step (other internal values, states),
    and a state with a state that reads it through no parameter (an LSTM's ``h = tanh(s) q``
    reads ``s``); a state read through a parameter (the next layer's ``U_2 h_1``, its gates'
    ``W h_1``) is an input of its reader's cell, not part of it. So a stack of LSTM layers has
    a cell per layer, a bidirectional GRU a cell per direction, and a single gated recurrence
    one cell. States computed through no internal value have no cell."""
    inner = internals(book)
    states = [v.name for v in book.variables.values() if v.kind == "state"]
    parent = {n: n for n in inner + states}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n
    for e in book.edges:
        if e.delay or e.src not in parent or e.dst not in parent:
            continue
        if e.src in inner or not (e.labels or e.biases):
            a, b = root(e.src), root(e.dst)
            if a != b:
                parent[b] = a
    for e in book.edges:          # (a gate reaching no state joins the cell of a state it reads)
        if e.dst in inner and e.src in states and not any(
                root(s) == root(e.dst) for s in states):
            parent[root(e.dst)] = root(e.src)
    found: dict[str, tuple[list[str], list[str]]] = {}
    for n in book.variables:                      # (in the order they are computed)
        if n in parent:
            found.setdefault(root(n), ([], []))[0 if n in inner else 1].append(n)
    return [g for g in found.values() if g[0]]


#: the words a compact cell is called by, the first whose names no variable of the step has:
#: ``cell``, else Greff et al.'s ``block`` (PyTorch's states "hidden" and "cell" drew "cell′(t)"
#: beside the state cell(t)), else ``unit``
CELL_WORDS = ("cell", "block", "unit")


def cell_names(book: Book, count: int) -> list[str]:
    """``cell`` for one cell, ``cell_1``, ``cell_2``… for several; ``block`` (or ``unit``) only
    when a variable has one of those very names (a state called ``cell``; ``cell_state`` is
    drawn cell with subscript state, no clash), primed when all three words are taken."""
    def called(word: str) -> list[str]:
        return [word] if count == 1 else [f"{word}_{k}" for k in range(1, count + 1)]

    def clash(word: str) -> bool:
        return any(n in book.variables for n in called(word))
    word = next((w for w in CELL_WORDS if not clash(w)), CELL_WORDS[0])
    while clash(word):
        word += "'"
    return called(word)


def compact(book: Book) -> Book:
    """``book`` with each cell's internal values and states (``groups``) folded into one
    ``cell`` variable: what reads an internal value or a state within its cell reads the cell;
    every state of a cell is written by it; edges into a cell carry no parameters (the cell's
    tooltip lists them)."""
    cells = groups(book)
    names = cell_names(book, len(cells))
    owner: dict[str, int] = {}
    for k, (inner, states) in enumerate(cells):
        owner.update((n, k) for n in inner + states)
    inner = {n for i, _ in cells for n in i}
    params: list[list[str]] = [[] for _ in cells]
    edges: list[Edge] = []
    for e in book.edges:
        k = owner.get(e.dst)
        if k is not None:
            params[k] += [p for p in e.labels + e.biases if p not in params[k]]
            if owner.get(e.src) == k and (e.src in inner or e.delay == 0):
                continue                                   # inside the cell
            edges.append(Edge(e.src, names[k], e.delay, e.backward))
        elif e.src in inner:
            edges.append(Edge(names[owner[e.src]], e.dst, 0, False, e.labels, e.biases))
        else:
            edges.append(e)
    edges += [Edge(names[k], s) for k, (_, states) in enumerate(cells) for s in states]
    out = Book(book.name)
    for v in book.variables.values():
        if v.name in inner:
            continue
        k = owner.get(v.name)
        if k is not None and names[k] not in out.variables:    # (before its first state)
            out.variables[names[k]] = Variable(names[k], "cell", members=tuple(cells[k][0]),
                                               params=tuple(params[k]))
        out.variables[v.name] = v
    out.edges = _merged(edges)
    return out


def join_inputs(book: Book) -> Book:
    """``book`` with the inputs that feed the same ``JOIN`` or more values of a cell through
    parameters (an LSTM written gate by gate: ``x(t)`` and ``h(t−1)`` into ``f``, ``g``, ``q``
    and ``s``, each through its own matrices) meeting at one join point first, the book's
    concatenation ``[x(t); h(t−1)]``: one edge from each input into it, one from it to each of
    those values, labelled with the parameters of both (``U_f, W_f``). Open, such a cell draws
    as the same net written with one stacked matrix does (one GEMM, sliced) — a point each
    input enters once — and not as a fan of an edge per (input, gate), which crossed itself
    and the box's other edges, labels on one another (findings 12, 49)."""
    out = Book(book.name, dict(book.variables), list(book.edges), dict(book.roles))
    for inner, states in groups(book):
        for sources, values in _shared_inputs(book, set(inner + states)):
            _join(out, sources, values)
    return out


def _shared_inputs(book: Book, cell: set[str]) -> list[tuple[list[Source], list[str]]]:
    """The inputs of ``cell`` (values of other cells or steps, read through parameters) that
    feed the very same ``JOIN`` or more of its values, each such group of two or more as
    (sources, values), both in the order they are computed. A state read by its own update
    through a parameter is one (the GRU's ``h(t−1)``, read by ``u``, ``r`` and, through ``W``,
    by ``h(t)``: joined with ``x(t)``, its open cells cross nowhere, 2 crossings before at 3
    steps; a bidirectional GRU's 27 → 11); the LSTM's ``s(t−1) → s(t)``, through no
    parameter, stays in its row."""
    order = {n: k for k, n in enumerate(book.variables)}
    feeds: dict[Source, set[str]] = {}
    for e in book.edges:
        if e.dst in cell and e.labels and (e.delay or e.src not in cell):
            feeds.setdefault((e.src, e.delay, e.backward), set()).add(e.dst)
    together: dict[frozenset[str], list[Source]] = {}
    for source, values in feeds.items():
        together.setdefault(frozenset(values), []).append(source)
    return [(sorted(sources, key=lambda s: (order[s[0]], s[1])), sorted(values, key=order.get))
            for values, sources in together.items() if len(values) >= JOIN and len(sources) > 1]


def _join(book: Book, sources: list[Source], values: list[str]) -> None:
    """Route ``book``'s edges from ``sources`` into ``values`` through a new join point."""
    k = 1
    while f"join·{k}" in book.variables:
        k += 1
    point = f"join·{k}"
    key = lambda e: (e.src, e.delay, e.backward, e.dst)
    into = {key(e): e for e in book.edges}
    book.edges = [e for e in book.edges if key(e)[:3] not in sources or e.dst not in values]
    book.edges += [Edge(src, point, delay, backward) for src, delay, backward in sources]
    for v in values:
        parts = [into[(*s, v)] for s in sources]
        book.edges.append(Edge(point, v, 0, False, _union(e.labels for e in parts),
                               _union(e.biases for e in parts)))
    variables = {}
    for name, var in book.variables.items():          # (just before the first value it feeds)
        if name == values[0]:
            variables[point] = Variable(point, "point", members=tuple(values),
                                        joined=tuple(_written(s) for s in sources))
        variables[name] = var
    book.variables = variables


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    """The names of ``groups``, each once, in order."""
    return tuple(dict.fromkeys(n for g in groups for n in g))


def _written(source: Source) -> str:
    """``x(t)``, ``h(t−1)``, ``g(t+1)``: a source as read from the step ``t``."""
    name, delay, backward = source
    return f"{name}(t{'+' if backward else '−'}{delay})" if delay else f"{name}(t)"
