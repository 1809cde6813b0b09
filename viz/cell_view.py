"""The cell view: one step of a gated recurrence as the book draws the LSTM cell (Fig. 10.16).

``viz.cell(rec)`` draws the folded step in detail: besides the named values, every element-wise
product of two values is a small ``×`` node (the gating of an LSTM or GRU), and every unnamed
nonlinear layer is a unit with its symbol (the ``σ`` of the LSTM's cell input). Units that are
nonlinearities (the gates ``f = σ(…)``) show their symbol inside the circle and their name — or
the words given in ``names`` ("forget gate") — beside it; an unnamed unit that a gate multiplies
is the cell's ``input``. A state read only by its own update keeps its self-loop through the
delay square (the LSTM's state ``s``, through the forget gate's ×); a state that other units read
(the LSTM's output ``h``) is drawn as an input of the cell at the bottom, ``h(t−1)``, beside
``x(t)``, as is a fed-back target ``y(t−1)``. Everything comes from the graph: any gated cell a
user writes is drawn the same way.
"""
from __future__ import annotations

from typing import AbstractSet, Mapping, Sequence

from unfold.errors import UnfoldTypeError, UnfoldValueError
from unfold.recurrence import Recurrence

from . import labels as L
from . import loops
from .book import Book, Edge, Variable, _merged, check_recurrence, contract, is_unnamed
from .output import Drawing
from .views import POINT_NODE, _check_flags, _Drawer, new_graph, width

PRODUCT = {"shape": "circle", "width": "0.32", "height": "0.32", "fixedsize": "true",
           "fontsize": "16"}
#: the most layouts ``viz.loops.untangle`` tries for a cell (each ~30 ms: a drawing with no
#: clash costs the one layout that finds none)
TRIES = 1
#: how much wider (inches) an arithmetic node grows for each input beyond two: four arrowheads
#: into memory_network's 0.32-inch × met in pairs
WIDER_PER_INPUT = 0.12


def _private(book: Book, start: str, state: str) -> bool:
    """Whether ``start``, a reader of the state's past value, belongs to the state's own loop:
    the state itself, or a product (the forget gate's ×) whose every way within the step leads
    to the state alone, through products and points."""
    if start == state:
        return True
    if book.variables[start].kind not in ("product", "point"):
        return False
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for e in book.users_of(name):
            if e.delay:
                continue
            if e.dst == state:
                continue
            if book.variables[e.dst].kind not in ("product", "point"):
                return False
            stack.append(e.dst)
    return True


def _states_read_as_inputs(book: Book) -> Book:
    """A state whose past value other units read (an LSTM's h(t−1) into its gates) becomes an
    input of the cell, ``h(t−1)``, drawn at the bottom; a state read only within its own loop
    keeps its delay edges. So does a target, input or output fed back to the next step (a
    state holding one_hot(y), drawn as y: Fig. 10.9's ``y(t−1)``), which has no loop of its
    own: from a square beside y at the top, its edges ran down the whole cell."""
    out = Book(book.name, dict(book.variables), list(book.edges))
    for var in list(book.variables.values()):
        delayed = [e for e in book.edges if e.src == var.name and e.delay]
        if not delayed or var.kind == "state" and all(
                _private(book, e.dst, var.name) for e in delayed):
            continue
        edges = []
        for e in out.edges:
            if e.src == var.name and e.delay:
                past = f"{var.name}(t-{e.delay})" if not e.backward else \
                    f"{var.name}(t+{e.delay})"
                if past not in out.variables:
                    out.variables = {past: Variable(past, "input", shows=(
                        var.name, past[len(var.name) + 1:-1])), **out.variables}
                e = Edge(past, e.dst, 0, False, e.labels, e.biases)
            edges.append(e)
        out.edges = _merged(edges)
    return out


def _words(book: Book, names: Mapping[str, str]) -> dict[str, str]:
    """The words written beside each unit: those given, else its role (``viz.gates.roles``, as
    ``contract(detail=True)`` found it: a gate named by what it gates, an unnamed unit that a
    gate multiplies the cell's "input")."""
    return {**{v.name: v.role for v in book.variables.values() if v.role},
            **{k: v for k, v in names.items() if k in book.variables}}


def _spread(book: Book, row: Mapping[str, int], in_row: Mapping[int, list[str]],
            column: AbstractSet[str] = frozenset()) -> dict[tuple[str, str], str]:
    """(unit, source) → the port at which each of several inputs from the row below enters a
    unit (``x(t)`` and ``h(t−1)`` into every gate of an LSTM: at one point their arrowheads
    met): the one straight under it at ``s``, those left of it at ``sw``, right at ``se`` —
    each on the side it comes from, so that no edge hooks round the unit to reach a far
    corner; two on one side, the nearer at ``s`` (the ``input`` unit, leftmost: ``s``, ``se``).
    Where a variable stands is guessed from its place in its row, centred (``x``, ``h(t−1)``
    under the middle two of four gates) — but where the drawing's ``column`` runs through both
    rows, its value below stands under its value above, and the others where dot pulls them,
    under the middle of the units they feed (lstm_pytorch's h(t−1) under the forget gate, the
    second of four gates, and x right of it: guessed left, x entered the forget gate at ``s``,
    0.3 pt from h(t−1)'s arrowhead, and the other gates from the wrong side)."""
    def place(name: str) -> float:
        names = in_row[row[name]]
        return names.index(name) - (len(names) - 1) / 2
    line = {row[n]: n for n in column}

    def where(src: str, r: int) -> float:     # (in row r's places)
        if r not in line or row[src] not in line:
            return place(src)
        if src in column:
            return place(line[r])
        fed = [place(e.dst) for e in book.users_of(src) if not e.delay and row[e.dst] == r]
        return sum(fed) / len(fed)
    out = {}
    for dst in book.variables:
        srcs = {e.src for e in book.inputs_of(dst) if not e.delay and row[e.src] == row[dst] - 1}
        if not 2 <= len(srcs) <= 3:
            continue
        here = place(dst)
        at = {s: where(s, row[dst]) for s in srcs}
        srcs = sorted(srcs, key=lambda s: (at[s], place(s)))
        straight = [s for s in srcs if s in column and dst in column]
        if straight:             # (its edge keeps the middle: the others on their sides,
            # two on one side the farther at the side's middle)
            key = {s: (at[s], place(s)) for s in srcs}
            left = [s for s in srcs if key[s] < key[straight[0]]]
            right = [s for s in srcs if key[s] > key[straight[0]]]
            out.update(zip(((dst, s) for s in left), ["w", "sw"][-len(left):]))
            out.update(zip(((dst, s) for s in right), ["se", "e"]))
            continue
        ports = ["s" if abs(at[s] - here) < 0.25 else "sw" if at[s] < here else "se"
                 for s in srcs]
        if len(set(ports)) < len(ports):         # (all on one side: the nearest at s)
            ports = ["sw", "s", "se"] if len(srcs) == 3 else \
                ["s", "se"] if ports[0] == "se" else ["sw", "s"] if ports[-1] == "sw" else \
                ["sw", "se"]
        out.update(((dst, src), port) for src, port in zip(srcs, ports))
    return out


class _CellDrawer(_Drawer):
    """A folded drawer whose nodes show units (symbol inside, words beside) and products."""

    reach_first = False          # the units in the order they are computed, as Fig. 10.16

    def __init__(self, dot, book: Book, words: Mapping[str, str], params: bool) -> None:
        super().__init__(dot, book, None, params=params, biases=False)
        self.words = words
        self.name_of: dict[str, str] = {}           # node id → variable
        self.spread: dict[tuple[str, str], str] | None = None   # (once the column is known)

    def in_row(self) -> dict[int, list[str]]:
        """Each row's variables left to right, as ``_spread`` guesses them: the units in the
        book's order (``cell`` chains them), the inputs ``x(t)``, then the states' pasts
        ``h(t−1)``, then a backward state's ``g(t+1)`` (not chained: ordering the bottom row
        added crossings to stacked cells)."""
        out: dict[int, list[str]] = {}
        for name, v in self.book.variables.items():
            out.setdefault(self.row[name], []).append(name)

        def when(name: str) -> int:
            shows = self.book.variables[name].shows
            return 0 if shows is None else 1 if shows[1].startswith("t-") else 2
        return {r: sorted(names, key=when) for r, names in out.items()}

    def connect(self, tail: str, head: str, e: Edge, tip: str, **kw) -> None:
        """(Several inputs from below enter a unit at points of their own: ``_spread``; not
        the column's own edge, ``weight`` 4, which a port pulls out of line.)"""
        if self.spread is None:
            self.spread = _spread(self.book, self.row, self.in_row(), self.column)
        if not kw.get("port") and kw.get("weight") != "4" and (e.dst, e.src) in self.spread:
            kw["port"] = self.spread[(e.dst, e.src)]
        super().connect(tail, head, e, tip, **kw)

    def edge(self, a: str, b: str, **attrs: str) -> None:
        """(A delay square's edge down into a gating × enters it from the side of the square:
        at its top it met the ×'s own edge up into the state.)"""
        var = self.book.variables.get(self.name_of.get(b, ""))
        if "[delay" in a and ":" not in b and var is not None and var.kind == "product":
            b += ":e"
        super().edge(a, b, **attrs)

    def variable(self, name: str, step: str | None = None, key: str | None = None,
                 suffix: str = "", **attrs: str) -> str:
        var = self.book.variables[name]
        word = self.words.get(name, "")
        node = L.node_id(*(var.shows or (name,))) + suffix + self.suffix
        if var.kind == "product":
            look = {"label": L.plain("×"), **self.arithmetic(name),
                    "tooltip": L.tooltip(f"×: an element-wise product inside {var.owner}")}
        elif var.kind == "complement":           # the 1 − u a GRU's candidate is gated by
            look = {"label": L.plain("1 −"), **self.arithmetic(name, 0.42), "fontsize": "12",
                    "tooltip": L.tooltip(f"1 − the value below, inside {var.owner}")}
        elif var.kind == "difference":           # the h~ − h(t−1) an interpolation gates
            look = {"label": L.plain("−"), **self.arithmetic(name),
                    "tooltip": L.tooltip(f"a difference of the values below, inside {var.owner}")}
        elif self.is_point(name):                # a value on the way, between parameters
            look = {**POINT_NODE, "tooltip": L.tooltip(f"an unnamed value inside {var.owner}")}
        elif var.kind in ("unit", "point") or var.op:
            unnamed = var.kind in ("unit", "point")   # (a point's op: an unnamed layer)
            look = {"label": L.unit(var.op if unnamed and not word else name,
                                    None if unnamed and not word else var.op, word),
                    "width": self.size(word, "" if unnamed or word else name),
                    "tooltip": L.tooltip(f"an unnamed {var.op} unit inside {var.owner}" if unnamed
                                       else f"{name} = {var.op}(…)")}
        elif var.shows is not None:              # a state read as an input, h(t−1)
            look = {"label": L.variable(*var.shows), "width": self.size("", *var.shows),
                    "tooltip": L.tooltip(f"{var.shows[0]}({L.step_text(var.shows[1])})")}
        else:
            look = {"label": L.unit(name, None, word) if word else L.variable(name),
                    "width": self.size(word, "" if word else name), "tooltip": L.tooltip(name)}
        self.dot.node(node, **{**look, **attrs})
        self.ranks.setdefault(self.row[name], []).append(node)
        self.name_of[node] = name
        return node

    def arithmetic(self, name: str, least: float = float(PRODUCT["width"])) -> dict[str, str]:
        """The look of an arithmetic node (× , 1 −, −): a small circle at least ``least``
        inches wide, ``WIDER_PER_INPUT`` wider for each input beyond two, so that every
        arrowhead has room of its own round it."""
        extra = max(len(self.book.inputs_of(name)) - 2, 0)
        size = str(round(least + WIDER_PER_INPUT * extra, 2))
        return {**PRODUCT, "width": size, "height": size}

    def said(self, name: str, step: str | None = None) -> str:
        """(An unnamed unit by its words: ``forget gate``.)"""
        word = self.words.get(name)
        return word if word and is_unnamed(name) else super().said(name, step)

    def is_point(self, name: str) -> bool:
        """(A point that applies an op — the tanh of ``V2 tanh(V1 h)`` — is a unit here, drawn
        with its symbol.)"""
        return super().is_point(name) and not self.book.variables[name].op

    def size(self, word: str, name: str = "", step: str | None = None) -> str:
        """A circle wide enough for the longest word, and for ``name`` with its superscript."""
        longest = max((len(w) for w in word.split()), default=0)
        lines = len(word.split()) + 1                   # (and the symbol's line)
        return str(round(max(0.62, 0.1 * longest + 0.3, 0.19 * lines + 0.2,
                             width(name, step) if name else 0), 2))


def cell(rec: Recurrence, *, names: Mapping[str, str] | None = None, params: bool = False,
         hide: Sequence[str] = ()) -> Drawing:
    """One step of ``rec`` drawn as Fig. 10.16 draws the LSTM cell: units with their symbols
    and names (or the words of ``names``, e.g. ``{"f": "forget gate"}``), the gating × nodes,
    states with their loops through the delay square, states read by other units as inputs
    ``h(t−1)``. ``params=True`` writes the parameters on the edges; ``hide`` as in
    ``viz.folded``."""
    check_recurrence(rec)
    _check_flags(params=params)
    names = {} if names is None else names
    if not isinstance(names, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in names.items()):
        raise UnfoldTypeError(f"names must map variable names to words, got {names!r}")
    book = _states_read_as_inputs(contract(rec, hide, detail=True))
    unknown = sorted(set(names) - set(book.variables))
    if unknown:
        raise UnfoldValueError(f"names given for {unknown}, which the cell does not draw; it "
                               f"draws {[v for v in book.variables if not is_unnamed(v)]}")
    words = _words(book, names)

    def draw(ports: loops.Ports) -> Drawing:
        return _draw_cell(book, f"{rec.name} (cell)", words, params, ports)
    return draw(loops.untangle(draw, tries=TRIES))


def _draw_cell(book: Book, title: str, words: Mapping[str, str], params: bool,
               ports: loops.Ports) -> Drawing:
    """The cell drawing of ``book`` with the edge ends ``ports`` moved (``viz.loops``)."""
    dot = new_graph(title, nodesep="0.45", ranksep="0.45")
    d = _CellDrawer(dot, book, words, params)
    d.ports = ports
    ids = d.folded()
    rows: dict[int, list[str]] = {}             # the units of a row in the book's order
    for name in book.variables:                 # (contract's: input, input gate, forget …)
        if name in words and name in ids:
            rows.setdefault(d.row[name], []).append(ids[name])
    for chain in rows.values():
        for a, b in zip(chain, chain[1:]):
            d.invisible(a, b)
    d.close()
    return dot
