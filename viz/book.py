"""The book view of a recurrence: its named variables, and the edges between them.

Chapter 10 draws a recurrence with one circle per *variable* (``x``, ``h``, ``o``, ``L``, ``y``, an
LSTM's gates) and writes the parameters on the edges (``U``, ``V``, ``W``). ``contract(rec)``
derives that picture from the folded graph: every named node is a variable, every unnamed op node
between variables is contracted away, and each parameter met on the way becomes a label of the
edge(s) it multiplies. An edge that leaves a state read ``d`` steps back carries ``delay = d`` (the
book's black square).

Which nodes are variables is the user's choice: sequences, contexts, states, outputs and losses are
named by construction, and ``rec.name_node`` (or ``unfold.named``) names anything else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from unfold.graph import Node
from unfold.ops.base import CONSTANT, INPUT, PARAM
from unfold.recurrence import STATE, Recurrence

#: op names that *add* a parameter (a bias) rather than multiply a variable by it
ADDITIVE = frozenset({"add", "subtract", "add_n"})

#: variable kinds, in the order of the book's rows from the bottom up
KINDS = ("input", "context", "named", "state", "output", "loss", "target")


@dataclass(frozen=True)
class Variable:
    """A circle of the book's drawings: a named value of the step."""

    name: str
    kind: str                      # one of KINDS
    backward: bool = False         # a state that runs from the end of the sequence to its start
    steps: tuple[int, ...] | str | None = None   # for a loss: the steps it is taken at


@dataclass(frozen=True)
class Edge:
    """``src → dst`` inside one step (``delay == 0``) or from ``src`` ``delay`` steps earlier
    (later, when ``backward``), with the parameters on that path."""

    src: str
    dst: str
    delay: int = 0
    backward: bool = False
    labels: tuple[str, ...] = ()   # parameters that multiply src on the way (U, V, W)
    biases: tuple[str, ...] = ()   # parameters added on the way (b, c)


@dataclass
class Book:
    """The contracted folded graph: variables (in the order they are computed) and edges."""

    name: str
    variables: dict[str, Variable] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def inputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == name]

    def users_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.src == name]


def _kind(rec: Recurrence, node: Node) -> str:
    name = node.name
    if node.op is INPUT:
        if rec.contexts.get(name) is node:
            return "context"
        return "target" if name in rec.targets else "input"
    st = rec._states.get(name)
    if st is not None and st.value is node:
        return "state"
    if rec.outputs.get(name) is node:
        return "output"
    if name in rec.losses and rec.losses[name][0] is node:
        return "loss"
    return "named"


class _Contraction:
    """Walks the folded body once; see ``contract``."""

    def __init__(self, rec: Recurrence, hide: frozenset[str]) -> None:
        self.rec, self.hide = rec, hide
        self.body = rec.body()
        self.first: dict[str, int] = {}          # variable name → first position in the body
        for i, node in enumerate(self.body):
            if node.name is not None:
                self.first.setdefault(node.name, i)
        self.users: dict[Node, list[Node]] = {}
        for node in self.body:
            for i in node.inputs:
                self.users.setdefault(i, [])
                if not any(node is u for u in self.users[i]):
                    self.users[i].append(node)

    def source(self, node: Node) -> tuple[str, int, bool] | None:
        """(variable, delay, backward) if ``node`` ends a contraction as a variable, else None."""
        if node.op is STATE:
            st = self.rec._state_of[node]
            return st.name, node.attrs["delay"], st.backward
        if node.op is INPUT:
            return node.name, 0, False
        if node.name is not None and node.op not in (PARAM, CONSTANT) and \
                node.name not in self.hide:
            return node.name, 0, False
        return None

    def is_variable(self, node: Node) -> bool:
        """A named non-leaf that is drawn."""
        return bool(node.inputs) and node.name is not None and node.op is not STATE and \
            node.name not in self.hide

    def region(self, var: Node) -> list[Node]:
        """The unnamed op nodes between ``var`` and the variables/params it reads, users first."""
        seen, order, stack = set(), [], list(var.inputs)
        while stack:
            node = stack.pop()
            if node in seen or self.source(node) is not None or not node.inputs:
                continue
            seen.add(node)
            order.append(node)
            stack.extend(node.inputs)
        return order

    def edges_into(self, var: Node) -> list[Edge]:
        region = self.topo(self.region(var))
        inside = set(region) | {var}
        # below[n]: the variables (as (name, delay, backward)) that op node n reads
        below: dict[Node, set] = {}
        for node in region + [var]:
            found: set = set()
            for i in node.inputs:
                src = self.source(i)
                found |= {src} if src is not None else below.get(i, set())
            below[node] = found
        labels: dict[tuple, list[str]] = {s: [] for s in below[var]}
        biases: dict[tuple, list[str]] = {s: [] for s in labels}
        params = [n for n in self.body if n.op is PARAM and any(
            u in inside for u in self.users.get(n, ()))]
        for p in params:
            for meet in self.meetings(p, inside, below):
                table = biases if meet.op.name in ADDITIVE else labels
                for s in below[meet]:
                    if p.name not in table[s]:
                        table[s].append(p.name)
        return [Edge(name, var.name, delay, backward, tuple(labels[s]), tuple(biases[s]))
                for s in sorted(labels, key=self.order_key)
                for name, delay, backward in [s]]

    def meetings(self, p: Node, inside: set, below: dict) -> list[Node]:
        """The first nodes above param ``p`` (within the region) that also read a variable."""
        found, seen = [], set()
        frontier = [u for u in self.users.get(p, ()) if u in inside]
        while frontier:
            node = frontier.pop(0)
            if node in seen:
                continue
            seen.add(node)
            if below.get(node):
                found.append(node)
            else:
                frontier.extend(u for u in self.users.get(node, ()) if u in inside)
        return found

    def topo(self, region: list[Node]) -> list[Node]:
        rank = {n: i for i, n in enumerate(self.body)}
        return sorted(region, key=rank.__getitem__)

    def order_key(self, src: tuple) -> tuple:
        name, delay, _ = src
        return (self.first.get(name, len(self.first)), delay)


def check_recurrence(rec: object) -> None:
    """Raise a TypeError that says what to do if ``rec`` is not a recurrence."""
    if not isinstance(rec, Recurrence):
        raise TypeError(f"viz draws an unfold.Recurrence, got {type(rec).__name__}; for any "
                        f"other graph of nodes use viz.graph(nodes)")


def contract(rec: Recurrence, hide: Iterable[str] = ()) -> Book:
    """The book view of ``rec``: variables and parameter-labelled edges (see the module doc).

    ``hide`` names values not to draw: inner values (``rec.name_node``) and outputs are then
    contracted away like unnamed ones (the pre-activation ``a`` of eq. 10.8, which Fig. 10.3
    does not draw), a hidden loss disappears with the targets only it reads (Fig. 10.6 at test
    time).
    """
    check_recurrence(rec)
    hide = frozenset(hide)
    hideable = set(rec.named) | set(rec.outputs) | set(rec.losses)
    for name in hide:
        if name not in hideable:
            raise ValueError(f"cannot hide {name!r}: only named inner values, outputs and "
                             f"losses can be hidden ({sorted(hideable)})")
    c = _Contraction(rec, hide)
    book = Book(rec.name)
    for node in c.body:
        if node.op is INPUT and c.source(node) is not None:
            book.variables.setdefault(node.name, Variable(node.name, _kind(rec, node)))
        elif c.is_variable(node) and node.name not in book.variables:
            st = rec._states.get(node.name)
            steps = rec.losses[node.name][1] if _kind(rec, node) == "loss" else None
            book.variables[node.name] = Variable(node.name, _kind(rec, node),
                                                 bool(st and st.backward), steps)
    book.edges = _merged(e for node in c.body if c.is_variable(node)
                         for e in c.edges_into(node))
    _draw_fed_back_as_their_source(book)
    linked = {n for e in book.edges for n in (e.src, e.dst)}
    if linked:                                   # what a hidden loss alone read
        book.variables = {k: v for k, v in book.variables.items() if k in linked}
    return book


def _merged(edges: Iterable[Edge]) -> list[Edge]:
    """One edge per (src, dst, delay), with the parameters of all of them."""
    merged: dict[tuple, Edge] = {}
    for e in edges:
        key = (e.src, e.dst, e.delay)
        old = merged.get(key)
        if old is not None:
            e = Edge(e.src, e.dst, e.delay, e.backward,
                     old.labels + tuple(p for p in e.labels if p not in old.labels),
                     old.biases + tuple(p for p in e.biases if p not in old.biases))
        merged[key] = e
    return list(merged.values())


def _draw_fed_back_as_their_source(book: Book) -> None:
    """A state that merely holds an input, target or output of the step before (teacher
    forcing's ``y_prev``, the fed-back ``o`` of test time: a parameter-free function of that one
    variable) is drawn as that variable, read one step back: the book's ``y(t−1) → h(t)``."""
    for var in list(book.variables.values()):
        into = book.inputs_of(var.name)
        if var.kind != "state" or len(into) != 1:
            continue
        e = into[0]
        if e.delay or e.labels or e.biases or \
                book.variables[e.src].kind not in ("input", "target", "output"):
            continue
        del book.variables[var.name]
        book.edges = _merged(
            Edge(e.src if f.src == var.name else f.src, f.dst, f.delay, f.backward, f.labels,
                 f.biases)
            for f in book.edges if f is not e)
