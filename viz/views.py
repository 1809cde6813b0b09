"""The book view of a recurrence, as graphviz: folded, unfolded, and both with the "Unfold" arrow.

Every drawing is a ``graphviz.Digraph`` laid out bottom to top (``rankdir=BT``): one rank per row
of ``layout.rows`` (``{rank=same}``), time left to right inside a row (invisible flat edges fix the
order), and the cells of one step stacked in a column (``group=`` and invisible vertical edges).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import graphviz

from unfold.recurrence import Recurrence

from . import labels as L
from .book import Book, Edge, check_recurrence, contract
from .layout import Column, Placement, axis, place, rows

GRAPH = {"rankdir": "BT", "newrank": "true", "nodesep": "0.5", "ranksep": "0.5",
         "fontname": L.FONT, "forcelabels": "true", "outputorder": "edgesfirst"}
NODE = {"shape": "circle", "fixedsize": "true", "fontname": L.FONT, "fontsize": "14",
        "penwidth": "1.2"}
EDGE = {"arrowsize": "0.7", "fontname": L.FONT, "fontsize": "14", "penwidth": "1.1"}
DELAY = {"shape": "square", "style": "filled", "fillcolor": "black", "label": "",
         "width": "0.11", "height": "0.11", "fixedsize": "true"}
INVISIBLE = {"style": "invis"}
POINT = {"shape": "point", "label": "", "style": "invis", "width": "0.01", "height": "0.01"}


def width(name: str, step: str | None) -> float:
    """The diameter (inches) of a circle just wide enough for ``name`` and its superscript."""
    base, _, sub = name.partition("_")
    chars = len(base) + 0.7 * len(sub) + (0.7 * (len(L.step_text(step)) + 2) if step else 0)
    return round(max(0.55, 0.11 * chars + 0.3), 2)


def new_graph(name: str, **graph_attr: str) -> graphviz.Digraph:
    """An empty drawing with the book's fonts and sizes."""
    return graphviz.Digraph(L.plain(name), graph_attr={**GRAPH, **graph_attr},
                            node_attr=NODE, edge_attr=EDGE)


class _Drawer:
    """Writes one book view (or two, for ``unfolding``) into a Digraph."""

    def __init__(self, dot: graphviz.Digraph, book: Book, columns: list[Column] | None, *,
                 params: bool, biases: bool) -> None:
        self.dot, self.book, self.row = dot, book, rows(book, shared=columns is None)
        steps = [None] + [c.step for c in columns or ()]
        self.width = str(max(width(n, s) for n in book.variables for s in steps))
        self.show_params, self.show_biases = params, biases
        self.ranks: dict[int, list[str]] = {}
        self.joined: set[frozenset] = set()     # pairs of nodes joined by a visible edge
        self.suffix = ""                         # keeps node ids of several panels apart

    def edge(self, a: str, b: str, **attrs: str) -> None:
        """A visible edge (``a`` and ``b`` may carry a port)."""
        if attrs.get("constraint") != "false":
            self.joined.add(frozenset((a.split(":")[0], b.split(":")[0])))
        self.dot.edge(a, b, **attrs)

    def invisible(self, a: str, b: str, **attrs: str) -> None:
        """An invisible edge that orders ``a`` before ``b``, unless a visible edge that ranks its
        ends already joins them (parallel edges would bend the visible one)."""
        if frozenset((a, b)) not in self.joined:
            self.dot.edge(a, b, **INVISIBLE, **attrs)

    def edge_label(self, e: Edge, free: bool = False) -> dict[str, str]:
        """The parameters on ``e``. On an edge inside a row or one that does not rank its ends
        (``free``) the label is an ``xlabel``: dot routes true labels of such edges badly (loops,
        and lost edges when other edges cross the row)."""
        names = (e.labels if self.show_params else ()) + (e.biases if self.show_biases else ())
        return {"xlabel" if free else "label": L.params(names)} if names else {}

    def variable(self, name: str, step: str | None = None, key: str | None = None,
                 suffix: str = "", **attrs: str) -> str:
        """Declare the circle of ``name`` (at ``step``, whose id part is ``key``)."""
        node = L.node_id(name, key if key is not None else step) + suffix + self.suffix
        tip = name if step is None else f"{name}({L.step_text(step)})"
        self.dot.node(node, L.variable(name, step), **{"width": self.width,
                                                        "tooltip": L.plain(tip), **attrs})
        self.ranks.setdefault(self.row[name], []).append(node)
        return node

    def connect(self, tail: str, head: str, e: Edge, tip: str, *, leftward: bool = False
                ) -> None:
        """The visible edge of ``e`` from node ``tail`` to node ``head`` (``tip``: which way the
        data flows, in words).

        Dot keeps rows and columns straight when edges run the way the layout does, up the rows
        and left to right inside a row. A backward state's ``g(t+1) → g(t)`` is written the way
        its data flows, without ranking its ends, an invisible edge keeping the row in order; an
        edge whose data flows down the rows (a target into its loss, ``y(t−1) → h(t)``) is
        written reversed and drawn with ``dir=back``, its arrow where the data arrives.
        An edge that jumps over a row does not pull its ends into line (weight 0): the
        invisible column edges do that, and it bends around the row it crosses anyway. Labels
        of edges inside a row are ``xlabel``s: dot's true labels there break its routing when
        other edges cross the row."""
        up = self.row[e.dst] - self.row[e.src]
        attrs = {**self.edge_label(e, free=up == 0), "tooltip": L.plain(tip)}
        if abs(up) > 1:
            attrs["weight"] = "0"
        if up == 0 and leftward:
            # a backward state's g(t+1) → g(t): written the way the data flows, not ranking its
            # ends; an invisible edge the way the layout runs keeps the row in order
            self.edge(tail, head, constraint="false", **attrs)
            self.invisible(head, tail, weight=attrs.get("weight", "1"))
        elif up < 0:
            # down the rows (y → L, y(t−1) → h(t)): written reversed, drawn with dir=back —
            # constraint=false edges across rows are routed in loops
            self.edge(head, tail, dir="back", **attrs)
        else:
            self.edge(tail, head, **attrs)

    def close(self) -> None:
        """One ``rank=same`` subgraph per row, and invisible edges stacking the rows in order."""
        for r in sorted(self.ranks):
            with self.dot.subgraph() as s:
                s.attr(rank="same")
                for node in self.ranks[r]:
                    s.node(node)
        heads = [self.ranks[r][0] for r in sorted(self.ranks)]
        for a, b in zip(heads, heads[1:]):
            self.invisible(a, b, weight="8")

    # --- folded ----------------------------------------------------------------------------------

    def folded(self, suffix: str = "") -> dict[str, str]:
        """The folded graph: each variable once, delay edges through the black square. ``suffix``
        keeps its node ids apart from those of an unfolded graph in the same drawing."""
        ids, spine = {}, set()
        for name in self.book.variables:         # the first variable of each row: one column
            first = self.row[name] not in spine
            spine.add(self.row[name])
            ids[name] = self.variable(name, suffix=suffix,
                                      **({"group": f"folded{self.suffix}"} if first else {}))
        delayed: dict[tuple, list[Edge]] = {}
        for e in self.book.edges:
            if e.delay:
                delayed.setdefault((e.src, e.delay, e.backward), []).append(e)
                continue
            self.connect(ids[e.src], ids[e.dst], e, f"{e.src} → {e.dst}")
        for edges in delayed.values():
            self.delay(ids, edges)
        return ids

    def delay(self, ids: dict[str, str], edges: list[Edge]) -> None:
        """The book's black square on the delay edges ``edges`` that leave one state with one
        delay (labelled with the delay when it is more than one step). Where it goes:

        * a state's loop onto itself leaves the state to the right, goes up to the square (at
          the right end of the row above) and comes back into the state from above;
        * a delayed value that feeds one other variable: the square sits right of the source;
        * one that feeds several (an LSTM's h(t−1) into its gates): the square sits under the
          lowest of them, which it enters from below, like an input.

        (Ports on edges inside one row are avoided: dot 2.43 mixes up their attributes.)"""
        e = edges[0]
        src = ids[e.src]
        square = src + f"[delay {e.delay}{' back' if e.backward else ''}]"
        extra = {"xlabel": str(e.delay)} if e.delay > 1 else {}
        when = "later" if e.backward else "earlier"
        self.dot.node(square, **DELAY, **extra,
                      tooltip=L.plain(f"delay: {e.src} as it was {e.delay} step(s) {when}"))
        loop = len(edges) == 1 and e.dst == e.src
        fan_out = len(edges) > 1
        if loop:
            row = self.row[e.src] + 1
        elif fan_out:
            row = max(0, min(self.row[f.dst] for f in edges) - 1)
        else:
            row = self.row[e.src]
        for name, node in ids.items():           # rightmost in its row
            if self.row[name] == row:
                self.invisible(node, square)
        self.ranks.setdefault(row, []).append(square)
        if loop:   # these ports leave dot no choice but a loop on the right of the state
            self.edge(f"{src}:e", square, arrowhead="none")
            self.edge(square, f"{src}:n", constraint="false", **self.edge_label(e, free=True))
            return
        self.edge(src, square, arrowhead="none",
                  **({"constraint": "false"} if row < self.row[e.src] else {}))
        for f in edges:
            free = not fan_out or self.row[f.dst] <= row
            self.edge(square, ids[f.dst], **self.edge_label(f, free),
                      **({"constraint": "false"} if free else {}))

    # --- unfolded --------------------------------------------------------------------------------

    def unfolded(self, placement: Placement, style: Mapping[tuple[str, int], dict] | None = None
                 ) -> dict[tuple[str, int | None], str]:
        """The unfolded graph of ``placement``; ``style`` adds attributes to cells (the gradient
        overlay). Returns the node id of each cell (contexts under column ``None``)."""
        cols = placement.columns
        ids: dict[tuple[str, int | None], str] = {}
        steps = [c.index for c in cols if c.kind == "step"]
        for name in placement.contexts:         # under the middle column
            middle = steps[len(steps) // 2]
            ids[(name, None)] = self.variable(name, group=f"c{middle}{self.suffix}")
        for name, c in placement.cells:
            col = cols[c]
            extra = dict(style.get((name, c), {})) if style else {}
            ids[(name, c)] = self.variable(name, col.step, col.key, group=f"c{c}{self.suffix}",
                                           **extra)
        def title(name: str, c: int | None) -> str:
            return name if c is None else f"{name}({L.step_text(cols[c].step)})"

        for (src, s), (dst, c), e in placement.edges:
            self.connect(ids[(src, s)], ids[(dst, c)], e, f"{title(src, s)} → {title(dst, c)}",
                         leftward=s is not None and s > c)
        self.order_rows(placement, ids)
        self.stack_columns(placement, ids)
        return ids

    def order_rows(self, placement: Placement, ids: dict) -> None:
        """Invisible flat edges: in every row, time runs left to right."""
        by_row: dict[int, list[str]] = {}
        for name, c in placement.cells:           # sorted by column
            by_row.setdefault(self.row[name], []).append(ids[(name, c)])
        for chain in by_row.values():
            for a, b in zip(chain, chain[1:]):
                self.invisible(a, b)

    def stack_columns(self, placement: Placement, ids: dict) -> None:
        """Invisible heavy edges: the cells of one column stand on one vertical line; context
        inputs (one node for all steps, Fig. 10.9's x) stand under the middle column."""
        by_col: dict[int, dict[int, str]] = {}
        for name, c in placement.cells:
            by_col.setdefault(c, {}).setdefault(self.row[name], ids[(name, c)])
        steps = [c.index for c in placement.columns if c.kind == "step"]
        middle = steps[len(steps) // 2]         # (the group of context nodes)
        for name in placement.contexts:
            by_col.setdefault(middle, {}).setdefault(self.row[name], ids[(name, None)])
        for stack in by_col.values():
            chain = [stack[r] for r in sorted(stack)]
            for a, b in zip(chain, chain[1:]):
                self.invisible(a, b, weight="8")


def _drawer(dot: graphviz.Digraph, rec: Recurrence, columns: list[Column] | None,
            params: bool, biases: bool, hide: Sequence[str]) -> _Drawer:
    return _Drawer(dot, contract(rec, hide), columns, params=params, biases=biases)


def _name(rec: Recurrence, view: str) -> str:
    """The drawing's name, after checking that ``rec`` is a recurrence."""
    check_recurrence(rec)
    return f"{rec.name} ({view})"


def folded(rec: Recurrence, *, params: bool = True, biases: bool = False,
           hide: Sequence[str] = ()) -> graphviz.Digraph:
    """The folded graph of ``rec`` as the book draws it (Fig. 10.2 left, 10.3 left): named
    variables as circles, parameters on the edges, delays as a small black square.

    ``params=False`` leaves the edges unlabelled; ``biases=True`` also writes the parameters that
    are added (``b``, ``c``) on the edges; ``hide`` names values not to draw (an inner value or
    an output is contracted like an unnamed one, a loss disappears).
    """
    dot = new_graph(_name(rec, "folded"))
    d = _drawer(dot, rec, None, params, biases, hide)
    d.folded()
    d.close()
    return dot


def unfolded(rec: Recurrence, steps: int | None = None, window: Sequence[str] | None = None,
             *, params: bool = True, biases: bool = False, hide: Sequence[str] = (),
             gradients: Mapping[Any, Any] | None = None) -> graphviz.Digraph:
    """The unfolded graph of ``rec``: time left to right, one row per variable.

    ``steps=τ`` draws steps ``1 … τ``; otherwise ``window`` lists symbolic steps, ``"..."`` at an
    end being the book's ellipsis node ``h(…)`` (default ``("...", "t-1", "t", "t+1", "...")``).
    ``params``, ``biases`` and ``hide`` are those of ``folded``. ``gradients`` maps variables at
    steps to gradient values (see ``viz.overlay``): each circle is then coloured and thickened
    by ``log10 ‖∇‖``, with a legend.
    """
    columns = axis(steps, window)
    dot = new_graph(_name(rec, "unfolded"))
    d = _drawer(dot, rec, columns, params, biases, hide)
    placement = place(d.book, columns)
    if gradients is None:
        d.unfolded(placement)
    else:
        from .overlay import overlay
        overlay(d, placement, gradients)
    d.close()
    return dot


def side_by_side(name: str, panels: Sequence[tuple[str, Recurrence, Mapping[str, Any]]]
                 ) -> graphviz.Digraph:
    """Unfolded views of several recurrences in one drawing, left to right, each titled (the
    "Train time" and "Test time" of Fig. 10.6). A panel is ``(title, rec, options)`` where the
    options are those of ``unfolded`` (``steps``, ``window``, ``params``, ``biases``, ``hide``)."""
    dot = new_graph(name)
    firsts = []
    for k, (title, rec, options) in enumerate(panels):
        options = dict(options)
        columns = axis(options.pop("steps", None), options.pop("window", None))
        with dot.subgraph(name=f"cluster_panel{k}") as part:
            part.attr(label=L.plain(title), pencolor="transparent", fontname=L.FONT,
                      fontsize="16", labelloc="t")
            d = _drawer(part, rec, columns, options.pop("params", True),
                        options.pop("biases", False), options.pop("hide", ()))
            if options:
                raise TypeError(f"unknown options for panel {title!r}: {sorted(options)}")
            d.suffix = f"[{k}]"
            d.unfolded(place(d.book, columns))
            d.close()
        firsts.append(d.ranks[min(d.ranks)])
    with dot.subgraph() as bottom:                # the bottom rows side by side
        bottom.attr(rank="same")
        for nodes in firsts:
            for node in nodes:
                bottom.node(node)
    for left, right in zip(firsts, firsts[1:]):   # panels in order, left to right
        dot.edge(left[-1], right[0], style="invis", weight="0")
    return dot


def unfolding(rec: Recurrence, steps: int | None = None, window: Sequence[str] | None = None,
              *, params: bool = True, biases: bool = False, hide: Sequence[str] = ()
              ) -> graphviz.Digraph:
    """Fig. 10.2's composition: the folded graph on the left, an arrow labelled "Unfold", and
    the unfolded graph on the right, on the same rows."""
    columns = axis(steps, window)
    dot = new_graph(_name(rec, "unfolding"))
    d = _drawer(dot, rec, columns, params, biases, hide)
    placement = place(d.book, columns)
    d.folded(suffix="[folded]")
    left = {r: list(nodes) for r, nodes in d.ranks.items()}    # the folded graph, row by row
    ids = d.unfolded(placement)
    first: dict[int, str] = {}                   # the first unfolded cell of each row
    for cell in placement.cells:
        first.setdefault(d.row[cell[0]], ids[cell])
    # an invisible wall of points between the two, one per row, with the arrow in the row of
    # the first state: the folded graph stays left of it, the unfolded graph right of it
    states = [v.name for v in d.book.variables.values() if v.kind == "state"]
    arrow_row = d.row[states[0]] if states else max(d.row.values()) // 2
    walls = []
    for r in sorted(set(left) | set(first)):
        wall = f"[unfold {r}]"
        dot.node(wall, group="unfold", **POINT)
        d.ranks.setdefault(r, []).append(wall)
        right = wall
        if r == arrow_row:
            right = "[unfold head]"
            dot.node(right, **POINT)
            d.ranks[r].append(right)
            d.edge(wall, right, label=L.plain("Unfold"), penwidth="1.6", arrowsize="1.0",
                   fontname=L.FONT)
        if left.get(r):                            # weightless: order, do not pull
            d.invisible(left[r][-1], wall, weight="0")
        if r in first:
            d.invisible(right, first[r], weight="0")
        walls.append(wall)
    for a, b in zip(walls, walls[1:]):
        d.invisible(a, b, weight="8")
    d.close()
    return dot
