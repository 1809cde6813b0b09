"""The book view of a recurrence: its named variables, and the edges between them.

Chapter 10 draws a recurrence with one circle per *variable* (``x``, ``h``, ``o``, ``L``, ``y``, an
LSTM's gates) and writes the parameters on the edges (``U``, ``V``, ``W``). ``contract(rec)``
derives that picture from the folded graph: every named node is a variable, every unnamed op node
between variables is contracted away, and each parameter met on the way becomes a label of the
edge(s) it multiplies. An edge that leaves a state read ``d`` steps back carries ``delay = d`` (the
book's black square).

Which nodes are variables is the user's choice: sequences, contexts, states, outputs and losses are
named by construction, and ``rec.name_node`` (or ``unfold.named``) names anything else. The
drawing does not depend on how the step is written:

* a name is an alias of the expression it names, and that expression *is* the variable: reading
  ``expr`` after ``rec.output("o", expr)`` reads ``o``, exactly as reading the returned node does;
* a sequence read only by losses (and by states that feed it back) is a target, drawn above its
  loss, whether it was declared with ``rec.target`` or ``rec.sequence``;
* parameters applied one after the other on a path (``V @ tanh(V2 @ h)``) keep their order: the
  edge passes through a small *point*, an unnamed intermediate value (``h –V2→ • –V→ o``), while
  parameters on parallel paths (``W @ h + S @ h``) share one edge;
* a value read only in slices by several readers (gates' pre-activations stacked in one
  ``W h + U x + b``) is a point too: one ``W`` and one ``U`` edge into it, not one per gate.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Iterable

from unfold.errors import UnfoldTypeError, UnfoldValueError
from unfold.graph import Node
from unfold.ops.base import ALIAS, CONSTANT, INPUT, PARAM
from unfold.recurrence import STATE, Recurrence

from .gates import LETTERS, ORDER, gates, roles as roles_in

#: op names that *add* a parameter (a bias) rather than multiply a variable by it
ADDITIVE = frozenset({"add", "sub", "add_n"})

#: the nonlinearities a cell view draws as units (``viz.cell``), and the symbols drawn in them
UNITS = frozenset({"sigmoid", "tanh", "relu", "softmax", "softplus"})
SYMBOLS = {"sigmoid": "σ", "tanh": "tanh", "relu": "relu", "softmax": "softmax",
           "softplus": "softplus", "mul": "×"}
#: the symbols of the detailed books' arithmetic nodes (by kind, see below)
ARITHMETIC = {"complement": "1 −", "difference": "−"}

#: variable kinds, in the order of the book's rows from the bottom up; a ``point`` is an unnamed
#: value between two parameters applied in sequence, a ``cell`` a step's internal values taken
#: together (``viz.cells``), a ``complement`` the ``1 − u`` a gating × reads, a ``difference``
#: the ``h~ − h(t−1)`` it reads in an interpolation ``h(t−1) + u ⊙ (h~ − h(t−1))`` (detailed books)
KINDS = ("input", "context", "named", "point", "product", "complement", "difference", "unit",
         "cell", "state", "output", "loss", "target")


#: what joins an owner's name and a number in the names ``contract`` gives the values the user
#: did not name (``o·1``, ``o·2``)
UNNAMED = "·"


def is_unnamed(name: str) -> bool:
    """Whether ``name`` is one ``contract`` gave a value the user did not name (``o·1``)."""
    return UNNAMED in name


@dataclass(frozen=True)
class Variable:
    """A circle of the book's drawings: a named value of the step (or a point, see above)."""

    name: str
    kind: str                      # one of KINDS
    backward: bool = False         # a state that runs from the end of the sequence to its start
    steps: tuple[int, ...] | str | None = None   # for a loss: the steps it is taken at
    owner: str | None = None       # for a point: the variable whose computation it belongs to
    members: tuple[str, ...] = ()  # for a cell (viz.cells): the internal values it holds
    params: tuple[str, ...] = ()   # for a cell: the parameters used inside it
    op: str | None = None          # the symbol of the nonlinearity or product it is (σ, ×)
    shows: tuple[str, str] | None = None   # drawn as this name at this step (``h``, ``t-1``)
    role: str = ""                 # for a gate the user left unnamed (in a detailed book: any
    #                                unit): what it gates, "input" for the cell's input (viz.gates)
    stacked: bool = False          # a point read in slices (gates' stacked pre-activations)
    joined: tuple[str, ...] = ()   # for a join point (open cells, ``viz.cells.join_inputs``):
    #                                the inputs it concatenates, ``x(t)``, ``h(t−1)``


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
    #: every unit's role in its cell (``viz.gates.roles``), named or not: the input, the gates
    roles: dict[str, str] = field(default_factory=dict)

    def inputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == name]

    def users_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.src == name]


def _constant(node: Node, value: float) -> bool:
    return node.op is CONSTANT and node.attrs["value"].size == 1 and \
        float(node.attrs["value"].reshape(())) == value


def _negated(node: Node) -> Node | None:
    """``a`` if ``node`` is ``−a`` (``neg(a)``, ``(−1)·a``, ``0 − a``)."""
    if node.op.name == "neg":
        return node.inputs[0]
    if node.op.name == "mul" and len(node.inputs) == 2:
        c, a = node.inputs if node.inputs[0].op is CONSTANT else node.inputs[::-1]
        return a if _constant(c, -1.0) else None
    if node.op.name == "sub" and _constant(node.inputs[0], 0.0):
        return node.inputs[1]
    return None


def _complement(node: Node) -> Node | None:
    """``a`` if ``node`` is ``1 − a`` (or ``1 + (−a)``, ``−a + 1``)."""
    if node.op.name == "sub" and _constant(node.inputs[0], 1.0):
        return node.inputs[1]
    b = _one_plus(node)
    return _negated(b) if b is not None else None


def _one_plus(node: Node) -> Node | None:
    """``b`` if ``node`` is ``1 + b`` (either order)."""
    if node.op.name != "add" or len(node.inputs) != 2:
        return None
    c, b = node.inputs if node.inputs[0].op is CONSTANT else node.inputs[::-1]
    return b if _constant(c, 1.0) else None


def written_sigmoid(node: Node) -> list[Node] | None:
    """The nodes of a logistic sigmoid written out by hand — ``1 / (1 + exp(−a))``,
    ``(1 + exp(−a)) ** −1``, ``0.5 · (tanh(a / 2) + 1)`` — from ``node`` (its top) down to, not
    including, ``a``; None if ``node`` is not one. Such a unit is a σ like ``uf.sigmoid`` (the
    same function: the drawing does not depend on how it is spelled)."""
    op = node.op.name
    if op == "div" and _constant(node.inputs[0], 1.0) or \
            op == "pow" and _constant(node.inputs[1], -1.0):
        denominator = node.inputs[1] if op == "div" else node.inputs[0]
        e = _one_plus(denominator)
        if e is not None and e.op.name == "exp" and _negated(e.inputs[0]) is not None:
            return [node, denominator, e, e.inputs[0]]
        return None
    if op == "mul" and len(node.inputs) == 2:
        c, b = node.inputs if node.inputs[0].op is CONSTANT else node.inputs[::-1]
        t = _one_plus(b) if _constant(c, 0.5) else None
        if t is not None and t.op.name == "tanh":
            half = t.inputs[0]
            if half.op.name == "div" and _constant(half.inputs[1], 2.0) or \
                    half.op.name == "mul" and any(_constant(i, 0.5) for i in half.inputs):
                return [node, b, t, half]
    return None


def _kind(rec: Recurrence, node: Node, name: str) -> str:
    """What the variable ``name`` (drawn as ``node``) is; names are unique in a recurrence."""
    if node.op is INPUT:
        if name in rec.contexts:
            return "context"
        return "target" if name in rec.targets else "input"
    if name in rec._states:
        return "state"
    if name in rec.outputs:
        return "output"
    if name in rec.losses:
        return "loss"
    return "named"


Source = tuple[str, int, bool]          # (variable or point, delay, backward)


class _Contraction:
    """Walks the folded body once; see ``contract``."""

    def __init__(self, rec: Recurrence, hide: frozenset[str], detail: bool = False,
                 named_gates: dict[Node, str] | None = None) -> None:
        self.rec, self.hide, self.detail = rec, hide, detail
        self.body = rec.body()
        self.rank = {n: i for i, n in enumerate(self.body)}
        # the node that *is* each drawn variable: a named node, or the unnamed expression it
        # names (so that reading the expression reads the variable)
        self.var_of: dict[Node, str] = {}
        self.node_of: dict[str, Node] = {}
        # an expression several names alias (a state's new value given to rec.output too):
        # the names in body order, each drawn reading the one before it, as if each call had
        # been given the node the previous one returned; every other reader of the expression
        # or of one of its names reads the last (a loss on h(t) = o(t) reads o, as in 10.3)
        aliases: dict[Node, Node] = {}      # each alias node → the unnamed expression it names
        for node in self.body:
            if node.name is None or node.op in (PARAM, CONSTANT, STATE) or node.name in hide:
                continue
            if node.name in self.node_of:               # an alias of a drawn variable's node
                continue
            inner = node.inputs[0] if node.op is ALIAS and node.inputs else None
            named = inner is not None and inner.name is None and bool(inner.inputs)
            if named and inner not in self.var_of:
                self.var_of[inner] = node.name
                self.node_of[node.name] = inner
            else:
                self.node_of[node.name] = node
            if named:
                aliases[node] = inner
            self.var_of[node] = node.name
        names: dict[Node, list[str]] = {}
        for alias, inner in aliases.items():
            names.setdefault(inner, []).append(alias.name)
        chains = {inner: found for inner, found in names.items() if len(found) > 1}
        #: expression or alias node → the names of its chain, in body order
        self.chains: dict[Node, list[str]] = {
            **chains, **{a: chains[inner] for a, inner in aliases.items() if inner in chains}}
        self.reader: str | None = None              # the variable whose edges are being found
        for node, name in (named_gates or {}).items():  # unnamed gates, named by their role
            self.node_of[name], self.var_of[node] = node, name
        self.taken = {n.name for n in self.body if n.name is not None}
        self.taken |= set((named_gates or {}).values())
        self.users: dict[Node, list[Node]] = {}
        for node in self.body:
            for i in set(node.inputs):
                self.users.setdefault(i, []).append(node)
        self.sigmoid_tops: set[Node] = set()     # σ written out by hand: its top node …
        self.sigmoid_parts: set[Node] = set()    # … and the nodes under it (not units)
        for node in self.body:
            parts = written_sigmoid(node) if node.inputs else None
            if parts is not None:
                self.sigmoid_tops.add(node)
                self.sigmoid_parts.update(parts[1:])
        # a value read only in slices by several readers (the gates' pre-activations stacked
        # in one W h + U x + b): a point of its own, so that W and U label one edge each into
        # it and the delay square's loop runs into it, not fanned out over every gate
        self.stacked: dict[str, Node] = {}
        if not detail:
            for node in self.body:
                users = self.users.get(node, ())
                if node.name is None and node not in self.var_of and node.inputs and \
                        self.unit(node) is None and len(users) > 1 and \
                        all(u.op.name == "getitem" for u in users) and \
                        self.reads_variables(node):
                    name = self.point_name("z")
                    self.node_of[name], self.var_of[node] = node, name
                    self.stacked[name] = node
        # variables in the order their values are computed, whatever the order of the
        # declarations (an output named after the loss that reads it is still below the loss)
        self.node_of = dict(sorted(self.node_of.items(), key=lambda kv: self.rank[kv[1]]))
        self.kept: dict[str, Node] = {}             # each point, product or unit: its node

    def unit(self, node: Node) -> str | None:
        """The nonlinearity ``node`` is (``sigmoid`` also when written out by hand), or None
        (also for the inner nodes of a written-out σ)."""
        if node in self.sigmoid_parts:
            return None
        if node in self.sigmoid_tops:
            return "sigmoid"
        return node.op.name if node.op.name in UNITS else None

    def reads_variables(self, node: Node) -> bool:
        """Whether ``node`` is computed from some variable of the step (not from parameters
        and constants alone)."""
        seen, stack = set(), [node]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n is not node and (n.op in (STATE, INPUT) or n in self.var_of):
                return True
            stack.extend(n.inputs)
        return False

    def source(self, node: Node) -> Source | None:
        """(variable, delay, backward) if ``node`` ends a contraction as a variable, else None."""
        if node.op is STATE:
            st = self.rec._state_of[node]
            return st.name, node.attrs["delay"], st.backward
        chain = self.chains.get(node)
        if chain is not None:
            k = chain.index(self.reader) if self.reader in chain[1:] else len(chain)
            return chain[k - 1], 0, False
        name = self.var_of.get(node)
        return None if name is None else (name, 0, False)

    def region(self, top: Node) -> list[Node]:
        """The unnamed op nodes between ``top`` and the variables/params it reads, in body
        order."""
        seen: set[Node] = set()
        stack = list(top.inputs)
        while stack:
            node = stack.pop()
            if node in seen or self.source(node) is not None or not node.inputs:
                continue
            seen.add(node)
            stack.extend(node.inputs)
        return sorted(seen, key=self.rank.__getitem__)

    def edges_into(self, name: str) -> tuple[list[Edge], list[Variable]]:
        """The edges into variable ``name``, and the points they pass through: a point is the
        unnamed value that a parameter multiplies when another parameter was applied below it
        (``tanh(V2 @ h)`` in ``V @ tanh(V2 @ h)``)."""
        self.reader = name
        top = self.node_of[name]
        region = self.region(top)
        inside = set(region) | {top}
        # below[n]: the variables that op node n reads
        below: dict[Node, set[Source]] = {}
        for node in region + [top]:
            found: set[Source] = set()
            for i in node.inputs:
                src = self.source(i)
                found |= {src} if src is not None else below.get(i, set())
            below[node] = found
        multiplies: dict[Node, list[str]] = {}     # node → params that multiply there
        adds: dict[Node, list[str]] = {}           # node → params added there
        for p in sorted({i for n in inside for i in n.inputs if _labels(i)},
                        key=self.rank.__getitem__):
            for meet in self.meetings(p, inside, below):
                table = adds if meet.op.name in ADDITIVE else multiplies
                _extend(table.setdefault(meet, []), [p.name])
        # multiplied[n]: some parameter multiplies on a path into region node n (n included)
        multiplied: dict[Node, bool] = {}
        for node in region:
            multiplied[node] = node in multiplies or any(multiplied.get(i, False)
                                                         for i in node.inputs)
        points = [n for n in region if multiplied[n] and any(
            m in multiplies and any(i is n for i in m.inputs)
            for m in self.users.get(n, ()) if m in inside)]
        kinds = {n: "point" for n in points}
        # the cell view: products (gating ×) and units (σ) — in the step's cell, not in its
        # outputs and losses (the × of a squared error gates nothing)
        detail = self.detail and name not in self.rec.outputs and name not in self.rec.losses
        if detail:
            for n in region:
                if _gating(n, below):
                    kinds[n] = "product"
                elif self.unit(n) and multiplied[n] and not self.sliced(n) or \
                        n.op.name == "getitem" and n.inputs[0] in multiplied and \
                        multiplied[n.inputs[0]] and self.sliced(n.inputs[0]):
                    kinds[n] = "unit"          # (each slice of σ(z) over several gates)
            for n in region:        # 1 − u or a − b into a gating × (a GRU's, a coupled
                if any(kinds.get(u) == "product" or u is top and _gating(top, below)   # LSTM's)
                       for u in self.users.get(n, ())):
                    if _complement(n) is not None:
                        kinds[n] = "complement"
                    elif n.op.name == "sub":
                        kinds[n] = "difference"
        kept = [n for n in region if n in kinds]
        names = {top: name}
        made = []
        # (a unit that two variables read — the minimal gated unit's σ, read by a candidate
        # the user named and by h — is one unit: kept by the first, a source for the second)
        known = {n: k for k, n in self.kept.items()} if detail else {}
        for m in kept:
            if m in known:
                names[m] = known[m]
                continue
            names[m] = self.point_name(name)
            self.kept[names[m]] = m
            layer = m.inputs[0] if m.op.name == "getitem" else m
            made.append(Variable(names[m], kinds[m], owner=name, op=ARITHMETIC.get(kinds[m]) or
                                 SYMBOLS.get("mul" if kinds[m] == "product" else
                                             self.unit(layer) or layer.op.name)))
        edges = []
        heads = [m for m in kept if m not in known] + [top]
        if detail and _gating(top, below):           # h = tanh(s) q: a × node, then h
            names[top] = self.point_name(name)
            made.append(Variable(names[top], "product", owner=name, op=SYMBOLS["mul"]))
            edges.append(Edge(names[top], name))
        for k in heads:
            into = self.walk(k, set(kept), below, multiplies, adds)
            for s, (labels, biases) in sorted(into.items(), key=lambda kv: self.order(kv[0])):
                src, delay, backward = (names[s], 0, False) if isinstance(s, Node) else s
                edges.append(Edge(src, names[k], delay, backward, self.in_order(labels),
                                  self.in_order(biases)))
        return edges, made

    def sliced(self, node: Node) -> bool:
        """Whether ``node`` (a layer such as σ(z)) is only ever read in slices: several gates
        computed at once, each slice a unit of its own."""
        users = self.users.get(node, ())
        return self.unit(node) is not None and bool(users) and \
            all(u.op.name == "getitem" for u in users)

    def in_order(self, params: list[str]) -> tuple[str, ...]:
        """Parameter names in the order the parameters were made (the order they are written
        in ``b + W h + U x``)."""
        return tuple(sorted(params, key=lambda p: self.rank[self.rec.params[p]]
                            if p in self.rec.params else len(self.rank)))

    def point_name(self, owner: str) -> str:
        """A fresh name for the next point of ``owner``: ``o·1``, ``o·2``…"""
        k = 1
        while f"{owner}{UNNAMED}{k}" in self.taken:
            k += 1
        self.taken.add(f"{owner}{UNNAMED}{k}")
        return f"{owner}{UNNAMED}{k}"

    def walk(self, k: Node, kept: set[Node], below: dict, multiplies: dict, adds: dict
             ) -> dict[object, tuple[list[str], list[str]]]:
        """What ``k`` reads through unkept region nodes: each source or kept point met, with
        the parameters multiplied and added on the way."""
        out: dict[object, tuple[list[str], list[str]]] = {}
        stack: list[tuple[Node, tuple, tuple]] = [(k, (), ())]
        seen = set()
        while stack:
            n, labels, biases = stack.pop()
            if (n, labels, biases) in seen:
                continue
            seen.add((n, labels, biases))
            labels += tuple(multiplies.get(n, ()))
            biases += tuple(adds.get(n, ()))
            for i in n.inputs:
                src = self.source(i)
                target = src if src is not None else i if i in kept else None
                if target is not None:
                    old = out.setdefault(target, ([], []))
                    _extend(old[0], labels)
                    _extend(old[1], biases)
                elif below.get(i):
                    stack.append((i, labels, biases))
        return out

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
        return sorted(found, key=self.rank.__getitem__)

    def order(self, src: object) -> tuple:
        if isinstance(src, Node):
            return (self.rank[src], 0)
        name, delay, _ = src
        return (self.rank.get(self.node_of.get(name), -1), delay)


def _labels(node: Node) -> bool:
    """Whether ``node`` names an edge it is met on: a parameter, or a named constant (an echo
    state network's fixed reservoir ``W``, ``U``, section 10.8)."""
    return node.op is PARAM or node.op is CONSTANT and node.name is not None


def _gating(node: Node, below: dict) -> bool:
    """An element-wise product of two values that both depend on variables (a gate times what
    it lets through): the × of Fig. 10.16."""
    if node.op.name != "mul" or len(node.inputs) != 2:
        return False
    return all(i.op is STATE or i.op is INPUT or i.name is not None or below.get(i)
               for i in node.inputs) and not any(i.op in (PARAM, CONSTANT) for i in node.inputs)


def _extend(items: list[str], more: Iterable[str]) -> None:
    for x in more:
        if x not in items:
            items.append(x)


def check_recurrence(rec: object) -> None:
    """Raise a TypeError that says what to do if ``rec`` is not a recurrence."""
    if not isinstance(rec, Recurrence):
        raise UnfoldTypeError(f"viz draws an unfold.Recurrence, got {type(rec).__name__}; for "
                              f"any other graph of nodes use viz.graph(nodes)")


def contract(rec: Recurrence, hide: Iterable[str] = (), detail: bool = False) -> Book:
    """The book view of ``rec``: variables and parameter-labelled edges (see the module doc).

    ``hide`` names values not to draw: inner values (``rec.name_node``) and outputs are then
    contracted away like unnamed ones (the pre-activation ``a`` of eq. 10.8, which Fig. 10.3
    does not draw), a hidden loss disappears with the targets only it reads (Fig. 10.6 at test
    time). ``detail`` also keeps, as variables of their own, the element-wise products of two
    values (kind ``product``, the gating × of an LSTM) and the unnamed nonlinear layers (kind
    ``unit``, the σ of the LSTM's cell input): the cell view of ``viz.cell``.
    """
    check_recurrence(rec)
    rec.check()
    if isinstance(hide, str) or not isinstance(hide, Iterable):
        raise UnfoldTypeError(f"hide must be a list of names, got {hide!r}")
    hide = frozenset(hide)
    hideable = {n.name for n in rec.body() if n.name is not None and n.inputs and
                n.name not in rec._states}
    for name in hide:
        if name not in hideable:
            raise UnfoldValueError(f"cannot hide {name!r}: only named inner values, outputs and "
                                   f"losses can be hidden ({sorted(hideable)})")
    unnamed, of_node = ({}, {}) if detail else _unnamed_gates(rec, hide)
    book, c = _contracted(rec, hide, detail, unnamed)
    # the gates' roles: of the unnamed ones in a book, of every unit in a detailed one (read
    # before the order changes: of two σ multiplied together the first computed is the gate)
    found = roles_in(book) if detail else dict(unnamed.values())
    for name, r in found.items():
        if name in book.variables:
            book.variables[name] = replace(book.variables[name], role=r)
    book.roles = found if detail else {name: of_node[n] for name, n in c.node_of.items()
                                       if n in of_node}
    _in_book_order(book, book.roles)
    return book


def _in_book_order(book: Book, roles: dict[str, str]) -> None:
    """The variables in the order they are computed, except that a cell's units (and, in a
    detailed book, the products they gate) follow the book's order (``viz.gates.ORDER``: input,
    input gate, forget gate, output gate) wherever neither reads the other: the same cell
    whatever order its gates were written in. (A product ranks as its first-ranked gate.)"""
    rank = {n: ORDER.index(r) for n, r in roles.items() if r in ORDER}
    for v in book.variables.values():
        if v.kind == "product":
            found = [rank[e.src] for e in book.inputs_of(v.name) if e.src in rank]
            if found:
                rank[v.name] = min(found)
    if len(rank) < 2:
        return
    names = list(book.variables)
    pos = {n: k for k, n in enumerate(names)}
    first = min(pos[n] for n in rank)
    key = {n: (first, rank[n], pos[n]) if n in rank else (pos[n], -1, 0) for n in names}
    waiting = {n: 0 for n in names}
    readers: dict[str, list[str]] = {}
    for e in book.edges:
        if not e.delay and e.src in waiting and e.dst in waiting and e.src != e.dst:
            waiting[e.dst] += 1
            readers.setdefault(e.src, []).append(e.dst)
    ready = [key[n] + (n,) for n in names if not waiting[n]]
    heapq.heapify(ready)
    order = []
    while ready:
        n = heapq.heappop(ready)[-1]
        order.append(n)
        for r in readers.get(n, ()):
            waiting[r] -= 1
            if not waiting[r]:
                heapq.heappush(ready, key[r] + (r,))
    order += [n for n in names if n not in set(order)]      # (on a cycle: as they were)
    book.variables = {n: book.variables[n] for n in order}


def _contracted(rec: Recurrence, hide: frozenset[str], detail: bool,
                unnamed: dict[Node, tuple[str, str]]) -> tuple[Book, "_Contraction"]:
    """The book of ``rec`` (see ``contract``) with the ``unnamed`` gates named: node → (name,
    role)."""
    c = _Contraction(rec, hide, detail, {n: name for n, (name, _) in unnamed.items()})
    book = Book(rec.name)
    for name, node in c.node_of.items():
        if name in c.stacked:
            readers = sorted({v for u in c.users[node] for v in _readers(c, u)},
                             key=lambda v: c.rank[c.node_of[v]])
            book.variables[name] = Variable(name, "point", members=tuple(readers),
                                            stacked=True)
            continue
        kind = _kind(rec, node, name)
        st = rec._states.get(name)
        steps = rec.losses[name][1] if kind == "loss" else None
        inner = node if node.op is not ALIAS else node.inputs[0]
        op = SYMBOLS.get(c.unit(inner) or inner.op.name)
        book.variables[name] = Variable(name, kind, bool(st and st.backward), steps,
                                        op=op if detail and op != "×" else None)
    edges: list[Edge] = []
    for name, node in list(c.node_of.items()):
        if node.inputs:
            into, points = c.edges_into(name)
            edges += into
            for p in points:
                book.variables[p.name] = p
    book.variables = _points_before_owners(book.variables)
    book.edges = _merged(edges)
    _draw_fed_back_as_their_source(book)
    _targets_by_use(book)
    linked = {n for e in book.edges for n in (e.src, e.dst)}
    if linked:                                   # what a hidden loss alone read
        book.variables = {k: v for k, v in book.variables.items() if k in linked}
    return book, c


def _readers(c: "_Contraction", node: Node) -> set[str]:
    """The variables that read ``node`` through unnamed nodes."""
    found, seen, stack = set(), set(), [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n is not node and n in c.var_of:
            found.add(c.var_of[n])
            continue
        stack.extend(c.users.get(n, ()))
    return found


def _unnamed_gates(rec: Recurrence, hide: frozenset[str]
                   ) -> tuple[dict[Node, tuple[str, str]], dict[Node, str]]:
    """The σ units of the step that gate something on its way to a state (``viz.gates``) and
    that the user did not name (nor hide): each with the chapter's letter for its role (``f``,
    ``g``, ``q``, ``u``, ``r``; primed when taken) and the role; and the role of every unit
    that has one, named or not (``viz.gates.roles``), by node."""
    detailed, c = _contracted(rec, hide, True, {})
    hidden = {n.inputs[0] for n in c.body if n.op is ALIAS and n.inputs and n.name in hide}
    taken = set(c.taken)
    out: dict[Node, tuple[str, str]] = {}
    for name, what in gates(detailed).items():
        if c.kept[name] in hidden:
            continue
        letter = LETTERS[what]
        while letter in taken:
            letter += "'"
        taken.add(letter)
        out[c.kept[name]] = (letter, what)
    of_node = {c.kept.get(name, c.node_of.get(name)): r
               for name, r in roles_in(detailed).items()}
    return out, of_node

def _points_before_owners(variables: dict[str, Variable]) -> dict[str, Variable]:
    """Variables in the order they are computed (points just before their owner)."""
    points: dict[str, list[Variable]] = {}
    for v in variables.values():
        if v.owner is not None:
            points.setdefault(v.owner, []).append(v)
    out = {}
    for v in variables.values():
        if v.owner is None:
            for p in points.get(v.name, ()):
                out[p.name] = p
            out[v.name] = v
    return out


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


def _targets_by_use(book: Book) -> None:
    """A sequence that only losses read in its own step (states may feed it back to the next
    step) is a target, drawn above its loss: ``rec.sequence("y", …)`` read by the loss alone
    draws as ``rec.target("y", …)`` does."""
    def loss_side(name: str) -> bool:
        v = book.variables[name]
        return v.kind == "loss" or (v.owner is not None and
                                    book.variables[v.owner].kind == "loss")
    for var in list(book.variables.values()):
        if var.kind != "input":
            continue
        now = [e.dst for e in book.users_of(var.name) if e.delay == 0]
        if now and all(loss_side(d) for d in now):
            book.variables[var.name] = Variable(var.name, "target")
