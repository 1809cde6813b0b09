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

from unfold.graph import Node
from unfold.ops.base import CONSTANT, INPUT, PARAM
from unfold.recurrence import ALIAS, STATE, Recurrence

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


def _remembered_sequence(rec: Recurrence, state) -> str | None:
    """The sequence a state merely remembers (``y(t−1)`` for teacher forcing), if it does.

    Such a state is drawn as that sequence, read one step back: the book's ``y(t−1) → h(t)``.
    """
    value = state.value
    while value is not None and value.op is ALIAS and value.inputs:
        value = value.inputs[0]
    if value is not None and value.op is INPUT and rec.sequences.get(value.name) is value:
        return value.name
    return None


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

    def __init__(self, rec: Recurrence) -> None:
        self.rec = rec
        self.body = rec.body()
        self.remembered = {st.name: seq for st in rec._states.values()
                           if (seq := _remembered_sequence(rec, st)) is not None}
        self.first: dict[str, int] = {}          # variable name → first position in the body
        for i, node in enumerate(self.body):
            if node.name is not None:
                self.first.setdefault(node.name, i)
        self.users: dict[Node, list[Node]] = {}
        for node in self.body:
            for i in node.inputs:
                self.users.setdefault(i, [])
                if node not in self.users[i]:
                    self.users[i].append(node)

    def source(self, node: Node) -> tuple[str, int, bool] | None:
        """(variable, delay, backward) if ``node`` ends a contraction as a variable, else None."""
        if node.op is STATE:
            st = self.rec._state_of[node]
            return self.remembered.get(st.name, st.name), node.attrs["delay"], st.backward
        if node.op is INPUT:
            return node.name, 0, False
        if node.name is not None and node.op not in (PARAM, CONSTANT):
            return node.name, 0, False
        return None

    def is_variable(self, node: Node) -> bool:
        """A named non-leaf that is drawn (not the update of a remembered sequence)."""
        if not node.inputs or node.name is None or node.op is STATE:
            return False
        st = self.rec._states.get(node.name)
        return not (st is not None and st.value is node and node.name in self.remembered)

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


def contract(rec: Recurrence) -> Book:
    """The book view of ``rec``: variables and parameter-labelled edges (see the module doc)."""
    c = _Contraction(rec)
    book = Book(rec.name)
    for node in c.body:
        if node.op is INPUT and c.source(node) is not None:
            book.variables.setdefault(node.name, Variable(node.name, _kind(rec, node)))
        elif c.is_variable(node) and node.name not in book.variables:
            st = rec._states.get(node.name)
            steps = rec.losses[node.name][1] if _kind(rec, node) == "loss" else None
            book.variables[node.name] = Variable(node.name, _kind(rec, node),
                                                 bool(st and st.backward), steps)
    merged: dict[tuple, Edge] = {}
    for node in c.body:
        if not c.is_variable(node):
            continue
        for e in c.edges_into(node):
            key = (e.src, e.dst, e.delay)
            old = merged.get(key)
            if old is not None:
                e = Edge(e.src, e.dst, e.delay, e.backward,
                         old.labels + tuple(l for l in e.labels if l not in old.labels),
                         old.biases + tuple(b for b in e.biases if b not in old.biases))
            merged[key] = e
    book.edges = list(merged.values())
    return book
