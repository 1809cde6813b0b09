"""The book view of a recurrence, as graphviz: folded, unfolded, and both with the "Unfold" arrow.

Every drawing is a ``graphviz.Digraph`` laid out bottom to top (``rankdir=BT``): one rank per row
of ``layout.rows`` (``{rank=same}``), time left to right inside a row (invisible flat edges fix the
order), and the cells of one step stacked in a column (``group=`` and invisible vertical edges).
A step with internal values (gates) is drawn as one cell per step (``viz.cells``).
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, Sequence

import graphviz

from unfold.errors import UnfoldTypeError
from unfold.recurrence import Recurrence

from . import cells as C
from . import labels as L
from . import loops
from .book import Book, Edge, Variable, check_recurrence, contract, is_unnamed
from .layout import Column, Placement, axis, place, readouts, rows, shown_steps
from .output import Drawing

GRAPH = {"rankdir": "BT", "newrank": "true", "nodesep": "0.5", "ranksep": "0.5",
         "fontname": L.FONT, "forcelabels": "true", "outputorder": "edgesfirst"}
NODE = {"shape": "circle", "fixedsize": "true", "fontname": L.FONT, "fontsize": "14",
        "penwidth": "1.2"}
#: (``arrowhead`` declared first: dot 2.43 lays a flat edge between adjacent nodes that has a
#: port out in a graph of its own, and read its arrow from the attribute declared at that
#: place, the font size: 'Warning: Arrow type "14" unknown')
EDGE = {"arrowhead": "normal", "arrowsize": "0.7", "fontname": L.FONT, "fontsize": "14",
        "penwidth": "1.1"}
DELAY = {"shape": "square", "style": "filled", "fillcolor": "black", "label": "",
         "width": "0.11", "height": "0.11", "fixedsize": "true"}
POINT_NODE = {"shape": "circle", "label": "", "width": "0.13", "height": "0.13",
              "fixedsize": "true", "style": "filled", "fillcolor": "white"}
CELL_NODE = {"shape": "box", "style": "rounded", "fixedsize": "false", "height": "0.45",
             "margin": "0.12,0.04"}
INVISIBLE = {"style": "invis"}
POINT = {"shape": "point", "label": "", "style": "invis", "width": "0.01", "height": "0.01"}

#: concrete steps drawn before the middle of a longer sequence is elided (``max_steps``)
MAX_STEPS = 12
#: the most steps drawn even with max_steps=None (dot takes ~5 s at 300 steps of an RNN,
#: and writing the DOT text of 10**6 steps takes minutes)
DRAWABLE = 1000


class ElidedStepsWarning(UserWarning):
    """A drawing shows fewer steps than the graph has (the middle is drawn as ellipses)."""


#: the longest name whose width all circles share (h1, u′, W_h, ...; "memory" widens its own)
SHORT = 3


def _listed(names: Sequence[str]) -> str:
    """``names`` for a reader: the named ones, then how many values have no name (``z·1``)."""
    unnamed = sum(map(is_unnamed, names))
    return ", ".join([n for n in names if not is_unnamed(n)] + (
        [f"{unnamed} unnamed value{'s' if unnamed > 1 else ''}"] if unnamed else []))


def width(name: str, step: str | None) -> float:
    """The diameter (inches) of a circle just wide enough for ``name`` and its superscript."""
    base, _, sub = name.partition("_")
    chars = len(base) + 0.7 * len(sub) + (0.7 * (len(L.step_text(step)) + 2) if step else 0)
    return round(max(0.55, 0.11 * chars + 0.3), 2)


def new_graph(name: str, **graph_attr: str) -> Drawing:
    """An empty drawing with the book's fonts and sizes."""
    return Drawing(L.plain(name), graph_attr={**GRAPH, **graph_attr},
                   node_attr=NODE, edge_attr=EDGE)


class _Drawer:
    """Writes one book view (or two, for ``unfolding``) into a Digraph."""

    #: folded: in a shared row, the values read higher up first (see ``folded``)
    reach_first = True
    #: unfolded: contexts stand under the middle step (Fig. 10.9), or the first (Fig. 10.12,
    #: where the context comes in from the left)
    context_first = False

    def context_column(self, steps: list[int]) -> int:
        return steps[0] if self.context_first else steps[len(steps) // 2]

    def __init__(self, dot: graphviz.Digraph, book: Book, columns: list[Column] | None, *,
                 params: bool, biases: bool, boxes: bool = False) -> None:
        shared = True if columns is None else set(C.internals(book)) if boxes else False
        self.dot, self.book, self.row = dot, book, rows(book, shared=shared)
        self.steps = [None] + [c.step for c in columns or ()]
        circles = [v.name for v in book.variables.values() if v.kind not in ("point", "cell")]
        #: the circles' common diameter, wide enough for the short names (a letter, with a
        #: digit, prime or subscript) at every step drawn; a longer name widens its own only
        self.width = max((width(n, s) for n in circles if len(n) <= SHORT
                          for s in self.steps), default=0.55)
        self.show_params, self.show_biases = params, biases
        self.ranks: dict[int, list[str]] = {}
        #: the node of each row that the rows are stacked through (else the row's first)
        self.stacked_by: dict[int, str] = {}
        self.joined: set[frozenset] = set()     # pairs of nodes joined by a visible edge
        self.ordered: set[tuple[str, str]] = set()   # invisible edges written
        self.suffix = ""                         # keeps node ids of several panels apart
        #: row → the rank it stands in, when two halves are levelled (``unfolding``)
        self.levels: dict[int, int] | None = None
        self.arcs: frozenset[int] = frozenset()  # rows whose edges up into them span 3 ranks
        #: rows whose edges run between columns (Fig. 10.11's h and g chains: ``jumps_a_chain``)
        self.chains: frozenset[int] = frozenset()
        #: ends moved off the loops (``viz.loops``): (tail, head) → their ports
        self.ports: loops.Ports = {}
        self.folded_suffix = ""                  # that of ``folded``'s node ids
        self.column: set[str] = set()            # ``folded``'s: the values on its line

    def edge(self, a: str, b: str, **attrs: str) -> None:
        """A visible edge (``a`` or ``b`` may carry a port, ``node:w``; ``ports`` may move it)."""
        node = lambda end: end.split(":")[0]
        moved = self.ports and (self.ports.get((node(a), node(b))) or self.ports.get(
            (self.plain_id(node(a)), self.plain_id(node(b)))))
        if moved:
            a, b = (f"{node(end)}:{port}" if port else end for end, port in zip((a, b), moved))
            for _ in moved[2:]:                   # (its label moved: ``loops.HEAD``)
                attrs = loops.label_moved(attrs)
        if attrs.get("constraint") != "false":
            self.joined.add(frozenset((a.split(":")[0], b.split(":")[0])))
        self.dot.edge(a, b, **attrs)

    def invisible(self, a: str, b: str, *, side: str = "", **attrs: str) -> None:
        """An invisible edge that orders ``a`` before ``b``, unless a visible edge that ranks its
        ends already joins them (parallel edges would bend the visible one). ``side`` is the
        port on both ends: ``c`` (the centres) for an invisible edge that ranks the ends of a
        visible one that does not (the visible edge then stays nearly straight; without ports,
        or with others, dot bends it round its invisible twin)."""
        pair = frozenset((a, b))
        if pair not in self.joined and (a, b) not in self.ordered:
            self.ordered.add((a, b))     # (twice the same flat edge: dot 2.43 aborts)
            self.dot.edge(f"{a}:{side}" if side else a, f"{b}:{side}" if side else b,
                          **INVISIBLE, **attrs)
            if side:
                self.joined.add(pair)

    def edge_label(self, e: Edge, free: bool = False, at_head: bool | str = False,
                   at_end: str = "", far_head: bool = False,
                   at_tail: bool = False) -> dict[str, str]:
        """The parameters on ``e``. On an edge inside a row or one that does not rank its ends
        (``free``) the label is an ``xlabel``: dot routes true labels of such edges badly (loops,
        and lost edges when other edges cross the row). ``at_head``: a ``headlabel`` beside the
        arrowhead (a state of step t−1 into the gates of an open cell of step t: those edges
        fan out together, and a label at the middle of one stood on the next, or on an edge
        inside the box). ``at_end`` ("head" or "tail"): the label of an arc under a row beside
        that end, 25 pt off, just above the arc (see ``end_labels``: 5–20° clear the label of
        the state and of the arcs crossing the ends, in windows of delays 3 to 5). ``far_head``:
        a ``headlabel`` 45 pt back along the line, turned to its left (``past_rows``).
        ``at_tail``: a ``taillabel`` right of the line just past its tail (an edge that jumps
        over a row of chain edges, ``jumps_a_chain``)."""
        names = (e.labels if self.show_params else ()) + (e.biases if self.show_biases else ())
        if not names:
            return {}
        if far_head:
            return {"headlabel": L.params(names), "labeldistance": "4.5", "labelangle": "25"}
        if at_tail:
            return {"taillabel": L.params(names), "labeldistance": "2.5", "labelangle": "25"}
        if at_end:
            return {f"{at_end}label": L.params(names), "labeldistance": "2.5",
                    "labelangle": "-12" if at_end == "head" else "12"}
        if at_head:
            return {"headlabel": L.params(names), "labeldistance": "2.5",
                    "labelangle": self.head_angle(e, at_head if isinstance(at_head, str) else "")}
        return {"xlabel" if free else "label": L.params(names)}

    def head_angle(self, e: Edge, port: str) -> str:
        """The ``labelangle`` of ``e``'s label beside its arrowhead at ``port``, turned away
        from the other ports' labels: on the line's end into an upper corner, below the line
        into any other point — but a fed-back target's, y(t−1) coming down into an upper
        corner, 70° above its line (on the line's end it stood on h(t−1)'s, entering below)."""
        if port[:1] != "n":
            return "-25"
        return {"nw": "70", "ne": "-70"}.get(port, "0") if self.fed_back(e) else "0"

    def fed_back(self, e: Edge) -> bool:
        """Whether ``e`` carries a value that is no state to a later step (a target: Fig.
        10.6's y(t−1) → h(t), Fig. 10.10's)."""
        return bool(e.delay) and self.book.variables[e.src].kind != "state"

    def plain_id(self, node: str) -> str:
        """``node``'s id without the suffixes that keep panels apart (``h[folded]`` → ``h``)."""
        for suffix in {self.suffix, self.folded_suffix} - {""}:
            node = node.replace(suffix, "")
        return node

    def node_id(self, name: str, key: str | None = None) -> str:
        return L.node_id(name, key) + self.suffix

    def variable(self, name: str, step: str | None = None, key: str | None = None,
                 suffix: str = "", **attrs: str) -> str:
        """Declare the node of variable ``name`` (at ``step``, whose id part is ``key``): a
        circle, a small point, or a cell's rounded box."""
        node = L.node_id(name, key if key is not None else step) + suffix + self.suffix
        var = self.book.variables[name]
        when = "" if step is None else f"({L.step_text(step)})"
        if var.kind == "point" and var.stacked:
            tip = f"{when[1:-1] + ': ' if when else ''}the pre-activations of " \
                  f"{', '.join(var.members)} computed together (one stacked matrix) and read " \
                  f"in slices"
            look = {**POINT_NODE, "tooltip": L.tooltip(tip)}
        elif var.kind == "point" and var.joined:
            tip = f"{'t = ' + when[1:-1] + ': ' if when else ''}[{'; '.join(var.joined)}]: " \
                  f"the inputs that {', '.join(var.members)} all read, each through its own " \
                  f"parameters, joined (the book's concatenation)"
            look = {**POINT_NODE, "tooltip": L.tooltip(tip)}
        elif var.kind == "point":
            tip = f"{var.owner}{when}: an unnamed value on the way, between parameters " \
                  f"applied one after the other"
            look = {**POINT_NODE, "tooltip": L.tooltip(tip)}
        elif var.kind == "cell":
            tip = f"{name}{when}: the step's internal values {_listed(var.members)}" + \
                  (f"; parameters {', '.join(var.params)}" if var.params else "") + \
                  " (cells='open' draws them)"
            # its named values (not the points), or else its parameters: a PNG has no tooltip
            shown = [m for m in var.members if "·" not in m] or list(var.params)
            ports = getattr(self, "cell_ports", 0)
            look = {**CELL_NODE, **({"margin": "0,0"} if ports > 3 else {}),
                    "label": L.cell(name, shown, step, ports=ports),
                    "tooltip": L.tooltip(tip)}
        else:
            what = f": the {var.role}, an unnamed σ named by what it gates" if var.role else ""
            look = {"label": L.variable(name, step), "width": self.circle(name),
                    "tooltip": L.tooltip(f"{name}{when}{what}")}
        self.dot.node(node, **{**look, **attrs})
        self.ranks.setdefault(self.row[name], []).append(node)
        return node

    def said(self, name: str, step: str | None = None) -> str:
        """How a tooltip names variable ``name`` (at ``step``): by its name, ``h(t−1)``, or —
        a value the user did not name, whose id (``s·1``, ``contract``'s) means nothing to a
        reader — by what it is, ``× inside s``, ``the stacked pre-activations of f, g, q``."""
        var = self.book.variables[name]
        when = "" if step is None else f"({L.step_text(step)})"
        if var.shows is not None:                   # (viz.cell's h(t−1))
            return f"{var.shows[0]}({L.step_text(var.shows[1])})"
        if var.joined:                              # (a join point: what it joins)
            return f"[{'; '.join(var.joined)}]" + ("" if step is None else
                                                    f" at t = {L.step_text(step)}")
        if not is_unnamed(name):
            return name + when
        if var.stacked:
            return f"the stacked pre-activations of {', '.join(var.members)}{when}"
        what = {"product": "×", "complement": "1 − …", "difference": "… − …"}.get(var.kind) or \
            self.book.roles.get(name) or (f"a {var.op} unit" if var.op else "a value")
        return f"{what} inside {var.owner}{when}"

    def circle(self, name: str) -> str:
        """The diameter of ``name``'s circles: the common one, or its own if its name is long."""
        return str(max([self.width] + [width(name, s) for s in self.steps]))

    def is_point(self, name: str) -> bool:
        """Whether ``name`` is drawn as a small point, which edges enter without an arrowhead
        (a line through it: the value on the way between two parameters)."""
        return self.book.variables[name].kind == "point"

    def connect(self, tail: str, head: str, e: Edge, tip: str, *, leftward: bool = False,
                port: str = "", weight: str | None = None, across: bool = False,
                arcs: frozenset[int] = frozenset(), free_label: bool = False,
                at_head: bool | str = False, at_end: str = "", tail_port: str = "",
                bottom: str = "", far_head: bool = False) -> None:
        """The visible edge of ``e`` from node ``tail`` (where the data comes from) to node
        ``head`` (where it goes); ``tip`` says so in words.

        Every edge is written the way its data flows, tail → head. Dot keeps rows and columns
        straight when edges run the way the layout does, up the rows and left to right inside a
        row; the others need help. A backward state's ``g(t+1) → g(t)`` (leftward in its row)
        does not rank its ends (``constraint=false``): an invisible ``g(t) → g(t+1)`` keeps the
        row in order. An edge whose data flows down the rows inside one column (a target into
        its loss, ``y → L``) does not rank its ends either, and an invisible edge up beside it
        keeps its tail above its head. An edge down the rows ``across`` columns (a state of step
        t−1 into the cell of step t, ``y(t−1) → h(t)``) is written plainly: its ends are ranked
        by their columns already, so dot's cycle breaking turns it round internally and routes
        it like an upward edge (``constraint=false`` there makes dot loop it round the figure).
        An edge that jumps over a row does not pull its ends into line (weight 0): the
        invisible column edges do that, and it bends around the row it crosses anyway. Labels
        of edges inside a row are ``xlabel``s: dot's true labels there break its routing when
        other edges cross the row. ``port`` is the side of ``head`` the edge enters (the cells of
        an unfolded view take the states of the step before from the side, clear of the edges
        that leave them upwards). A row in ``arcs`` holds edges that skip columns (``h(t−2) →
        h(t)``): dot routes them as arcs under the row, through the middle of the gap below it,
        where the labels of the edges coming up into the row stand (the skip's ``W_d`` beside
        ``x(t−1)``'s ``U``, its line through it); an edge up into such a row spans three ranks
        (``minlen``), so that its label stands lower, clear of the arcs and their labels.
        ``free_label`` makes the label an ``xlabel`` (placed where there is room), ``at_head``
        a ``headlabel`` (``far_head``: farther back), ``at_end`` a label beside that end.
        ``bottom`` ("head" or "tail"): the end of an arc in a row that meets its node at the
        bottom (``ellipsis_bottoms``)."""
        up = self.row[e.dst] - self.row[e.src]
        jumps = up > 1 and self.jumps_a_chain(e)
        if jumps and port[-1:] in ("e", "w") and not tail_port:
            # (leaving on the side it enters: dot swung the edges of the outer steps of a
            # window round the other side of the chain's state, across its neighbours' edges)
            tail_port = "n" + port[-1]
        if port and up != 0:
            head = f"{head}:{port}"
        if tail_port and up != 0:
            tail = f"{tail}:{tail_port}"
        attrs = {**self.edge_label(e, free=free_label or up == 0 or (up < 0 and not across),
                                   at_head=at_head, at_end=at_end, far_head=far_head,
                                   at_tail=jumps),
                 "tooltip": L.tooltip(tip)}
        if abs(up) > 1:
            attrs["weight"] = "0"
        elif weight is not None and up != 0:
            attrs["weight"] = weight
        if up == 1 and self.row[e.dst] in arcs:
            attrs["minlen"] = "3"
        if self.is_point(e.dst):
            attrs["arrowhead"] = "none"
        shown = tuple(f"{end}:s" if bottom == which else end
                      for end, which in ((tail, "tail"), (head, "head")))
        if up == 0 and leftward:
            self.edge(*shown, constraint="false", **attrs)
            # (in a chain's row, its twin ported: unported, dot drew the pair as two nested
            # arcs, the visible one bowed 17 pt over the row)
            self.invisible(head, tail, side="n" if self.row[e.dst] in self.chains else "",
                           weight=attrs.get("weight", "1"))
        elif up < 0 and not across:
            self.edge(tail, head, constraint="false", **attrs)
            self.invisible(head.split(":")[0], tail, side="c", weight="8",
                           **({"minlen": str(-up)} if up < -1 else {}))
        else:
            self.edge(*shown, **attrs)

    def jumps_a_chain(self, e: Edge) -> bool:
        """Whether ``e`` runs up past a row of ``chains`` (Fig. 10.11's x(t) → g(t) past h's
        row, h(t) → o(t) past g's). Its true label would stand on a node of dot's in that row,
        between two states of the chain, whose edge then no longer joins neighbours: dot bent
        it into an arc round the label (h(1) → h(2) sagged 53 pt below its row)."""
        low, high = sorted((self.row[e.src], self.row[e.dst]))
        return any(low < r < high for r in self.chains)

    def bottom_up(self, names: Iterable[str]) -> list[str]:
        """``names`` in the order their nodes are declared: bottom row first (stable within a
        row). Dot (newrank) ranks with one constraint per pair of rows, directed as the first
        edge between them it meets, tails in the order they were declared; declared from the
        bottom up, that is an edge up the rows, and the edges written down the rows
        (``connect``) close cycles that its depth-first search, starting at the bottom row,
        turns round."""
        return sorted(names, key=self.row.__getitem__)

    def close(self) -> None:
        """One ``rank=same`` subgraph per row, and invisible edges stacking the rows in order."""
        for r in sorted(self.ranks):
            with self.dot.subgraph() as s:
                s.attr(rank="same")
                for node in self.ranks[r]:
                    s.node(node)
        rows = sorted(self.ranks)
        for low, high in zip(rows, rows[1:]):
            a, b = (self.stacked_by.get(r, self.ranks[r][0]) for r in (low, high))
            gap = _level(self.levels, high) - _level(self.levels, low) if self.levels else 1
            if gap > (3 if high in self.arcs else 1):   # (more than the edges up ask for;
                # at the centres, beside a visible edge joining them, which stays straight)
                self.dot.edge(f"{a}:c", f"{b}:c", **INVISIBLE, weight="8", minlen=str(gap))
            else:
                self.invisible(a, b, weight="8")

    # --- folded ----------------------------------------------------------------------------------

    def folded(self, suffix: str = "", dot: graphviz.Digraph | None = None) -> dict[str, str]:
        """The folded graph: each variable once, delay edges through the black square. ``suffix``
        keeps its node ids apart from those of an unfolded graph in the same drawing; ``dot``
        is the (sub)graph its nodes are declared in."""
        home, self.dot = self.dot, dot or self.dot
        self.folded_suffix = suffix
        ids, column, beside = {}, set(), []
        # declared bottom row first (see ``bottom_up``); in a row shared by several values
        # (an LSTM's gates) those read higher up first, left, away from the squares on the
        # right of the states (the output gate, read by h above s); one variable of each
        # row stands in one column (see below)
        reach = {name: max((self.row[e.dst] for e in self.book.users_of(name) if not e.delay),
                           default=self.row[name]) if self.reach_first else 0
                 for name in self.book.variables}
        order = sorted(self.bottom_up(self.book.variables), key=lambda n: (self.row[n], -reach[n]))
        if self.reach_first:
            below = None
            for r in sorted({self.row[n] for n in order}):
                here = [n for n in order if self.row[n] == r]
                # the first, unless its edges jump over the row above and another value of
                # the row, read from the column below, reads only into that row: that one,
                # and the first goes up beside the column, not round the value above it (an
                # LSTM's output gate q, read by h over s: the input gate stands under s, q's
                # edge reaches h from the left)
                # (a gate before the input it lets through: a named candidate, PyTorch's g,
                # stands beside the column, as its edges do when it is left unnamed)
                # (under a state whose own loop holds its right, the last of them: the
                # others stand left of it, and enter the state from the left — the LSTM's
                # forget gate under s, as in Fig. 10.16)
                nearer = sorted((n for n in here if reach[n] == r + 1 and below is not None and
                                 any(e.src == below and not e.delay
                                     for e in self.book.inputs_of(n))),
                                key=lambda n: self.book.roles.get(n) == "input")
                if nearer and all(self.under_loop(n) for n in nearer):
                    below = ([n for n in nearer if self.book.roles.get(n) != "input"] or
                             nearer)[-1]
                else:
                    below = nearer[0] if reach[here[0]] > r + 1 and nearer else here[0]
                column.add(below)
                if below != here[0]:
                    # (invisible edges hold the row in that order: those that jump, then the
                    # others as declared, the column's among them — a named candidate left of
                    # the input gate, as in Fig. 10.16)
                    aside = [n for n in here if reach[n] > r + 1]
                    beside.append(aside + [n for n in here if n not in aside])
        else:     # from the top down, the first of each row that feeds the column above
            above = None
            for r in sorted({self.row[n] for n in order}, reverse=True):
                here = [n for n in order if self.row[n] == r]
                feeds = [n for n in here if above is not None and
                         any(e.dst == above and not e.delay for e in self.book.users_of(n))]
                # (of those, the one on the loop of the column's state: the forget gate's ×
                # stands under the LSTM's state, the forget gate under it, as in Fig. 10.16)
                looped = [n for n in feeds if any(e.delay and e.src in column
                                                  for e in self.book.inputs_of(n))]
                above = (looped or feeds or here)[0]
                column.add(above)
        self.column = column
        for name in order:
            ids[name] = self.variable(name, suffix=suffix, **(
                {"group": f"folded{self.suffix}"} if name in column else {}))
        for names in beside:
            self.stacked_by[self.row[names[0]]] = ids[next(n for n in names if n in column)]
            for a, b in zip(names, names[1:]):
                self.invisible(ids[a], ids[b])

        def spine_edge(e: Edge) -> bool:         # heavy: the column stands straight
            return e.src in column and e.dst in column and \
                abs(self.row[e.dst] - self.row[e.src]) == 1
        delayed: dict[tuple, list[Edge]] = {}
        for e in self.book.edges:
            if e.delay:
                delayed.setdefault((e.src, e.delay, e.backward), []).append(e)
        # one square per state and delay: its loop and every other reader of its past take
        # it, h → ■ → h, ■ → u, ■ → r (finding 47: a square of its own for the loop, in the
        # row above, came and went with a bias inside a GRU's reset product); loops first
        groups = [sorted(edges, key=lambda e: e.dst != e.src) for edges in delayed.values()]
        looping = {id(edges) for edges in groups if edges[0].dst == edges[0].src}
        # where each square stands: right of its state in its row, unless another square of
        # the state (another delay) holds it: a second loop above left, others in the rows
        # below and above (``delay``)
        readers = {edges[0].src for edges in groups if id(edges) not in looping}
        self.raised: set[str] = set()          # states with a square in a row above
        #: states whose loop holds the right of their row, its lower arc their lower right
        self.looped = {edges[0].src for edges in groups
                       if id(edges) in looping and edges[0].src not in readers}
        taken: dict[str, list[str | int]] = {}
        places = []
        for edges in groups:
            src = edges[0].src
            used = taken.setdefault(src, [])
            loop = id(edges) in looping
            wanted: list[str | int] = (["right"] if not (loop and src in readers) else []) + \
                (["above left"] if loop and "right" in used and src in self.looped else []) + \
                [1, -1, 2, -2, 3, -3]
            place = next(p for p in wanted if p not in used)
            used.append(place)
            places.append((edges, place))
        right = {src for src, where in taken.items() if "right" in where}

        def under(e: Edge) -> bool:
            # into a state whose square holds its right, from beside its column below (an
            # LSTM's gates into s, a GRU's r into h): from underneath, clear of the square's
            # edges (the loop's lower arc)
            return not e.delay and e.dst in right and e.src not in column and \
                self.row[e.src] < self.row[e.dst]
        # several of them (the LSTM's f and g into s) each at a point of its own, left to right
        # as their sources stand (at one port their arrowheads met); beside the column's own
        # edge up into the state (the GRU's u → h), at the lower corner on their side
        below: dict[str, list[str]] = {}
        for e in sorted(filter(under, self.book.edges), key=lambda e: order.index(e.src)):
            below.setdefault(e.dst, []).append(e.src)
        for e in self.book.edges:        # the column's edge that jumps up into it, if alone
            # (the bidirectional g's U_g from x past h: round the right, onto the loop's arc)
            if not e.delay and e.dst in right and e.dst not in below and e.src in column and \
                    self.row[e.dst] - self.row[e.src] > 1 and not any(
                        f.src in column and not f.delay and self.row[f.src] < self.row[e.dst]
                        and f is not e for f in self.book.inputs_of(e.dst)):
                below[e.dst] = [e.src]
        port_of = {}
        for dst, srcs in below.items():
            if dst in self.looped:    # the loop re-enters at the lower right corner: the
                # values below take the points left of it as they stand, those beside the
                # column, then the column's edges up into the state — the one that jumps up
                # past the others on their left (the LSTM's g at w, x at sw, f at s)
                srcs = sorted(set(srcs) | {e.src for e in self.book.inputs_of(dst) if
                                           not e.delay and e.src in column and
                                           self.row[e.src] < self.row[dst]},
                              key=lambda n: (n in column, self.row[n] if n in column else
                                             order.index(n)))
                port_of.update({(dst, src): ("w", "sw", "s")[max(k + 3 - len(srcs), 0)]
                                for k, src in enumerate(srcs)})
                continue
            straight = next((e.src for e in self.book.inputs_of(dst) if not e.delay and
                             e.src in column and self.row[e.src] == self.row[dst] - 1), None)
            if straight is None:
                port_of.update({(dst, src): "s" if len(srcs) == 1 else
                                ("sw", "s", "se")[min(k, 2)] for k, src in enumerate(srcs)})
                continue
            sides = ["sw" if order.index(src) < order.index(straight) else "se" for src in srcs]
            if len(set(sides)) == len(sides):
                port_of.update(zip(((dst, src) for src in srcs), sides))
        for edges, place in places:
            self.delay(ids, edges, place)
        for e in self.book.edges:
            if not e.delay:
                # up from a state whose square stands above right: the line to the square
                # runs where the edge's label would stand; an xlabel finds room (left)
                aside = e.src in self.raised and self.row[e.dst] > self.row[e.src]
                self.connect(ids[e.src], ids[e.dst], e,
                             f"{self.said(e.src)} → {self.said(e.dst)}",
                             weight="4" if spine_edge(e) else None,
                             port=port_of.get((e.dst, e.src), ""), free_label=aside)
        self.dot = home
        return ids

    def delay(self, ids: dict[str, str], edges: list[Edge], place: str | int = "right"
              ) -> None:
        """The book's black square on the delay edges ``edges`` that leave one state with one
        delay (labelled with the delay when it is more than one step; a backward state's, which
        reads ``g(t+d)``, open and labelled ``+d``): either the state's loop
        onto itself, or the edges to the other variables that read the delayed state.

        The square stands on the loop, right of the state in its row (``place="right"``): the
        line from the state to the square (the upper arc of a loop onto
        itself, with its parameters) leaves the state's side, and the square's edges go on to
        the readers — back into the state from below (the lower arc), down into the gates that
        read an LSTM's ``h(t−1)``, down into ``a`` (eq. 10.8's pre-activation), up into what
        reads it above. So a loop never shares an end with the edges above and below the state
        and stays beside it. Otherwise the square stands right of the state ``place`` rows
        above (below, when negative): where a state's own loop goes when the right of its row
        is taken by the square that others read (a GRU's ``h(t−1)``, the skip connection of
        Fig. 10.13c), and further squares (``h(t−d)``; ``"above left"``: a second loop when the
        first holds the right with both arcs). Left of the state in its row no edge could order
        a square without running against its data, and two squares on one side of a row make
        dot lose the spline."""
        e = edges[0]
        src = ids[e.src]
        loop = all(f.dst == f.src for f in edges)
        square = src + f"[delay {e.delay}{' back' if e.backward else ''}{'' if loop else ' out'}]"
        # (a backward state's square reads the future: open, and marked +d)
        extra = {"fillcolor": "white", "xlabel": f"+{e.delay}"} if e.backward else \
            {"xlabel": str(e.delay)} if e.delay > 1 else {}
        when = "later" if e.backward else "earlier"
        self.dot.node(square, **{**DELAY, **extra},
                      tooltip=L.tooltip(f"delay: {e.src} as it was {e.delay} step(s) {when}"))
        tip = L.tooltip(f"{e.src} → {e.src}, {e.delay} step(s) {when}" if loop else
                      f"{e.src}, {e.delay} step(s) {when}")

        def reads(f: Edge, port: str = "", **attrs: str) -> None:
            self.edge(square, f"{ids[f.dst]}:{port}" if port else ids[f.dst], **attrs,
                      tooltip=L.tooltip(f"{self.said(f.src)} → {self.said(f.dst)}, {f.delay} "
                                        f"step(s) {when}"))
        if place == "right":
            self.place_square(square, self.row[e.src], beside=True)
            # the flat edge out of the state orders the square; the loop of a state that
            # another state's past enters too (from above right, at ``ne``: the LSTM's
            # W h(t−1) into s, Fig. 10.9's U y(t−1) into h) leaves from the state's east
            # point (the others are unported: two round arcs, Fig. 10.3's;
            # unported, it left at +20°, 5–7 pt from that edge's arrowhead), and its lower
            # arc re-enters at the south-east point (unported, dot brought it back to the
            # east point, onto the upper arc's end)
            entered = loop and self.entered(e.src)
            self.edge(f"{src}:e" if entered else src, square, arrowhead="none", tooltip=tip,
                      **(self.edge_label(e, free=True) if loop else {}))
            for f in edges:
                if loop:              # the lower arc, back into the state
                    reads(f, loops.FLAT["se"] if entered else "", constraint="false")
                else:                 # down (or up) the rows: ranked by the rows already
                    up = self.row[f.dst] - self.row[e.src]
                    # a reader with its own loop on the right (an LSTM's s) is entered from
                    # above or below that loop
                    port = ("ne" if up < 0 else "se") if f.dst in self.looped and up else ""
                    highest = self.highest_past(f.dst) if up < 0 else None
                    if highest is not None:
                        # (two states' pasts come down into it: the highest at the upper
                        # right corner, the others at the lower one — on a looped reader, whose
                        # loop holds its right, at the upper left: at one corner, they met)
                        port = "ne" if highest == e.src else \
                            "nw" if f.dst in self.looped else "se"
                    # (the state's own loop, back into it, its label by the arrowhead: as
                    # an xlabel it stood on the readers' lines out of the square)
                    reads(f, port, **self.edge_label(f, free=up == 0, at_head=f.dst == f.src),
                          **({"weight": "0"} if abs(up) > 1 else {}),
                          **({"constraint": "false"} if up == 0 else {}))
            return
        if place == "above left":     # a second loop (a skip's h(t−2)) when the first holds
            # the right of the row with both its arcs: the row above, left, its label on the
            # edge up (on the way back it stood on the other arc)
            self.place_square(square, self.row[e.src] + 1, left=True)
            self.edge(src, square, arrowhead="none", tooltip=tip, **self.edge_label(e, True))
            for f in edges:
                reads(f, constraint="false")
            return
        shift = place
        self.place_square(square, self.row[e.src] + shift)
        if shift > 0:
            self.raised.add(e.src)
        if shift < 0:         # the square below: it ranks the edge back up into the state
            self.edge(src, square, arrowhead="none", constraint="false", tooltip=tip)
        else:                 # above: the edge out of the state ranks the square
            self.edge(src, square, arrowhead="none", tooltip=tip)
        for f in edges:
            reads(f, **self.edge_label(f, free=shift >= 0),
                  **({} if shift < 0 and loop else {"constraint": "false"}))

    def highest_past(self, reader: str) -> str | None:
        """Of two or more states whose pasts come down through squares of their own into
        ``reader`` and into at least one more reader (an LSTM's h(t−1) and a fed-back y(t−1)
        fanning out into its gates), the highest; None else (one reader: a memory network's
        h(t−1) and r(t−1) into a — there dot's own ends cross less)."""
        def above(name: str) -> set[str]:
            return {e.src for e in self.book.inputs_of(name) if e.delay and e.src != name and
                    self.row[e.src] > self.row[name]}
        mine = above(reader)
        fanned = [n for n in self.book.variables if n != reader and len(above(n) & mine) > 1]
        return max(mine, key=self.row.__getitem__) if len(mine) > 1 and fanned else None

    def under_loop(self, name: str) -> bool:
        """Whether ``name`` feeds, in the row above, a state with a loop onto itself (which
        will hold the state's right with both arcs)."""
        return any(not e.delay and self.row[e.dst] == self.row[name] + 1
                   and any(f.delay and f.src == f.dst == e.dst for f in self.book.edges)
                   for e in self.book.users_of(name))

    def entered(self, state: str) -> bool:
        """Whether another variable's past enters ``state`` (through a square of its own)."""
        return any(f.dst == state and f.src != state and f.delay for f in self.book.edges)

    def place_square(self, square: str, row: int, beside: bool = False, left: bool = False
                     ) -> None:
        """Put a delay square in ``row``: beside its state (its edges order it), rightmost, or
        leftmost (``left``: in a row above or below its state, nothing runs against it)."""
        nodes = self.ranks.setdefault(row, [])
        if left:
            if nodes:
                self.invisible(square, nodes[0])
            nodes.insert(0, square)
            return
        if not beside and nodes:
            self.invisible(nodes[-1], square)
        nodes.append(square)

    # --- unfolded --------------------------------------------------------------------------------

    def unfolded(self, placement: Placement, style: Mapping[tuple[str, int], dict] | None = None,
                 boxes: bool = False) -> dict[tuple[str, int | None], str]:
        """The unfolded graph of ``placement``; ``style`` adds attributes to cells (the gradient
        overlay); ``boxes`` draws a box around each step's internal values and states (open
        cells). Returns the node id of each cell (contexts under column ``None``)."""
        cols = placement.columns
        ids: dict[tuple[str, int | None], str] = {}
        steps = [c.index for c in cols if c.kind == "step"]
        for name in placement.contexts:         # under the middle column (or the first)
            middle = self.context_column(steps)
            ids[(name, None)] = self.variable(name, group=f"c{middle}{self.suffix}")
        for name, c in sorted(placement.cells, key=lambda cell: (self.row[cell[0]], cell[1])):
            self.dot.node(L.node_id(name, cols[c].key) + self.suffix)   # row by row (bottom_up)
        entering: dict[tuple, int] = {}        # states into one side of a cell (ports)
        for (src, s), (dst, c), e in placement.edges:
            if s is not None and c is not None and s != c and \
                    self.row[src] != self.row[dst] and self.book.variables[dst].kind == "cell":
                key = (dst, c, s < c)
                entering[key] = entering.get(key, 0) + 1
        self.cell_ports = max(entering.values(), default=0)
        # (a state running backward in time stays outside the boxes, with its cell's values:
        # its edges from the box of step t+1 into that of step t, flat and against the row's
        # order, made dot 2.43 abort or never finish in viz.unfolding)
        boxed = {n for inner, states in C.groups(self.book) for n in inner + states
                 if not any(self.book.variables[s].backward for s in states)} if boxes else ()
        spine = self.spine(placement)
        home = self.dot
        for c, col in enumerate(cols):
            here = self.bottom_up(name for name, k in placement.cells if k == c)
            inside = [n for n in here if n in boxed] if col.kind != "end" else []

            def declare(name: str) -> None:
                extra = dict(style.get((name, c), {})) if style else {}
                if spine.get((c, self.row[name])) == name:
                    extra["group"] = f"c{c}{self.suffix}"
                ids[(name, c)] = self.variable(name, col.step, col.key, **extra)
            for name in here:
                if name not in inside:
                    declare(name)
            if inside:
                with home.subgraph(name=f"cluster_cell{c}{self.suffix}") as box:
                    box.attr(label=L.plain(f"cell ({L.step_text(col.step)})"),
                             style="rounded,dashed", color="#888888", fontcolor="#666666",
                             fontsize="11", labeljust="l")
                    self.dot = box
                    for name in inside:
                        declare(name)
                    self.dot = home

        def title(name: str, c: int | None) -> str:
            return self.said(name, None if c is None else cols[c].step)

        arcs = frozenset(self.row[dst] for (src, s), (dst, c), e in placement.edges
                         if s is not None and c is not None and abs(c - s) > 1 and
                         self.row[src] == self.row[dst])
        self.arcs = arcs
        # (between two steps, not an ellipsis: a compact cell's states reach the next step
        # through its cell; not in open cells: there x(t) → the backward gates jump the
        # forward band, and their labels, all at x(t), stood on one another)
        self.chains = frozenset() if boxes else frozenset(
            self.row[dst] for (src, s), (dst, c), e in placement.edges
            if s is not None and c is not None and s != c and self.row[src] == self.row[dst]
            and cols[s].kind == cols[c].kind == "step")
        boxes_in = {(dst, c) for (_, s), (dst, c), _ in placement.edges
                    if boxes and s is not None and s != c and dst in boxed}
        jumps = self.jump_ports(placement, spine) if boxes else {}
        entered: dict[tuple, bool] = {}     # (cell, column, from the right) → a state enters
        for (_, s), (dst, c), _ in placement.edges:
            if s is not None and c is not None and s != c:
                entered[(dst, c, s > c)] = True
        lifted = self.lifted(placement)
        heads = self.head_ports(placement, spine, boxes_in, jumps, lifted)
        ends = self.end_labels(placement)
        bottoms = self.ellipsis_bottoms(placement)
        # an open cell's value entered at an upper corner (the highest state of the step before,
        # or a jump from below: a GRU's x(t) → h1(t)) sends its edges up the step from its top:
        # there, h1(t) → r′(t) and f(t) → s(t) left where the arrowhead came in
        cornered = {(dst, c) for (_, _, dst, c), port in {**heads, **jumps}.items()
                    if port in ("nw", "ne")} if boxes else set()
        for (src, s), (dst, c), e in placement.edges:
            side = jumps.get((src, s, dst, c), heads.get((src, s, dst, c), ""))
            across = s is not None and s != c
            # a state of step t leaves for the cell of step t+1 (or a gate of its open cell)
            # from its side (t−1: the other side), clear of the edge up into its bottom
            into_box = across and (dst, c) in boxes_in
            out = "" if not across or not (self.book.variables[dst].kind == "cell" or
                                           into_box) else "e" if s < c else "w"
            # a compact cell's edge up past a state into another (cell(t) → h(t) past s(t)):
            # always on the side the states of the step before enter by (see lifted), else on
            # the side they leave for the next step (dot chose a side per step: round the left
            # of every column but the last, whose gap it narrowed)
            if self.up_past(src, s, dst, c) and not side:
                back = self.book.variables[dst].backward
                if (src, c) in lifted:
                    side, out = self.lifted_ends(dst)
                elif not entered.get((src, c, not back)):   # (that side's upper corner free)
                    side, out = ("sw", "nw") if back else ("se", "ne")
            if not across and (src, s) in cornered and self.row[dst] > self.row[src] and not out:
                out = "n"
            self.connect(ids[(src, s)], ids[(dst, c)], e, f"{title(src, s)} → {title(dst, c)}",
                         leftward=s is not None and s > c, port=side, across=across, arcs=arcs,
                         tail_port=out, far_head=self.past_rows(e),
                         at_head=(side or True) if into_box else
                         not (boxes or across) and s is not None and self.past_band(e),
                         at_end=ends.get((src, s, dst, c), ""),
                         bottom=bottoms.get((src, s, dst, c), ""))
        self.order_rows(placement, ids)
        self.stack_columns(placement, ids)
        self.widen(placement)
        return ids

    def past_rows(self, e: Edge) -> bool:
        """Whether ``e`` leaves a join point (``viz.cells.join_inputs``) for a value more than
        two rows up, past a state's row as well as the gates' (the peephole LSTM's output
        gate, which reads the new state ``s(t)``, above it): its label stands beside its head,
        clear of the edges crossing the rows it passes (at its middle, it stood on s(t) →
        f(t+1) and on h(t) → [x; h](t+1); nearer the head, on q(t))."""
        return bool(self.book.variables[e.src].joined) and self.row[e.dst] - self.row[e.src] > 2

    def past_band(self, e: Edge) -> bool:
        """Whether ``e`` runs up from a forward state past the backward chain's band of rows
        when that band holds a cell under its states (a bidirectional LSTM's or GRU's): the
        backward states' edges into the cell of the step before run down across the band,
        where the label's middle stood (``h(t) → o(t)``'s V on ``g(t+1) → cell_2(t)``), so
        the label stands beside its head, above the band. (Fig. 10.11's RNN, whose g(t+1) →
        g(t) runs flat in g's row, keeps V at the middle.)"""
        kinds = self.book.variables

        def backward(n: str) -> bool:
            users = [u.dst for u in self.book.users_of(n)]
            return kinds[n].backward if kinds[n].kind == "state" else \
                kinds[n].kind == "cell" and bool(users) and all(kinds[u].backward for u in users)
        band = [self.row[n] for n in kinds if n in self.row and backward(n)]
        return len(set(band)) > 1 and kinds[e.src].kind == "state" and \
            not kinds[e.src].backward and self.row[e.src] < min(band) and \
            self.row[e.dst] > max(band)

    def widen(self, placement: Placement) -> None:
        """Columns far enough apart for the labels of the edges inside a row between them (an
        xlabel between two adjacent columns: "W, S", "W, b" touched both circles at the
        default ``nodesep``): ``self.nodesep``, for the drawing's graph attribute."""
        widest = 0
        for (src, s), (dst, c), e in placement.edges:
            if s is not None and c is not None and s != c and self.row[src] == self.row[dst]:
                names = (e.labels if self.show_params else ()) + \
                    (e.biases if self.show_biases else ())
                if names:      # (≈ 7.5 pt a letter of the 14 pt italics, 5 of a subscript,
                    # 8 a ", ")
                    widest = max(widest, sum(7.5 * len(n.partition("_")[0]) +
                                             5 * len(n.partition("_")[2]) for n in names) +
                                 8 * (len(names) - 1))
        self.nodesep = max(float(GRAPH["nodesep"]), round((widest + 16) / 72, 2))

    def ellipsis_arcs(self, placement: Placement) -> list[list[tuple[int, tuple, str]]]:
        """Skip connections across a window's edge: the arcs under the row that one ellipsis
        ``h(…)`` sends (or receives) across several columns, per ellipsis, shortest first, as
        (columns spanned, (src, column, dst, column), the arc's other end: ``head`` or
        ``tail``)."""
        cols, arcs = placement.columns, {}
        for (src, s), (dst, c), _ in placement.edges:
            if s is None or c is None or abs(c - s) < 2 or self.row[src] != self.row[dst]:
                continue
            for end, (name, k) in (("head", (src, s)), ("tail", (dst, c))):
                if cols[k].kind == "end":
                    arcs.setdefault((name, k), []).append((abs(c - s), (src, s, dst, c), end))
        return [sorted(found) for found in arcs.values()]

    def end_labels(self, placement: Placement) -> dict[tuple, str]:
        """The arcs of ``ellipsis_arcs`` nested under the row, all but the longest with their
        label at their other end (``head`` or ``tail``), beside the state it reads or feeds:
        at its middle (an ``xlabel``), the next longer arc ran through it (a window of
        ``h(t−3) → h(t)``: "W_d" of ``h(…) → h(t)`` on ``h(…) → h(t+1)``). (src, column,
        dst, column) → the end."""
        return {key: end for found in self.ellipsis_arcs(placement)
                for _, key, end in found[:-1]}

    def ellipsis_bottoms(self, placement: Placement) -> dict[tuple, str]:
        """The longest of several arcs at one ellipsis meets it at its bottom (``s``), the
        outermost of the nested arcs: unported, dot ended them all at one point of ``h(…)``
        (two arrowheads on one another, h(t−1) → h(…) and h(t) → h(…) of a window of
        ``h(t−3) → h(t)``). (src, column, dst, column) → the ellipsis's end of it."""
        return {key: "tail" if end == "head" else "head"
                for found in self.ellipsis_arcs(placement) if len(found) > 1
                for _, key, end in found[-1:]}

    def up_past(self, src: str, s: int | None, dst: str, c: int | None) -> bool:
        """Whether ``src`` at column ``s`` → ``dst`` at column ``c`` is a compact cell's edge up
        past a row into a value of its own step (an LSTM's cell(t) → h(t) past s(t))."""
        return s == c and s is not None and self.book.variables[src].kind == "cell" and \
            self.row[dst] - self.row[src] > 1

    def lifted_ends(self, dst: str) -> tuple[str, str]:
        """The (head, tail) ports of a ``lifted`` cell's edge up into ``dst``: the lower and
        the upper corner on the side the states of the step before enter by."""
        return ("se", "ne") if self.book.variables[dst].backward else ("sw", "nw")

    def lifted(self, placement: Placement) -> set[tuple[str, int]]:
        """The compact cells (cell, column) whose edge up past a state into another state or a
        named value of the step (an LSTM's cell(t) → h(t) past s(t); the SRU's, its output
        gate's, into h(t) past c(t); not into a point) runs on the side the states of the step
        before enter by — the left for a forward cell, the right for a backward one — leaving
        its upper corner there, the entering states coming in below it (at the side's middle
        and lower corner). On the other side it enclosed s(t), whose edge out to the next step
        crossed it at every step. Not when more than two states enter by that side, or one in
        a flat row, or a context (drawn once, its edges come in from the side too: the corner
        is theirs)."""
        kinds = self.book.variables
        ups = {(src, s): kinds[dst].backward for (src, s), (dst, c), _ in placement.edges
               if self.up_past(src, s, dst, c) and kinds[dst].kind in ("state", "named")}
        entering: dict[tuple[str, int], int] = {}     # by the side of the step before
        for (src, s), (dst, c), _ in placement.edges:
            if (dst, c) not in ups:
                continue
            if s is None or (s != c and (s > c) == ups[(dst, c)]):
                crowd = 3 if s is None or self.row[src] == self.row[dst] else 1
                entering[(dst, c)] = entering.get((dst, c), 0) + crowd
        return {cell for cell in ups if entering.get(cell, 0) <= 2}

    def head_ports(self, placement: Placement, spine: dict, boxes_in: set,
                   jumps: dict[tuple, str], lifted: set[tuple[str, int]] = frozenset()
                   ) -> dict[tuple, str]:
        """Where edges enter their heads, when several would meet at one point (their
        arrowheads touched): (src, column, dst, column) → port.

        The states of the step before enter a cell (or a gate of an open cell, ``boxes_in``)
        from the side, each at a point of its own, the highest state at the upper corner (an
        LSTM's s(t−1) and h(t−1), a memory network's h(t−1) and r(t−1) into f(t)). Several
        values of the step below enter a variable along its lower side, left to right as they
        stand (in a row, the order ``order_rows`` gives them; the value on the column's line in
        the middle): a memory's e(t) and a(t) into M(t), k(t) and β(t) into w(t) (the edges
        ``jumps`` enters elsewhere left out)."""
        out: dict[tuple, str] = {}
        sides: dict[tuple[str, int, str], list[tuple[int, str, int]]] = {}
        for (src, s), (dst, c), e in placement.edges:
            if s is not None and c is not None and s != c and \
                    self.row[src] != self.row[dst] and \
                    (self.book.variables[dst].kind == "cell" or (dst, c) in boxes_in):
                sides.setdefault((dst, c, "w" if s < c else "e"), []).append(
                    (-self.row[src], src, s))
        flat = {(dst, c, "w" if s < c else "e") for (src, s), (dst, c), _ in placement.edges
                if s is not None and c is not None and s != c and
                self.row[src] == self.row[dst]}
        for (dst, c, side), found in sides.items():
            if self.book.variables[dst].kind == "cell" and len(found) > 3:
                for k, (_, src, s) in enumerate(sorted(found)):   # (the label's ports)
                    out[(src, s, dst, c)] = f"{side}{k}:{side}"
                continue
            # (the middle of the side is the flat edge's, when one comes in there)
            corners = ("n", "s") if (dst, c, side) in flat else \
                ("", "s") if (dst, c) in lifted else \
                ("n", "", "s") if len(found) > 1 else ("",)
            for k, (_, src, s) in enumerate(sorted(found)):
                out[(src, s, dst, c)] = corners[min(k, len(corners) - 1)] + side
        shared: dict[tuple[int, int], list[str]] = {}
        for name, c in placement.cells:            # (sorted by column, then computation)
            shared.setdefault((c, self.row[name]), []).append(name)

        def across(name: str, c: int) -> float:    # left (−) or right (+) of the column line
            row = shared.get((c, self.row[name]), [name])
            middle = spine.get((c, self.row[name]), row[0])
            return row.index(name) - row.index(middle) if middle in row else 0
        # (a lifted cell's edge up holds its lower corner, ``lifted_ends``; a jump its port)
        ups = {(src, s, dst, c) for (src, s), (dst, c), _ in placement.edges
               if (src, s) in lifted and self.up_past(src, s, dst, c)}
        held: dict[tuple[str, int], list[str]] = {}
        for (_, _, dst, c), port in [*((up, self.lifted_ends(up[2])[0]) for up in ups),
                                     *jumps.items()]:
            held.setdefault((dst, c), []).append(port)
        below: dict[tuple[str, int], list[tuple[float, int, str]]] = {}
        for k, ((src, s), (dst, c), e) in enumerate(placement.edges):
            if s == c and s is not None and self.row[src] < self.row[dst] and \
                    (src, s, dst, c) not in jumps and (src, s, dst, c) not in ups:
                below.setdefault((dst, c), []).append((across(src, c), k, src))
        for (dst, c), found in below.items():
            if len(found) < 2:
                continue
            # the value right under it, on the column's line, keeps the middle (a port there
            # pulled the column out of line); the others take the lower corners, by side
            straight = [f for f in found if f[0] == 0 and self.row[f[2]] == self.row[dst] - 1]
            rest = sorted(f for f in found if f not in straight[:1])
            free = [p for p in ("sw", "se") if p not in held.get((dst, c), ())]
            if not straight:
                free = ["sw", "s", "se"] if len(rest) == 3 else free
            if len(rest) > len(free):
                continue
            if len(rest) == 1 and len(free) == 2:      # by its side of the column; from
                # the column's line, past the value under it, on the side away from what
                # that value takes from the steps before (Fig. 10.13c's U past the MLP point
                # that h(t−1)'s W1 enters from the left: round the right, into the right)
                side = rest[0][0]
                if side == 0 and straight:        # (at every step alike: the first too)
                    side = sum(-1 if e.backward else 1 for e in
                               self.book.inputs_of(straight[0][2]) if e.delay)
                free = free[1:] if side > 0 else free[:1]
            if straight and len(free) == 2 and len(rest) == 2 and rest[1][0] < 0:
                # (both left of the column: PyTorch's g and i into c, g left of i) the nearer
                # takes the lower left, the farther comes in above it unported — at the lower
                # right it hooked round the value on the line)
                rest, free = rest[1:], free[:1]
            for port, (_, _, src) in zip(free, rest):
                out.setdefault((src, c, dst, c), port)
        for key, port in self.past_row_ports(placement, boxes_in).items():
            out.setdefault(key, port)
        return out

    def past_row_ports(self, placement: Placement, boxes_in: set) -> dict[tuple, str]:
        """Compact cells: an edge from below that jumps over a row into a state whose edges
        from and to the neighbouring steps run in its row (Fig. 10.11's x(t) → g(t) past h(t))
        enters the state at the lower corner of the side its edge from the step before comes in
        (the right, for a backward state), under that edge's arrowhead at the middle of the
        side (the chain runs straight: ``jumps_a_chain``) and clear of the edge to the next
        step, which leaves from the other side's middle. Unported, dot ended it at that
        corner (g(t) → g(t−1)'s start); at the far side's middle it hooked round under g(t)."""
        kinds = self.book.variables
        flat = {dst for (src, s), (dst, c), _ in placement.edges
                if s is not None and c is not None and s != c and self.row[src] == self.row[dst]}
        return {(src, s, dst, c): "se" if kinds[dst].backward else "sw"
                for (src, s), (dst, c), _ in placement.edges
                if s == c and s is not None and dst in flat and kinds[dst].kind == "state" and
                kinds[src].kind != "cell" and (dst, c) not in boxes_in and
                self.row[dst] - self.row[src] > 1}

    def jump_ports(self, placement: Placement, spine: dict) -> dict[tuple, str]:
        """Open cells: an edge from below that jumps over the row of a step's internal values
        into a state (a GRU's x(t) → h(t), an LSTM's x(t) → s(t)) enters the state on the side
        away from its edge from the step before (right, for a forward state), at the lower
        corner, or at the upper one when a value of that row comes from that side too (the
        GRU's r(t)). Unported, dot swung it round the box into the side where the state's edges
        to the next step leave: an arrowhead on their tails."""
        out: dict[tuple, str] = {}
        shared: dict[tuple[int, int], list[str]] = {}
        for name, c in placement.cells:            # (sorted by column, then computation)
            shared.setdefault((c, self.row[name]), []).append(name)
        for (src, s), (dst, c), e in placement.edges:
            var = self.book.variables[dst]
            if s != c or var.kind != "state" or self.row[dst] - self.row[src] < 2:
                continue
            row = shared.get((c, self.row[dst] - 1), [])
            middle = spine.get((c, self.row[dst] - 1))
            if len(row) < 2 or middle not in row:
                continue
            feeding = {f.src for f in self.book.inputs_of(dst) if not f.delay}
            left = sum(1 for n in row[:row.index(middle)] if n in feeding)
            right = sum(1 for n in row[row.index(middle) + 1:] if n in feeding)
            # the side away from the state's edge from the step before; its lower corner, or
            # the upper one when a value below comes from that side too (the GRU's r(t))
            side, beside = ("w", left) if var.backward else ("e", right)
            out[(src, s, dst, c)] = ("n" if beside else "s") + side
        return out

    def order_rows(self, placement: Placement, ids: dict) -> None:
        """Invisible flat edges: in every row, time runs left to right (and within one step,
        a row shared by several values, the gates of an open cell, in the order they are
        computed, which is also the order dot gives their labels: reversed, the edges from
        x(t) to the gates crossed under their labels)."""
        by_row: dict[int, list[str]] = {}
        for name, c in placement.cells:           # sorted by column
            by_row.setdefault(self.row[name], []).append(ids[(name, c)])
        for chain in by_row.values():
            for a, b in zip(chain, chain[1:]):
                self.invisible(a, b)

    def spine(self, placement: Placement) -> dict[tuple[int, int], str]:
        """(column, row) → the variable that stands on the column's vertical line: the only one,
        the middle one of a row shared by several (the gates of an open cell; counted without
        a candidate the gates let in, which a name drew as a node of its own: PyTorch's g i f
        o has f on the line, as i f o has, under the state whose past it gates, Fig. 10.16),
        or the first of a row of read-outs, the others right of it, as folded (o over h, p
        and q beside it)."""
        together: dict[tuple[int, int], list[str]] = {}
        for name, c in placement.cells:
            together.setdefault((c, self.row[name]), []).append(name)
        outs = readouts(self.book)

        def on_line(names: list[str]) -> str:
            gates = [n for n in names if self.book.roles.get(n) != "input"] or names
            return names[0] if names[0] in outs else gates[(len(gates) - 1) // 2]
        return {k: on_line(names) for k, names in together.items()}

    def stack_columns(self, placement: Placement, ids: dict) -> None:
        """Invisible heavy edges: the cells of one column stand on one vertical line; context
        inputs (one node for all steps, Fig. 10.9's x) stand under the middle column."""
        by_col: dict[int, dict[int, str]] = {}
        for (c, r), name in self.spine(placement).items():
            by_col.setdefault(c, {})[r] = ids[(name, c)]
        steps = [c.index for c in placement.columns if c.kind == "step"]
        middle = self.context_column(steps)     # (the group of context nodes)
        for name in placement.contexts:
            by_col.setdefault(middle, {}).setdefault(self.row[name], ids[(name, None)])
        self.hold_rows(placement, ids, by_col)
        for stack in by_col.values():
            chain = [stack[r] for r in sorted(stack)]
            for a, b in zip(chain, chain[1:]):
                self.invisible(a, b, weight="8")

    def hold_rows(self, placement: Placement, ids: dict, by_col: dict[int, dict[int, str]]
                  ) -> None:
        """Invisible points in ``by_col``: a column (an ellipsis ``h(…)``, a gap) that draws
        nothing in a row where the column before it holds several values side by side (two
        outputs of one state, their losses and targets) gets a point there, right of them, on
        its own vertical line: ``h(…)`` stood under the second output of step t+1."""
        wide: dict[tuple[int, int], list[str]] = {}
        for name, c in placement.cells:           # (sorted by column, then computation)
            wide.setdefault((c, self.row[name]), []).append(ids[(name, c)])
        for (c, r), nodes in sorted(wide.items()):
            stack = by_col.get(c + 1)
            if len(nodes) < 2 or not stack or r in stack:
                continue
            stack[r] = self.hold_point(c + 1, r, nodes[-1])
        self.hold_ends(placement, by_col)

    def hold_ends(self, placement: Placement, by_col: dict[int, dict[int, str]]) -> None:
        """Invisible points in ``by_col``: an ellipsis column at either end (``c(…)``) that
        draws nothing in the rows above its ellipsis up to where the ``lifted`` cell of the
        step beside it sends its edge past the ellipsis's row (the SRU's cell(t+1) → h(t+1)
        past c(t+1) → c(…), x(t+1) –P→ h(t+1) beside it) gets a point in each of them, on its
        own vertical line. Without them nothing held those edges in: dot, which keeps a row's
        nodes joined by flat edges together, put their bends beyond the ellipsis and left them
        there (nothing crossed out there), round it."""
        cols, lifted = placement.columns, self.lifted(placement)
        for end, col in enumerate(cols):
            beside = end - 1 if end == len(cols) - 1 else end + 1
            if col.kind != "end" or not 0 <= beside < len(cols) or end not in by_col:
                continue
            stack, near = by_col[end], by_col.get(beside, {})
            for r in [r for r in sorted(stack) if r + 1 not in stack]:
                top = max((self.row[dst] for (src, s), (dst, c), _ in placement.edges
                           if s == c == beside and (src, s) in lifted and
                           self.row[src] < r < self.row[dst]), default=r)
                for up in range(r + 1, top + 1):
                    if up not in stack and up in near:
                        stack[up] = self.hold_point(end, up, near[up], left=end < beside)

    def hold_point(self, c: int, r: int, beside: str, left: bool = False) -> str:
        """An invisible point of column ``c`` in row ``r``, right of node ``beside`` (or left of
        it, first in the row, ``left``) — for ``hold_rows`` and ``hold_ends``."""
        point = f"hold{c}-{r}{self.suffix}"
        self.dot.node(point, **POINT)
        if left:
            self.ranks.setdefault(r, []).insert(0, point)
            self.invisible(point, beside)
        else:
            self.ranks.setdefault(r, []).append(point)
            self.invisible(beside, point)
        return point


def _name(rec: Recurrence, view: str) -> str:
    """The drawing's name, after checking that ``rec`` is a recurrence."""
    check_recurrence(rec)
    return f"{rec.name} ({view})"


def _check_flags(**flags: Any) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise UnfoldTypeError(f"{name} must be True or False, got {value!r}")


def prepare(rec: Recurrence, columns: list[Column], *, hide: Sequence[str] = (),
            cells: str = "auto") -> tuple[Book, Placement, bool]:
    """The book of ``rec`` as an unfolded view draws it: with its cells compacted or boxed
    (``cells``, see ``viz.cells``), and placed on ``columns``. Returns (book, placement,
    boxes)."""
    book = contract(rec, hide)
    used = C.mode(book, cells)
    if used == "compact":
        book = C.compact(book)
    elif used == "open":
        book = C.join_inputs(book)
    return book, place(book, columns), used == "open"


def keep_order(dot: graphviz.Digraph, boxes: bool) -> None:
    """Open cells keep their values in the same order in every step (f, g, q): dot's second
    crossing minimisation swapped them in some cells, across the invisible edges ordering
    them."""
    if boxes:
        dot.attr(remincross="false")


def _columns(steps: int | None, window: Sequence[str] | None, max_steps: int | None,
             what: str) -> list[Column]:
    if max_steps is None and isinstance(steps, int) and steps > DRAWABLE:
        max_steps = DRAWABLE
        warnings.warn(f"{what}: max_steps=None draws at most {DRAWABLE} steps (the DOT text of "
                      f"τ = {steps} steps would take minutes to write, and dot far longer to "
                      f"lay out); drawing steps 1–{DRAWABLE // 2} and "
                      f"{steps - DRAWABLE // 2 + 1}–{steps}: pass max_steps=k to choose",
                      ElidedStepsWarning, stacklevel=3)
        return axis(steps, window, max_steps)
    columns = axis(steps, window, max_steps)
    if any(c.span for c in columns):
        gap = next(c.span for c in columns if c.span)
        warnings.warn(f"{what}: τ = {steps} steps exceed max_steps={max_steps}; steps "
                      f"{gap[0]}–{gap[1]} are drawn as ellipses (pass max_steps=None to draw "
                      f"every step)", ElidedStepsWarning, stacklevel=3)
    return columns


#: the default window of a recurrence whose losses are all taken at the last step (Fig. 10.5)
LAST = ("...", "t-1", "t", "...", "τ")
#: and at the first step (the generic window drew them at t−1, with h(…) before it)
FIRST = ("1", "2", "3", "...")


def _default_axis(rec: Recurrence, steps: int | None, window: Sequence[str] | None
                  ) -> tuple[int | None, Sequence[str] | None, str]:
    """The axis drawn when none is given, as (steps, window, what the caption says of it): the
    book's ``h(…), t−1, t, t+1, h(…)``; when every loss is taken at the last step only, Fig.
    10.5's ``h(…), t−1, t, …, τ`` (the generic window drew ``o, L, y`` at t+1 with the chain
    going on after it); at the first step only, ``1, 2, 3, h(…)`` (it drew them at t−1, after
    h(…)); when the losses are taken at some steps ``k`` only (and the others at every step),
    the concrete steps ``1 … max k``, which show them where they are, said in the caption (a
    symbolic window has no step 2 to put them at: it drew them at every step)."""
    if steps is not None or window is not None:
        return steps, window, ""
    taken = {name: spec[1] for name, spec in rec.losses.items()}
    for word, ends in (("last", LAST), ("first", FIRST)):
        if taken and all(k == word for k in taken.values()):
            return None, ends, ""
    some = {name: sorted(k) for name, k in taken.items() if k is not None and
            not isinstance(k, str)}
    if not some or any(isinstance(k, str) for k in taken.values()):
        return None, None, ""
    tau = max(k[-1] for k in some.values())
    said = "; ".join(f"{name} at step{'s' if len(k) > 1 else ''} "
                     f"{', '.join(map(str, k[:-1])) + ' and ' if len(k) > 1 else ''}{k[-1]}"
                     for name, k in some.items())
    return tau, None, f"{said} only"


def caption(dot: graphviz.Digraph, columns: list[Column], extra: str = "") -> None:
    """Say at the top of the drawing which steps it shows (when some are elided, or asked)."""
    gap = any(c.span for c in columns)
    if gap or extra:
        words = "; ".join(t for t in (extra, shown_steps(columns) if gap else "") if t)
        dot.attr(label=L.plain(words), labelloc="t", fontsize="12", fontcolor="#444444")


def folded(rec: Recurrence, *, params: bool = True, biases: bool = False,
           hide: Sequence[str] = ()) -> Drawing:
    """The folded graph of ``rec`` as the book draws it (Fig. 10.2 left, 10.3 left): named
    variables as circles, parameters on the edges, delays as a small black square.

    ``params=False`` leaves the edges unlabelled; ``biases=True`` also writes the parameters that
    are added (``b``, ``c``) on the edges; ``hide`` names values not to draw (an inner value or
    an output is contracted like an unnamed one, a loss disappears).
    """
    _check_flags(params=params, biases=biases)
    book = contract(rec, hide)
    return _draw_folded(book, _name(rec, "folded"), params, biases, _loop_ports(
        book, params, biases))


def _draw_folded(book: Book, name: str, params: bool, biases: bool, ports: loops.Ports
                 ) -> Drawing:
    dot = new_graph(name)
    d = _Drawer(dot, book, None, params=params, biases=biases)
    d.ports = ports
    d.folded()
    d.close()
    return dot


def _loop_ports(book: Book, params: bool, biases: bool) -> loops.Ports:
    """The ports that keep the folded drawing's loops clear of other edges' ends."""
    return loops.untangle(lambda ports: _draw_folded(book, "folded", params, biases, ports))


def _crossing_count(book: Book, params: bool, biases: bool, ports: loops.Ports) -> int | None:
    """How many pairs of edges cross in the folded drawing (None without ``dot``)."""
    from .output import have_dot, layout
    if not have_dot():
        return None
    return loops.crossings(layout(_draw_folded(book, "folded", params, biases, ports), quiet=True))


def unfolded(rec: Recurrence, steps: int | None = None, window: Sequence[str] | None = None,
             *, params: bool = True, biases: bool = False, hide: Sequence[str] = (),
             cells: str = "auto", max_steps: int | None = MAX_STEPS,
             gradients: Mapping[Any, Any] | None = None,
             scale: tuple[float, float] | None = None) -> Drawing:
    """The unfolded graph of ``rec``: time left to right, one row per variable.

    ``steps=τ`` draws steps ``1 … τ`` (beyond ``max_steps`` the middle steps are elided, said
    in the drawing and in an ``ElidedStepsWarning``); otherwise ``window`` lists symbolic
    steps, ``"..."`` at an end being the book's ellipsis node ``h(…)`` (default
    ``("...", "t-1", "t", "t+1", "...")``). ``params``, ``biases`` and ``hide`` are those of
    ``folded``. ``cells`` says how a step with internal values (gates) is drawn:
    ``"compact"`` one cell node per step, ``"open"`` its values in a box per step, ``"flat"``
    one row per value, ``"auto"`` (default) compact from two internal values on. ``gradients``
    maps variables at steps to gradient values (see ``viz.overlay``): each circle is then
    coloured and thickened by ``log10 ‖∇‖`` on the colour ``scale`` (low, high) in log10, by
    default that of the values given, with a legend.
    """
    _check_flags(params=params, biases=biases)
    name = _name(rec, "unfolded")
    steps, window, note = _default_axis(rec, steps, window)
    columns = _columns(steps, window, max_steps, "viz.unfolded")
    dot = new_graph(name)
    book, placement, boxes = prepare(rec, columns, hide=hide, cells=cells)
    keep_order(dot, boxes)
    d = _Drawer(dot, book, columns, params=params, biases=biases, boxes=boxes)
    if gradients is None:
        d.unfolded(placement, boxes=boxes)
        caption(dot, columns, note)
    else:
        from .overlay import overlay
        overlay(d, placement, gradients, scale, boxes=boxes)
        caption(dot, columns, note)
    d.close()
    _spread(dot, [d])
    return dot


def _spread(dot: graphviz.Digraph, drawers: Sequence["_Drawer"]) -> None:
    """The drawing's ``nodesep``: room for the widest label between two columns."""
    wide = max((getattr(d, "nodesep", 0.0) for d in drawers), default=0.0)
    if wide > float(GRAPH["nodesep"]):
        dot.attr(nodesep=f"{wide:g}")


def side_by_side(name: str, panels: Sequence[tuple[str, Recurrence, Mapping[str, Any]]]
                 ) -> Drawing:
    """Unfolded views of several recurrences in one drawing, left to right, each titled (the
    "Train time" and "Test time" of Fig. 10.6). A panel is ``(title, rec, options)`` where the
    options are those of ``unfolded`` (``steps``, ``window``, ``params``, ``biases``, ``hide``,
    ``cells``, ``max_steps``, ``gradients``). Gradient overlays share one colour scale, that of
    all the panels' values together (or ``scale`` given in a panel's options)."""
    from .overlay import overlay, shared_scale
    if not isinstance(panels, Sequence) or not panels:
        raise UnfoldTypeError("side_by_side: give a list of (title, recurrence, options)")
    known = {"steps", "window", "params", "biases", "hide", "cells", "max_steps", "gradients",
             "scale"}
    for panel in panels:
        if not (isinstance(panel, tuple) and len(panel) == 3 and isinstance(panel[2], Mapping)):
            raise UnfoldTypeError(f"side_by_side: a panel is (title, recurrence, options), got "
                                  f"{panel!r}")
        unknown = set(panel[2]) - known
        if unknown:
            raise UnfoldTypeError(f"unknown options for panel {panel[0]!r}: {sorted(unknown)}; "
                                  f"known: {sorted(known)}")
    given = [p[2].get("scale") for p in panels if p[2].get("scale") is not None]
    common = given[0] if given else shared_scale(
        *[p[2]["gradients"] for p in panels if p[2].get("gradients") is not None])
    dot = new_graph(name)
    firsts, drawers = [], []
    for k, (title, rec, options) in enumerate(panels):
        options = dict(options)
        check_recurrence(rec)
        columns = _columns(options.pop("steps", None), options.pop("window", None),
                           options.pop("max_steps", MAX_STEPS), "viz.side_by_side")
        with dot.subgraph(name=f"cluster_panel{k}") as part:
            # (an overlay says which steps it shows: each panel for itself, their τ may differ)
            label = title if not any(c.span for c in columns) and \
                options.get("gradients") is None else f"{title}\n({shown_steps(columns)})"
            part.attr(label=L.plain(label), pencolor="transparent", fontname=L.FONT,
                      fontsize="16", labelloc="t")
            book, placement, boxes = prepare(rec, columns, hide=options.pop("hide", ()),
                                             cells=options.pop("cells", "auto"))
            keep_order(dot, boxes)
            params, biases = options.pop("params", True), options.pop("biases", False)
            _check_flags(params=params, biases=biases)
            d = _Drawer(part, book, columns, params=params, biases=biases, boxes=boxes)
            d.suffix = f"[{k}]"
            gradients = options.pop("gradients", None)
            if gradients is None:
                d.unfolded(placement, boxes=boxes)
            else:
                overlay(d, placement, gradients, common, boxes=boxes,
                        legend_here=k == len(panels) - 1,
                        compared=[p[2]["gradients"] for p in panels
                                  if p[2].get("gradients") is not None])
            d.close()
        firsts.append(d.ranks[min(d.ranks)])
        drawers.append(d)
    with dot.subgraph() as bottom:                # the bottom rows side by side
        bottom.attr(rank="same")
        for nodes in firsts:
            for node in nodes:
                bottom.node(node)
    for left, right in zip(firsts, firsts[1:]):   # panels in order, left to right
        dot.edge(left[-1], right[0], style="invis", weight="0")
    _spread(dot, drawers)
    return dot


def unfolding(rec: Recurrence, steps: int | None = None, window: Sequence[str] | None = None,
              *, params: bool = True, biases: bool = False, hide: Sequence[str] = (),
              cells: str = "auto", max_steps: int | None = MAX_STEPS) -> Drawing:
    """Fig. 10.2's composition: the folded graph on the left, an arrow labelled "Unfold", and
    the unfolded graph on the right, both standing on the bottom row. The folded graph is
    drawn in full (every named value), exactly as ``folded`` draws it; the unfolded one draws
    cells as ``unfolded`` does (``cells``)."""
    _check_flags(params=params, biases=biases)
    name = _name(rec, "unfolding")
    steps, window, note = _default_axis(rec, steps, window)
    columns = _columns(steps, window, max_steps, "viz.unfolding")
    full = contract(rec, hide)

    def draw(ports: loops.Ports) -> Drawing:
        return _unfolding(rec, name, columns, full, hide, cells, params, biases, ports, note)
    # (the folded half's loops in this drawing: its rows beside the other half's ranks may
    # lay out otherwise than viz.folded's, so the moves found for viz.folded are a start)
    ports = _loop_ports(full, params, biases)
    return draw(loops.untangle(draw, start=ports, movable=lambda node: "[folded]" in node,
                               crossings=_crossing_count(full, params, biases, ports)))


def _unfolding(rec: Recurrence, name: str, columns: list[Column], full: Book,
               hide: Sequence[str], cells: str, params: bool, biases: bool,
               ports: loops.Ports, note: str = "") -> Drawing:
    dot = new_graph(name)
    book, placement, boxes = prepare(rec, columns, hide=hide, cells=cells)
    keep_order(dot, boxes)
    # one drawer per half: the folded half keeps every value, the unfolded one may use cells.
    # The folded half is viz.folded's DOT: its own rows, no rank or edge shared with the
    # unfolded half and no cluster, so it is a connected component of its own, which dot
    # orders exactly as it orders viz.folded (on the unfolded half's rows, tied to the wall,
    # an LSTM with peepholes had 13 crossings where viz.folded has 4; in a cluster, which dot
    # orders from another start, mgu 1 where viz.folded has 0). Both halves stand on the
    # bottom row; where the rows are the same (an RNN, Fig. 10.2) they are level.
    right = _Drawer(dot, book, columns, params=params, biases=biases, boxes=boxes)
    left = _Drawer(dot, full, None, params=params, biases=biases)
    left.width = right.width = max(left.width, right.width)      # (one size in both halves)
    left.steps = right.steps
    left.ports = ports
    left.folded(suffix="[folded]")
    ids = right.unfolded(placement, boxes=boxes)
    left.levels, right.levels = _levels(left, right)
    left.close()
    first: dict[int, str] = {}                   # the first unfolded cell of each row
    for cell in placement.cells:
        first.setdefault(right.row[cell[0]], ids[cell])
    states = [v.name for v in book.variables.values() if v.kind == "state"]
    arrow_row = right.row[states[0]] if states else max(right.row.values()) // 2
    # an invisible wall of points left of the unfolded half, one per row, each just left of
    # its row's first cell, with the arrow in the row of the first state (dot puts the
    # components left to right in the order their first nodes are declared: the folded half
    # first, and each of its rows left of the wall's point in that row). The points are
    # joined by weight-0 edges, which keep them in the half's ranks without holding them in
    # one line (a stiff wall, one group, pulled x(1) out of its column and its U edge round
    # it; the arrow alone, joined by its flat edge, stood between h(1) and h(2))
    walls = []
    for r in sorted(first):
        # (each row's point stands as far left of its first cell as the arrow's tail: a
        # point, then the arrow's head or another point, then the cell)
        wall, head = f"[unfold {r}]", "[unfold head]" if r == arrow_row else f"[unfold {r} to]"
        for node in (wall, head):
            dot.node(node, **POINT)
            right.ranks.setdefault(r, []).append(node)
        if r == arrow_row:
            right.edge(wall, head, label=L.plain("Unfold"), penwidth="1.6", arrowsize="1.0",
                       fontname=L.FONT)
        else:
            right.invisible(wall, head, weight="1")
        right.invisible(head, first[r], weight="1")
        walls.append(wall)
    for a, b in zip(walls, walls[1:]):
        right.invisible(a, b, weight="0")
    right.close()
    caption(dot, columns, note)
    _spread(dot, [right])
    return dot


def _level(levels: dict[int, int], row: int) -> int:
    """The rank of ``row`` (a row without one, a delay square's above the top, counts on from
    the nearest below)."""
    known = max((r for r in levels if r <= row), default=None)
    return row if known is None else levels[known] + row - known


def _levels(left: _Drawer, right: _Drawer) -> tuple[dict[int, int], dict[int, int]]:
    """The ranks of the rows of ``unfolding``'s two halves, so that a variable drawn in both
    stands level in both (Fig. 10.2): each half counts its rows up from the bottom — one rank
    a row, three into a row of arcs under skip edges (``connect``) — and where a variable's
    row is lower in one half, that half's rows from there on stand higher. The halves share
    no rank (see ``unfolding``): the ranks are kept by invisible edges of that length."""
    pairs = sorted({(left.row[n], right.row[n]) for n in left.row if n in right.row and
                    n in left.book.variables and n in right.book.variables})
    anchors, last = [], (-1, -1)
    for f, u in pairs:                  # (a chain rising in both halves)
        if f > last[0] and u > last[1]:
            anchors.append((f, u))
            last = (f, u)
    f_rows, u_rows = sorted(set(left.row.values())), sorted(set(right.row.values()))
    f_level: dict[int, int] = {}
    u_level: dict[int, int] = {}
    f_at = u_at = -1                    # the last row placed in each half, and its rank
    f_rank = u_rank = -1

    def climb(rows, upto, at, rank, levels, gap):
        for r in rows:
            if at < r < upto:
                rank += gap(r)
                levels[r] = rank
                at = r
        return at, rank
    u_gap = lambda r: 3 if r in right.arcs else 1
    for f, u in anchors + [(10 ** 9, 10 ** 9)]:
        f_at, f_rank = climb(f_rows, f, f_at, f_rank, f_level, lambda r: 1)
        u_at, u_rank = climb(u_rows, u, u_at, u_rank, u_level, u_gap)
        if f == 10 ** 9:
            break
        rank = max(f_rank + 1, u_rank + u_gap(u))
        f_level[f] = u_level[u] = f_rank = u_rank = rank
        f_at, u_at = f, u
    return f_level, u_level
