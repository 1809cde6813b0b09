"""The op view: every node of a graph (folded, unfolded or a gradient graph), as graphviz.

``viz.graph(nodes)`` draws the ancestors of ``nodes``: op nodes as small boxes named by their op
(or its symbol: ``@``, ``+``, ``×``, ``σ``),
named values as ellipses (``h(3)``), parameters as bold boxes, the per-step dummy copies ``W(t)``
as small dashed boxes in their step, the parameters themselves once, in a row under the steps
whose legend says what a dashed copy is (no edge ties ``W`` to ``W(t)``: such edges, from one
node to every step, decided dot's order of the steps and ran time backwards). Each time step
is a column, named under it, the columns in the order of time (``_Columns``).

``backward=`` adds a gradient graph from ``unfold.grad`` in a red panel beside the forward one,
its nodes named by what they mean (``∇h(3)``, ``∇W(2)``, ``∇W = Σ_t ∇W(t)``, see
``viz.gradients``). By default that panel shows only those meaningful gradients, joined where one
is computed from another (``∇h(2)`` from ``∇h(3)``); ``backward_ops=True`` draws every op of it,
the forward values they read standing beside them as grey stand-ins (so no edge leaves a panel).
Every edge is written the way its data flows (tail: the value, head: its reader), and runs up
the rows: the forward panel climbs a step at a time from ``x(1)`` (step t+1 reads h(t)), the
backward one from the seed ``∇L = 1`` at the bottom, ``∇h(t)`` from ``∇h(t+1)``, to the sums
``∇W`` on top; in both, step 1 stands left.

Large graphs stay drawable: above ``budget`` nodes the middle steps collapse into one box
"steps a…b × N" (said in the drawing and in a ``CollapsedStepsWarning``), ``collapse=k`` keeps
the first and last ``k`` steps explicitly, and ``depth=d`` draws only what lies within ``d``
edges of ``nodes`` (cut inputs end in a "…" stub).
"""
from __future__ import annotations

import warnings
from collections import deque
from dataclasses import replace
from typing import Callable, Mapping, Sequence

import graphviz
import numpy as np

from unfold import arguments
from unfold.errors import UnfoldTypeError, UnfoldValueError
from unfold.graph import Node, topological
from unfold.ops.base import ALIAS, CONSTANT, INPUT, PARAM
from unfold.recurrence import STATE

from . import labels as L
from .gradients import Meaning, _is_copy, meanings
from .positions import tree_positions
from .recovered import gate_names, owners
from .output import Drawing

GRAPH = {"rankdir": "BT", "newrank": "true", "remincross": "false", "nodesep": "0.15", "ranksep": "0.18",
         "fontname": "Helvetica", "fontsize": "11", "compound": "true"}
NODE = {"fontname": "Helvetica", "fontsize": "9", "shape": "box", "style": "rounded",
        "height": "0.25", "width": "0.3", "margin": "0.04,0.02"}
EDGE = {"arrowsize": "0.5", "color": "#555555"}
BACKWARD = "#b03a2e"           # the colour of gradient nodes
#: the ops drawn as their symbol (the tooltip names the op): the narrower boxes halve the
#: width of an LSTM's rows of matmuls
SYMBOLS = L.OPS
#: the id suffix of a forward value's grey stand-in in the backward panel (``backward_ops``)
REF = "[ref]"
#: the id suffix of a constant's copy for one reader (``[use by <reader>]``): a constant is drawn
#: at each use, not once for all (the 1 of a written-out σ, 1/(1 + exp(−a)), read by every gate
#: of every step, was one hub pulling the whole graph to it)
USE = "[use by "

#: nodes drawn at most before the middle steps collapse (``budget=``)
BUDGET = 400
#: the most op nodes ``graph`` draws, whatever ``budget`` and ``collapse`` say
MAX_NODES = 1000
#: steps kept at each end when they collapse by themselves (each step stands higher than the
#: one before: six of an RNN's at each end made a 4 500 × 3 600 px staircase)
KEPT = 3


class CollapsedStepsWarning(UserWarning):
    """An op view draws the middle steps of a long graph as one box."""


def _qualified(forward: list[Node]) -> dict[Node, str]:
    """In a graph that joins recurrences (``bind``), each parameter and its copies by the name
    ``Unfolded.param_names`` gives it, ``encoder.W``, ``decoder.W``: two legends "W", two
    "∇W = Σ_t ∇W(t)" could not be told apart."""
    params = [n for n in forward if n.op is PARAM]
    if len({p.attrs.get("recurrence") for p in params} - {None}) < 2:
        return {}
    out = {p: f"{p.attrs['recurrence']}.{p.name}" for p in params
           if p.attrs.get("recurrence") is not None}
    out.update((n, out[n.inputs[0]]) for n in forward if _is_copy(n) and n.inputs[0] in out)
    return out


def _title(node: Node, name: str | None = None) -> str:
    name = node.name if name is None else name
    return name if node.step is None else f"{name}({node.step})"


def _label(node: Node, name: str | None = None) -> tuple[str, dict[str, str]]:
    """The HTML label and the shape attributes of one forward node; ``name``: what it is
    called instead of its own name (``_OpGraph.alias``)."""
    if node.op is PARAM:
        return f"<<B>{L.esc(_title(node, name))}</B>>", {"shape": "box", "style": "bold"}
    if _is_copy(node):                               # many of them: small, plain
        return f"<{L.esc(_title(node, name))}>", {"shape": "box", "style": "dashed",
                                                  "fontsize": "8"}
    if node.op is CONSTANT:
        value = node.attrs["value"]
        # (numpy writes 1.0 as "1.": the 1 of a GRU's 1 − u read as a typo); a larger one by
        # its shape, "zeros" if it is (a state's initial value)
        text = np.array2string(np.asarray(value), formatter={"float_kind": lambda v: f"{v:.3g}"}
                               ) if value.size <= 3 else \
            f"{'zeros' if not np.any(value) else 'const'} {tuple(value.shape)}"
        return f"<{L.esc(text)}>", {"shape": "plaintext", "style": ""}
    if node.op is STATE:                         # a state read d steps back, h(t−1)
        return (f"<<B>{L.esc(node.name)}</B>(<I>t</I>−{node.attrs['delay']})>",
                {"shape": "ellipse", "style": "dashed"})
    if node.name is not None or name is not None:
        extra = "" if node.op in (ALIAS, INPUT) else \
            f'<BR/><FONT POINT-SIZE="8">{L.esc(node.op.name)}</FONT>'
        return f"<<B>{L.esc(_title(node, name))}</B>{extra}>", {"shape": "ellipse", "style": ""}
    return f"<{L.esc(SYMBOLS.get(node.op.name, node.op.name))}>", {}


class _OpGraph:
    """What to draw: forward and gradient nodes, their steps, ids and meanings."""

    def __init__(self, roots: list[Node], backward: list[Node], depth: int | None) -> None:
        self.forward = topological(roots)
        fset = set(self.forward)
        self.grads = [n for n in topological(backward) if n not in fset] if backward else []
        self.gset = set(self.grads)
        self.order = sorted(self.forward + self.grads, key=lambda n: n.serial)
        # what nodes are called instead of their own names: the unnamed gates as the book
        # view names them (f(t), and ∇f(t) below), parameters of joined recurrences qualified
        self.alias: dict[Node, str] = {**gate_names(self.forward), **_qualified(self.forward)}
        self.meaning: dict[Node, Meaning] = meanings(self.forward, self.grads, self.alias)
        # a recursive net's copies are tree positions: Σ_p, and each readout by its root
        self.moved = tree_positions(self.forward)
        self.index = "t" if self.moved is None else "p"
        self.meaning = {n: replace(m, index=self.index) for n, m in self.meaning.items()}
        self.step = self.steps()
        self.shown = self.within(roots + backward, depth)
        self.ids: dict[Node, str] = {}

    def steps(self) -> dict[Node, int | None]:
        """Each node's time step: its own, or for unstepped computed nodes (the running sum
        L = Σ_t L(t), the backward steps of those) the latest step of the tagged values they
        read (else of any value they read); the sums over
        all steps of a parameter's gradient stand outside the steps."""
        step: dict[Node, int | None] = {}
        for n in self.order:
            if n in self.meaning and self.meaning[n].kind == "total":
                step[n] = None
            elif n.step is not None:
                moved = self.moved or {}
                step[n] = moved.get(n, moved.get(n.adjoint, n.step))
            elif not n.inputs:
                step[n] = None            # (a source read by one step only: below)
            elif n.adjoint is not None and step.get(n.adjoint) is not None:
                step[n] = step[n.adjoint]
            else:    # the latest step among the tagged values it reads, else among all:
                # a running sum built from the last step down (a bidirectional recurrence's
                # L = L(τ) + … + L(1)) belongs step by step to the L(t) it adds, not all to τ
                found = [i.step for i in n.inputs if i.step is not None] or \
                    [step[i] for i in n.inputs if step.get(i) is not None]
                step[n] = max(found) if found else None
        readers: dict[Node, set] = {}
        for n in self.order:
            for i in n.inputs:
                readers.setdefault(i, set()).add(step[n])
        for n in self.order:
            if step[n] is None and not n.inputs and n.op is not PARAM and \
                    len(readers.get(n, ())) == 1:
                step[n] = next(iter(readers[n]))
        return step

    def within(self, roots: list[Node], depth: int | None) -> set[Node]:
        if depth is None:
            return set(self.order)
        dist = {r: 0 for r in roots}
        queue = deque(roots)
        while queue:
            node = queue.popleft()
            if dist[node] < depth:
                for i in node.inputs:
                    if i not in dist:
                        dist[i] = dist[node] + 1
                        queue.append(i)
        return set(dist)

    def name_nodes(self, drawn: list[Node]) -> dict[Node, str]:
        """Ids of the ``drawn`` nodes, from names and steps (``h(3)``), meanings (``grad h(3)``),
        else the op and the position in creation order."""
        ids, taken = {}, set()
        position = {n: k for k, n in enumerate(self.order)}
        for node in drawn:
            k = position[node]
            m = self.meaning.get(node)
            if m is not None:
                base = "grad " + (L.node_id(m.title or m.of.op.name, m.of.step)
                                  if m.kind == "grad" else f"{m.title} {m.kind}")
            elif node.name is not None or node in self.alias:
                base = L.node_id(self.alias.get(node, node.name), node.step)
            else:
                base = f"{node.op.name}#{k}"
            if node in self.gset and m is None:
                base = "grad " + base
            ident, n = base, 1
            while ident in taken:
                n += 1
                ident = f"{base}#{n}"
            taken.add(ident)
            ids[node] = ident
        return ids

    def drawn(self, backward_ops: bool) -> list[Node]:
        """The nodes drawn: every shown forward node; of the gradient graph, every op, or the
        meaningful gradients (and the results asked for) only."""
        return [n for n in self.order if n in self.shown and
                (n not in self.gset or backward_ops or self.key_gradient(n))]

    def key_gradient(self, n: Node) -> bool:
        m = self.meaning.get(n)
        if n in self.results:
            return True
        if m is None or m.kind == "partial":
            return False
        return m.title is not None or m.kind == "seed"


def _collapse(g: _OpGraph, nodes: list[Node], collapse: int | None, budget: int | None
              ) -> list[int]:
    """The steps to hide in one box: the middle ones when ``collapse=k`` is given, or when the
    drawing would exceed ``budget`` nodes (with a warning; then as many steps at each end as
    fit the budget, at most ``KEPT``)."""
    steps = sorted({g.step[n] for n in nodes if g.step[n] is not None})
    if collapse is None and budget is not None and len(nodes) > budget and len(steps) > 3:
        per_step: dict[int, int] = {}
        for n in nodes:
            if g.step[n] is not None:
                per_step[g.step[n]] = per_step.get(g.step[n], 0) + 1
        fixed = len(nodes) - sum(per_step.values())
        k = 1
        while k < KEPT and 2 * (k + 1) + 1 < len(steps) and fixed + sum(
                per_step[s] for s in steps[:k + 1] + steps[-k - 1:]) <= budget:
            k += 1
        hidden = steps[k:len(steps) - k]
        warnings.warn(
            f"viz.graph: {len(nodes)} nodes exceed budget={budget}; steps {hidden[0]}–"
            f"{hidden[-1]} ({len(hidden)} steps) are drawn as one box (pass collapse=k to keep k "
            f"steps at each end, or budget=None to draw every node)", CollapsedStepsWarning,
            stacklevel=3)
        return hidden
    if collapse is not None and len(steps) > 2 * collapse + 1:
        return steps[collapse:len(steps) - collapse]
    return []


def graph(nodes: Node | Sequence[Node], *, backward: Sequence[Node] | Mapping[Node, Node] = (),
          backward_ops: bool = False, clusters: bool = True, collapse: int | None = None,
          budget: int | None = BUDGET, depth: int | None = None, forward: bool = True
          ) -> Drawing:
    """Every op node behind ``nodes`` (and behind ``backward``: gradients from ``unfold.grad``,
    as a list, or as a mapping ``{W: ∇W}`` to have them labelled ``∇W``), as a Digraph.

    ``clusters`` draws each time step as a column, in the order of time (``False``: dot places
    the nodes as it likes, in no particular order); ``collapse=k`` keeps only the first and
    last ``k`` steps (one box "× N" stands for the others), which happens by itself above
    ``budget`` nodes (``budget=None``: never); ``depth`` limits the drawing to that many edges
    below ``nodes``.
    Gradient nodes are drawn in red in a "backward" panel beside the forward graph: the
    meaningful ones only (``∇h(t)``, ``∇W(t)``, ``∇W``), or every op with
    ``backward_ops=True``. ``forward=False`` draws the backward panel alone (a 3-step LSTM's
    is about 1 000 × 800 px; beside its forward panel the drawing is three times as wide).
    A large backward panel that a laptop's screen would not show whole is drawn more compactly
    when that makes it smaller (``_fitted``).
    """
    return _fitted(lambda compact: _graph(
        nodes, backward=backward, backward_ops=backward_ops, clusters=clusters,
        collapse=collapse, budget=budget, depth=depth, forward=forward, compact=compact))


def _graph(nodes: Node | Sequence[Node], *, backward: Sequence[Node] | Mapping[Node, Node],
           backward_ops: bool, clusters: bool, collapse: int | None, budget: int | None,
           depth: int | None, forward: bool, compact: bool) -> tuple[Drawing, bool]:
    """``graph``'s drawing, the backward panel's rows ``compact`` (``_Columns``), and whether
    that panel is large (``COMPACT`` gradient nodes or more)."""
    roots = [nodes] if isinstance(nodes, Node) else list(nodes) if isinstance(
        nodes, (list, tuple)) else None
    if not roots or not all(isinstance(n, Node) for n in roots):
        raise UnfoldTypeError(f"viz.graph draws unfold nodes: give a node or a non-empty list "
                              f"of nodes, got {nodes!r}"[:300])
    if isinstance(backward, Mapping):
        results = dict(backward.items())
        given = {g: x for x, g in results.items()}
        backward = list(results.values())
    elif isinstance(backward, (list, tuple)):
        given, backward = {}, list(backward)
    else:
        raise UnfoldTypeError(f"backward must be a list of gradient nodes or a mapping "
                              f"{{node: gradient}}, got {type(backward).__name__}")
    for n in list(given) + backward + list(given.values()):
        if not isinstance(n, Node):
            raise UnfoldTypeError(f"backward must hold unfold nodes, got {type(n).__name__}")
    backward_ops = arguments.flag("viz.graph: backward_ops", backward_ops)
    clusters = arguments.flag("viz.graph: clusters", clusters)
    forward = arguments.flag("viz.graph: forward", forward)
    if not forward and not backward:
        raise UnfoldValueError("viz.graph(forward=False) draws the backward panel alone: give "
                               "the gradients with backward=")
    for name, value in (("collapse", collapse), ("budget", budget), ("depth", depth)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                                  value < (1 if name != "depth" else 0)):
            raise UnfoldValueError(f"{name} must be a positive integer or None, got {value!r}")
    g = _OpGraph(roots, backward, depth)
    g.results, g.every_op = set(backward), backward_ops
    copies: dict[Node, int] = {}
    for c in g.forward:
        if _is_copy(c):
            copies[c.inputs[0]] = copies.get(c.inputs[0], 0) + 1
    for r, x in given.items():                   # what the caller says a result is
        if r not in g.gset:
            continue
        inner = _origin(g, r, set())
        if inner is not r and inner in g.meaning and g.meaning[inner].of is x:
            # a copy of the panel's own ∇x (``uf.grad`` of a state: ∇h(t) summed down to its
            # shape): one node, not two with one label
            g.results.discard(r)
            g.results.add(inner)
            continue
        g.meaning[r] = Meaning(x, "total" if copies.get(x, 0) > 1 else "grad", g.alias.get(x),
                               g.index)
    draw = g.drawn(backward_ops)
    hidden = set(_collapse(g, draw, collapse, budget))
    visible = [n for n in draw if g.step[n] not in hidden]       # (the others: in the box)
    if len(visible) > MAX_NODES:
        raise UnfoldValueError(f"viz.graph: {len(visible):,} op nodes to draw, more than "
                               f"viz.ops_view.MAX_NODES = {MAX_NODES:,}: laying them out would "
                               f"take minutes to hours; keep a few steps at each end "
                               f"(collapse=3), give a budget (budget={BUDGET}), or a depth")
    g.rep = {} if backward_ops else _grouped(g, visible)
    g.ids = g.name_nodes(visible)
    dot = Drawing("ops", graph_attr=GRAPH, node_attr=NODE, edge_attr=EDGE)
    if hidden:
        lo, hi = min(hidden), max(hidden)
        dot.attr(label=L.plain(f"steps {lo}–{hi} ({len(hidden)} steps) collapsed into one box "
                               f"(collapse=k / budget= to change)"), labelloc="t",
                 fontsize="18")         # (read on a drawing some 4 000 px wide)
    drawn = set(draw)
    box = {part: f"[{'backward' if part else 'forward'} steps {min(hidden)}-{max(hidden)}]"
           for part in (False, True)} if hidden else {}
    edges = _edges(g, draw, drawn, hidden, box)
    # what stands where: each drawn id's panel (forward / backward) and column (its step)
    panel: dict[str, bool] = {}
    column: dict[str, float | None] = {}
    members: dict[str, Node] = {}
    copied = set(g.uses.values())
    shift, titles = _joined(g) if clusters and not hidden else ({}, {})

    def column_of(n: Node) -> float | None:
        return None if not clusters or g.step[n] is None else g.step[n] + shift.get(n, 0)
    for n in visible:
        if g.rep.get(n, n) is n and n not in copied:
            ident = g.ids[n]
            members[ident] = n
            panel[ident] = n in g.gset
            column[ident] = column_of(n)
    for part, ident in box.items():
        if any(panel[i] is part for i in panel) or not part:
            panel[ident], column[ident] = part, min(hidden) - 0.5
    refs = {g.ids[n] + REF: n for n in visible}
    for tail, head, _ in edges:
        if tail.endswith("[cut]") or tail in g.uses:
            panel[tail], column[tail] = panel[head], column[head]
        elif tail in refs:                       # in the backward panel, in its own step
            panel[tail] = True
            column[tail] = column_of(refs[tail])
    parts = [False] + ([True] if g.grads else [])
    if not forward:                      # the backward panel alone (its stand-ins included)
        panel = {i: True for i, part in panel.items() if part}
        column = {i: column[i] for i in panel}
        edges = [e for e in edges if e[0] in panel and e[1] in panel]
        parts = [True]
    placed = _Columns(panel, dict(column), edges, clusters, compact)
    placed.titles = titles
    if g.moved is not None:
        placed.tree = True
    ports = _head_ports(edges, placed.row, column, set(box.values()),
                        {i for i, part in panel.items() if part})
    g.many = {}                          # nodes entered at a row of ports (_head_ports)
    for (_, head, _), port in zip(edges, ports):
        if port.startswith(_MANY):
            g.many[head] = g.many.get(head, 0) + 1
    for part in parts:
        mine = [i for i in panel if panel[i] is part]
        framed = len(parts) > 1 or not forward
        with dot.subgraph(name=f"cluster_{'backward' if part else 'forward'}"
                          if framed else None) as frame:
            if framed:
                frame.attr(label=L.plain("backward (gradients)" if part else "forward"),
                           style="dashed", color="#999999", fontcolor="#666666",
                           fontsize=GRAPH["fontsize"])
            loose = [members[i] for i in mine if i in members and i in placed.loose]
            _nodes(frame, [members[i] for i in mine if i in members and i not in placed.loose],
                   g, part)
            for ident in mine:
                if ident in box.values():
                    frame.node(ident, f"<steps {min(hidden)}…{max(hidden)}<BR/>× {len(hidden)}>",
                               shape="box3d", style="", color="#888888",
                               tooltip=L.tooltip(f"{len(hidden)} steps not drawn"))
                elif ident.endswith("[cut]"):
                    frame.node(ident, "…", shape="plaintext",
                               tooltip=L.tooltip("inputs beyond depth"))
                elif ident in g.uses:
                    n = g.uses[ident]
                    label, attrs = _label(n)
                    frame.node(ident, label, **attrs, **(
                        {"fontcolor": "#999999", "fontsize": "8"} if part else {}),
                        tooltip=L.tooltip(f"{g.ids[n]}: a constant, drawn at each use{_at(g, n)}"))
                elif ident in refs:
                    n = refs[ident]
                    frame.node(ident, _label(n, g.alias.get(n))[0], shape="plaintext",
                               fontcolor="#999999", fontsize="8", height="0.15", tooltip=L.tooltip(
                                   f"{g.ids[n]}: the forward value{_at(g, n)}, read here by "
                                   f"the backward pass"))
            if loose:
                with frame.subgraph(name=f"cluster_params{'_b' if part else ''}") as row:
                    row.attr(label=L.plain(_LEGEND[g.moved is not None]), style="rounded",
                             color="#cccccc", fontcolor="#666666", fontsize="10")
                    _nodes(row, loose, g, part)
            if clusters:
                placed.scaffold(frame, part)
    for (tail, head, attrs), port in zip(edges, ports):
        dot.edge(tail, head, **attrs, **({"headport": port} if port else {}))
    placed.rank(dot)
    return dot, clusters and sum(1 for i in members if panel.get(i)) >= COMPACT


#: a laptop's screen (px at 96 dpi): a backward panel larger than this is tried compact
SCREEN = (1366, 900)
#: the gradient nodes from which a backward panel may not fit the screen (a 3-step LSTM's has
#: 39 and is 927 px wide; a two-layer or bidirectional LSTM's 70, 1 405–1 748 px)
COMPACT = 60
#: DOT source → the size of its backward panel (px), for the layouts already measured
_MEASURED: dict[str, tuple[float, float] | None] = {}


def _fitted(draw: Callable[[bool], tuple[Drawing, bool]]) -> Drawing:
    """``draw(False)``; when its backward panel is large and larger than ``SCREEN``, laid out,
    ``draw(True)`` (the two flows of a bidirectional net stacked, the sums over the steps in
    rows above them, ``_Columns``) if that panel overflows the screen less. Dot spreads such
    panels unevenly: either arrangement may be the wider one, by a few hundred px."""
    first, large = draw(False)
    size = _panel_size(first) if large else None
    if size is None or _overflow(size) <= 1:
        return first
    second, _ = draw(True)
    other = _panel_size(second)
    return second if other is not None and _overflow(other) < _overflow(size) else first


def _overflow(size: tuple[float, float]) -> float:
    """How many times the screen ``size`` needs, in its worse direction."""
    return max(size[0] / SCREEN[0], size[1] / SCREEN[1])


def _panel_size(g: Drawing) -> tuple[float, float] | None:
    """The size (px at 96 dpi) of ``g``'s backward panel laid out by dot (None without dot, or
    for a drawing too large to lay out)."""
    from .output import MAX_STATEMENTS, have_dot, layout
    if g.source not in _MEASURED:
        if not have_dot() or len(g.body) > MAX_STATEMENTS:
            return None
        if len(_MEASURED) > 256:
            _MEASURED.clear()
        bb = next((o["bb"] for o in layout(g, quiet=True).get("objects", [])
                   if o.get("name") == "cluster_backward"), None)
        x0, y0, x1, y1 = (float(v) for v in bb.split(",")) if bb else (0, 0, 0, 0)
        _MEASURED[g.source] = ((x1 - x0) * 96 / 72, (y1 - y0) * 96 / 72) if bb else None
    return _MEASURED[g.source]


def _joined(g: _OpGraph) -> tuple[dict[Node, int], dict[int, str]]:
    """In a graph joining recurrences (``bind``), each recurrence's steps in columns of their
    own, one recurrence after the other (the encoder's steps 1…n_x, then the decoder's: they
    shared the columns "step 1", "step 2"): the shift of each stepped node's column, and the
    columns' names ("encoder step 1"). Gradient nodes go with their forward nodes."""
    owner, names = owners(g.forward)
    if not owner:
        return {}, {}
    part: dict[Node, int] = {}
    for n in g.order:
        k = owner.get(n, part.get(n.adjoint) if n.adjoint is not None else None)
        if k is None:
            k = next((part[i] for i in n.inputs if i in part), None)
        if k is not None:
            part[n] = k
    last = [0] * len(names)
    for n, k in part.items():
        if g.step[n] is not None:
            last[k] = max(last[k], g.step[n])
    offset = [sum(last[:k]) for k in range(len(names))]
    titles = {offset[k] + t: f"{names[k]} step {t}" for k in range(len(names))
              for t in range(1, last[k] + 1)}
    return {n: offset[k] for n, k in part.items()}, titles


#: where the inputs of a node enter it, left to right, by their number; more than three: a
#: port each in a row along its lower side, ``_MANY`` 0, 1, … (at the side points ``w``, ``e``
#: the arrowheads met the edges leaving the node upwards — a GRU's ∇h(t) — and past seven
#: there were no compass points left)
_PORTS = {2: ("sw", "se"), 3: ("sw", "s", "se")}
_MANY = "in"


def _head_ports(edges: list[tuple[str, str, dict]], row: dict[str, int],
                column: dict[str, float | None], boxes: set[str], backward: set[str]
                ) -> list[str]:
    """A port for each edge's head: a node's inputs (from the rows below) enter it at points
    of their own along its lower side, in the order of its operands (``W(t) @ h(t)``: ``W(t)``
    left, ``h(t)`` right). Unported, they all aimed at the centre of a small op box from below
    and their arrowheads met at one point of it. (Edges within a row, or whose rows are not
    known, keep dot's choice: ports on flat edges make dot 2.43 lose the spline; so do the
    nodes outside the steps — the sums ∇W = Σ_t ∇W(t), read from every column, whose edges
    came in nearly flat and hooked round under the node to reach a lower corner.) More than
    three inputs (a GRU's ∇h(t), a memory network's, read by every head's gradient) enter at a
    row of ports along the node's lower side (``_MANY``: its label is a table, ``_nodes``).)
    In the ``backward`` panel, inputs from other columns take the ports on their side
    (ordered by column first; there the operands' order says nothing, while in the forward
    panel ``W(t) @ h(t−1)`` keeps ``W(t)`` left).
    The ``boxes`` of collapsed steps have no such table: their edges keep dot's choice."""
    into: dict[str, list[int]] = {}
    for k, (tail, head, attrs) in enumerate(edges):
        if tail in row and head in row and row[tail] < row[head] and \
                column.get(head) is not None and head not in boxes:
            into.setdefault(head, []).append(k)
    out = [""] * len(edges)
    for head, ks in into.items():
        # from the columns left to right, then in the order of the operands: an input from the
        # next step (∇h(1) reads ∇a(2)) entered at the lower left corner and hooked round under
        # the node to reach it
        if len(ks) in _PORTS and head in backward:
            ks = sorted(ks, key=lambda k: _column_or(column, edges[k][0], column[head]))
        ports = _PORTS.get(len(ks)) or [f"{_MANY}{i}:s" for i in range(len(ks))] * (len(ks) > 1)
        for k, port in zip(ks, ports):
            out[k] = port
    return out


def _column_or(column: dict[str, float | None], ident: str, default: float) -> float:
    found = column.get(ident)
    return default if found is None else found


#: the parameters' legend: of a recurrence, of a recursive net (copies by tree position)
_LEGEND = {False: "shared parameters, drawn once; W(t), dashed, is step t's copy of W",
           True: "shared parameters, drawn once; W(p), dashed, is tree node p's copy of W"}


class _Columns:
    """Time left to right: each step a column, in order, on rows computed here.

    Dot cannot be asked to order clusters (it drops a flat edge between two clusters), and left
    to itself it ordered step clusters as mincross found them (3, 2, 1 as often as 1, 2, 3;
    the dashed ties from each parameter to its copies in every step decided it). So there are
    no step clusters: the rows are computed here (``_rows``: one above the inputs — step t+1
    reads h(t), so each step stands higher than the one before, a staircase in which every
    edge runs up its rows and dot routes it plainly), each row is one ``rank=same``, and on
    each row an invisible point between two steps, joined by invisible flat edges to the nodes
    of the step left of it and of the step right of it (and to the next point), keeps step t
    left of step t+1. The points of one boundary, stacked by invisible edges in one ``group``,
    make a straight wall between the columns, so a step's nodes never stand under another's.
    Dot keeps flat edges' order only without its second crossing minimisation
    (``remincross=false``: with it, the walls' vertical edges let it swap nodes across them).
    Each step is named under its lowest row. Unstepped nodes (the seed ∇L = 1, the sums ∇W,
    the running loss) have rows but no column; parameters that nothing drawn reads (their
    copies W(t) are) stand in a row of their own under the forward panel. ``compact``
    (``_fitted``): in the backward panel, the two flows of a step stacked
    (``_stacked_flows``), the sums over the steps in rows above them (``_sums_on_top``).

    (Measured on a 3-step LSTM: the staircase has 45 crossings, the forward panel 1 888 × 1 891
    px at 96 dpi; every step on the same rows instead — edges between steps not ranking their
    ends — is half as high but its edges h(t) → step t+1 run down the whole column and back:
    317 crossings. The old clusters with ties: 219 crossings, 2 560 × 2 723 px.)"""

    def __init__(self, panel: dict[str, bool], column: dict[str, float | None],
                 edges: list[tuple[str, str, dict]], on: bool, compact: bool = False) -> None:
        self.panel, self.column, self.on = panel, column, on
        self.titles: dict[float, str] = {}      # a column's name, if not "step t"
        self.tree = False                       # columns are tree positions: "node p"
        linked = {i for t, h, _ in edges for i in (t, h)}
        self.loose = {i for i in panel if i not in linked and column[i] is None}
        ids = [i for i in panel if i not in self.loose]
        ranking = [(t, h) for t, h, a in edges if a.get("constraint") != "false"]
        self.row = _rows(ids, ranking) if on else {}
        if on and compact:              # (the backward panel's rows, ``COMPACT``)
            part = {i for i in ids if panel[i]}
            stacked = _stacked_flows(ids, ranking, self.row, column, part)
            if stacked:
                self.row = _rows(ids, ranking + stacked)
            self.row.update(_sums_on_top(ranking, self.row, column, part))

    def scaffold(self, frame: graphviz.Digraph, part: bool) -> None:
        """Inside ``frame``, the panel ``part``'s step names and the walls between its steps."""
        mine = [i for i in self.row if self.panel[i] is part and self.column[i] is not None]
        steps = sorted({self.column[i] for i in mine})
        if not steps:
            return
        side = "b" if part else "f"
        at: dict[int, dict[float, list[str]]] = {}
        for i in mine:
            at.setdefault(self.row[i], {}).setdefault(self.column[i], []).append(i)
        for t in steps:
            if t != int(t):                      # the collapsed steps' box names itself
                continue
            lowest = min(self.row[i] for i in mine if self.column[i] == t)
            name = f"[{side} step {int(t)}]"
            title = self.titles.get(t, f"{'node' if self.tree else 'step'} {int(t)}")
            frame.node(name, L.plain(title), shape="plaintext", fontsize="9",
                       fontcolor="#888888", height="0.2", tooltip=L.tooltip(title))
            for i in at[lowest][t]:              # (centred under the step's lowest row)
                frame.edge(name, i, style="invis")
            self.column[name], self.row[name] = t, lowest - 1
            at.setdefault(lowest - 1, {}).setdefault(t, []).append(name)
        # wall k (between steps k−1 and k) stands on the rows of those two steps only: in a
        # staircase each step spans a few rows, so the points grow linearly with τ (a point on
        # every row of every wall was τ² of them: 214 062 statements at τ = 100)
        span: dict[float, tuple[int, int]] = {}
        for r, by_step in at.items():
            for t in by_step:
                lo, hi = span.get(t, (r, r))
                span[t] = (min(lo, r), max(hi, r))
        walls: dict[int, list[int]] = {}        # row → the walls standing on it
        for k in range(1, len(steps)):
            (a, b), (c, d) = span[steps[k - 1]], span[steps[k]]
            for r in range(min(a, c), max(b, d) + 1):
                walls.setdefault(r, []).append(k)
        for r in sorted(walls):
            before = None
            for k in walls[r]:
                point = f"[{side} {r} {k}]"
                frame.node(point, shape="point", width="0", height="0", style="invis",
                           group=f"{side}{k}")
                self.row[point] = r
                for i in at.get(r, {}).get(steps[k - 1], []):
                    frame.edge(i, point, style="invis")
                for i in at.get(r, {}).get(steps[k], []):
                    frame.edge(point, i, style="invis")
                if before is not None:
                    frame.edge(before, point, style="invis")
                if r - 1 in walls and k in walls[r - 1]:     # the wall stands straight
                    frame.edge(f"[{side} {r - 1} {k}]", point, style="invis", weight="4")
                before = point
        for i in self.row:
            self.panel.setdefault(i, part)

    def rank(self, dot: graphviz.Digraph) -> None:
        """One ``rank=same`` per row of each panel; the loose parameters a row under all."""
        rows: dict[tuple[bool, int], list[str]] = {}
        for i, r in self.row.items():
            rows.setdefault((self.panel[i], r), []).append(i)
        if self.loose and self.row:
            rows[(False, min(self.row.values()) - 1)] = sorted(self.loose)
        for key in sorted(rows):
            with dot.subgraph() as same:
                same.attr(rank="same")
                for i in rows[key]:
                    same.node(i)


def _rows(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """A row for each id: one above the highest of its inputs along ``edges`` (longest path
    from the sources), except that a value computed from sources alone (``U x(t)``) stands
    just under its readers, and its sources just under it (not on the bottom row, far from
    where they are read)."""
    into: dict[str, list[str]] = {i: [] for i in ids}
    out: dict[str, list[str]] = {i: [] for i in ids}
    for t, h in edges:
        if t in into and h in into:
            into[h].append(t)
            out[t].append(h)
    row: dict[str, int] = {}
    waiting = {i: len(into[i]) for i in ids}
    ready = deque(i for i in ids if not waiting[i])
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        row[i] = max((row[t] + 1 for t in into[i]), default=0)
        for h in out[i]:
            waiting[h] -= 1
            if not waiting[h]:
                ready.append(h)
    for i in ids:                    # (on a cycle, which a graph of nodes cannot have)
        row.setdefault(i, 0)
    # a value computed from sources alone (U x(t)) stands just under its readers, its sources
    # just under it
    for i in reversed(order):
        if out[i] and all(not into[t] for t in into[i]):
            row[i] = min(row[h] for h in out[i]) - 1
    return row


def _flows(ids: list[str], edges: list[tuple[str, str]], column: dict[str, float | None]
           ) -> dict[str, set[str]]:
    """For each id in a column, the sides ("left", "right") of the other columns whose values
    reach it through nodes of its own column (in a bidirectional net's backward panel, the
    gradient of the forward states comes from the step after, right; that of the backward
    states from the step before, left)."""
    side: dict[str, set[str]] = {i: set() for i in ids}
    inside: dict[str, list[str]] = {i: [] for i in ids}
    for t, h in edges:
        a, b = column.get(t), column.get(h)
        if t not in side or h not in side or a is None or b is None:
            continue
        if a == b:
            inside[t].append(h)
        else:
            side[h].add("left" if a < b else "right")
    work = [i for i in ids if side[i]]
    while work:                                  # (down the edges inside each column)
        t = work.pop()
        for h in inside[t]:
            if not side[t] <= side[h]:
                side[h] |= side[t]
                work.append(h)
    return side


def _stacked_flows(ids: list[str], edges: list[tuple[str, str]], row: dict[str, int],
                   column: dict[str, float | None], part: set[str]) -> list[tuple[str, str]]:
    """Edges that rank (never drawn) the two flows of a column of ``part`` one above the other:
    where the gradients that come from the left and those from the right meet in one step
    (the middle step of a bidirectional net's backward panel, where its two staircases cross),
    they shared rows, side by side, and that column was twice as wide as the others (a 3-step
    bidirectional LSTM's panel 1 748 px). The flow that starts lower keeps its rows; the
    other stands above its values (beside its leaves). Not where the upper flow leads back
    into the lower one."""
    side = _flows([i for i in ids if i in part], edges, column)
    after: dict[str, list[str]] = {}
    for t, h in edges:
        after.setdefault(t, []).append(h)
    by_column: dict[float, dict[str, list[str]]] = {}
    for i, found in side.items():
        if len(found) == 1:
            by_column.setdefault(column[i], {}).setdefault(next(iter(found)), []).append(i)
    out: list[tuple[str, str]] = []
    for flows in by_column.values():
        if len(flows) < 2:
            continue
        low, high = sorted(flows.values(), key=lambda f: (min(row[i] for i in f), f[0]))
        if _reaches(high, set(low), after):
            continue
        # (the lower flow's leaves, its ∇W(t) that only the sums read, may stand beside the
        # upper flow's first values)
        inner = [a for a in low if any(column.get(h) == column[a] for h in after.get(a, ()))]
        out += [(a, b) for a in inner for b in high]
    return out


#: the sums over the steps that share one row above the steps (``_sums_on_top``)
SUMS_PER_ROW = 4


def _sums_on_top(edges: list[tuple[str, str]], row: dict[str, int],
                 column: dict[str, float | None], part: set[str]) -> dict[str, int]:
    """New rows for the sums over the steps of ``part`` (unstepped values that nothing drawn
    reads: ∇W = Σ_t ∇W(t)) that stand in the upper half of its rows: above every step, at
    most ``SUMS_PER_ROW`` a row. On the rows of the steps' values, dot stood them at either end
    of those rows, past the first and the last step (a bidirectional LSTM's sums of ∇U_gb(t),
    ∇W_gb(t), ∇b_gb(t) 110 pt left of step 1)."""
    read = {t for t, h in edges}
    stepped = [row[i] for i in part if column.get(i) is not None and i in row]
    if not stepped:
        return {}
    low, top = min(stepped), max(stepped)
    sums = sorted((h for h in {h for _, h in edges} if h in part and h in row and
                   column.get(h) is None and h not in read and 2 * row[h] > low + top),
                  key=lambda h: (row[h], h))
    return {h: top + 1 + k // SUMS_PER_ROW for k, h in enumerate(sums)}


def _reaches(starts: list[str], targets: set[str], after: dict[str, list[str]]) -> bool:
    """Whether a path along ``after`` (tail → heads) leads from one of ``starts`` to one of
    ``targets``."""
    seen, work = set(starts), list(starts)
    while work:
        for h in after.get(work.pop(), ()):
            if h in targets:
                return True
            if h not in seen:
                seen.add(h)
                work.append(h)
    return False


#: ops that only bring a gradient to another shape (summed over the batch, reshaped)
_RESHAPING = {"sum_like", "broadcast_like", "batch_sum", "reshape", "transpose", "alias"}


def _origin(g: _OpGraph, x: Node, drawn: set[Node]) -> Node:
    """The gradient node that gradient node ``x`` only reshapes (through undrawn sums over
    the batch, reshapes): ``∇W(1) = outer(sum_like(δ), h(0))`` comes from ``δ`` as
    ``∇U(1) = batch_outer(δ, x(1))`` does."""
    while x not in drawn and x.op.name in _RESHAPING:
        into = [i for i in x.inputs if i in g.gset]
        if len(into) != 1:
            break
        x = into[0]
    return x


def _grouped(g: _OpGraph, draw: list[Node]) -> dict[Node, Node]:
    """In the meaningful-gradients panel, the gradients of parameters computed from the same
    gradient node (∇W_f(t), ∇U_f(t), ∇b_f(t), all from the gradient of f's pre-activation)
    share one node, and so do their sums over the steps: node → the node that stands for it
    (only for those that share). The gradient nodes they read directly decide, not the drawn
    ones behind those: with the gates unnamed (no ∇f(t) drawn) the f, g and input gates'
    parameters all lie behind ∇s(t), and one node merged nine gradients."""
    drawn = set(draw)
    groups: dict[tuple, list[Node]] = {}
    for n in draw:
        m = g.meaning.get(n)
        if n in g.gset and m is not None and m.kind == "grad" and _is_copy(m.of) and \
                n not in g.results:
            key = (g.step[n], tuple(sorted(_origin(g, x, drawn).serial
                                           for x in n.inputs if x in g.gset)))
            groups.setdefault(key, []).append(n)
    rep: dict[Node, Node] = {n: members[0] for members in groups.values() for n in members}
    # the sums: together when their parameters' copies are together at every step drawn
    of_param: dict[Node, set[int]] = {}
    for n, r in rep.items():
        of_param.setdefault(g.meaning[n].of.inputs[0], set()).add(r.serial)
    totals: dict[tuple, list[Node]] = {}
    for n in draw:
        m = g.meaning.get(n)
        if n in g.gset and m is not None and m.kind == "total" and m.of in of_param:
            totals.setdefault(tuple(sorted(of_param[m.of])), []).append(n)
    rep.update({n: members[0] for members in totals.values() for n in members})
    sizes: dict[Node, int] = {}
    for r in rep.values():
        sizes[r] = sizes.get(r, 0) + 1
    return {n: r for n, r in rep.items() if sizes[r] > 1}


def _edges(g: _OpGraph, draw: list[Node], drawn: set[Node], hidden: set, box: dict
           ) -> list[tuple[str, str, dict]]:
    """The edges (tail, head, attributes), each from the node whose value it carries to the
    node that reads it; those into and out of a collapsed step go to its box, once. An edge
    from one step to another does not rank its ends (``constraint=false``): each step's
    column starts on the bottom row. A dummy copy ``W(t)`` gets no edge from ``W``: the
    parameters stand in a row of their own, and the legend says what a copy is."""
    done: set[tuple[str, str]] = set()
    out = []
    constant: dict[str, Node] = {}               # id + USE → the constant
    g.uses = {}                                  # a constant's copy for one reader → it

    def tail_of(i: Node, into_grad: bool) -> tuple[str, bool]:
        """Where an edge from ``i`` starts, and whether it reads a forward value."""
        reads_forward = (i in g.gset) != into_grad
        if g.step[i] in hidden:
            return box[i in g.gset], reads_forward
        if i.op is CONSTANT and i not in g.meaning:     # (its reader's own copy: below)
            constant[g.ids[i] + USE] = i
            return g.ids[i] + USE, reads_forward
        if reads_forward:
            return g.ids[i] + REF, True          # the forward value's stand-in, beside
        return g.ids[g.rep.get(i, i)], False
    tails = _TailsBelow(g, drawn, lambda i: tail_of(i, True))
    for n in draw:
        if _is_copy(n):
            continue
        into_grad = n in g.gset
        head = box[into_grad] if g.step[n] in hidden else g.ids[g.rep.get(n, n)]
        starts = tails.of(n) if into_grad else \
            [tail_of(i, False) for i in n.inputs if i in drawn]
        for tail, reads_forward in starts:
            if tail in constant:
                g.uses[f"{tail}{head}]"] = constant[tail]
                tail = f"{tail}{head}]"
            if tail == head or (tail, head) in done:
                continue
            done.add((tail, head))
            attrs: dict[str, str] = {}
            if reads_forward:                    # a forward value the gradient reads
                attrs = {"color": "#bbbbbb"}
            elif into_grad:
                attrs["color"] = BACKWARD
            out.append((tail, head, attrs))
        if any(i not in g.shown for i in n.inputs) and g.step[n] not in hidden:
            out.append((g.ids[n] + "[cut]", g.ids[n], {"style": "dotted"}))
    return out


class _TailsBelow:
    """For a gradient node, where its edges start: the ``tail`` (``tail(i)`` of each drawn
    node it reads, directly or through undrawn gradient nodes), in the order of
    the first such node. Remembered per undrawn node as the set of tails it leads to, so that
    the thousands of nodes behind a collapsed box count as the one box they start from (an
    LSTM written with its σ spelled out, τ = 1 000: each drawn gradient node reached ~600
    drawn ones, 10⁷ in all, and ``viz.graph`` took 26 s)."""

    def __init__(self, g: _OpGraph, drawn: set[Node], tail) -> None:
        self.g, self.drawn, self.tail = g, drawn, tail
        self.memo: dict[Node, dict] = {}

    def visible(self, i: Node) -> bool:
        return i in self.drawn and (i in self.g.gset or self.g.every_op)

    def reached(self, i: Node) -> dict:
        """tail → the smallest serial of the drawn nodes behind it, for reading ``i``."""
        if self.visible(i):
            return {self.tail(i): i.serial}
        if i not in self.g.gset:
            return {}
        stack = [(i, False)]                      # post-order, no recursion
        while stack:
            m, done = stack.pop()
            if m in self.memo:
                continue
            if done:
                out: dict = {}
                for j in m.inputs:
                    part = {self.tail(j): j.serial} if self.visible(j) else \
                        self.memo.get(j, {}) if j in self.g.gset else {}
                    for k, v in part.items():
                        if v < out.get(k, v + 1):
                            out[k] = v
                self.memo[m] = out
                continue
            stack.append((m, True))
            stack.extend((j, False) for j in m.inputs
                         if j in self.g.gset and j not in self.memo and not self.visible(j))
        return self.memo[i]

    def of(self, n: Node) -> list:
        found: dict = {}
        for i in n.inputs:
            for k, v in self.reached(i).items():
                if v < found.get(k, v + 1):
                    found[k] = v
        return sorted(found, key=found.__getitem__)


def _parameter(m: Meaning) -> Node:
    """The parameter a gradient of a copy ∇W(t) or a sum ∇W = Σ_t ∇W(t) is of."""
    return m.of.inputs[0] if _is_copy(m.of) else m.of


def _at(g: _OpGraph, n: Node) -> str:
    """The step a node is drawn in, for its tooltip."""
    return "" if g.step[n] is None else f"; step {g.step[n]}"


def _nodes(dot: graphviz.Digraph, members: list[Node], g: _OpGraph, backward: bool) -> None:
    many = getattr(g, "many", {})

    def put(n: Node, label: str, **attrs: str) -> None:
        ports = many.get(g.ids[n], 0)
        if ports:           # (a table: its lower side a row of ports, see _head_ports)
            label = L.ported(label, ports, _MANY)
            attrs = {**attrs, "shape": "box", "style": "rounded", "margin": "0"}
        dot.node(g.ids[n], label, **attrs)
    shared: dict[Node, list[Node]] = {}
    for n, r in g.rep.items():
        shared.setdefault(r, []).append(n)
    for together in shared.values():    # in the order the parameters were made, at each step
        together.sort(key=lambda k: _parameter(g.meaning[k]).serial)  # as in their sums
    for n in members:
        if g.rep.get(n, n) is not n:
            continue
        m = g.meaning.get(n)
        if n in shared:                          # several parameters' gradients, one node
            lines = "<BR/>".join(f"<B>{L.esc(g.meaning[k].label.partition(' = ')[0])}</B>"
                                 + (f" = {L.esc(g.meaning[k].label.partition(' = ')[2])}"
                                    if g.meaning[k].kind == "total" else "")
                                 for k in shared[n])
            tip = "; ".join(g.meaning[k].label for k in shared[n]) + _at(g, n)
            put(n, f"<{lines}>", shape="box", style="rounded", color=BACKWARD,
                fontcolor=BACKWARD, fontsize="9" if g.step[n] is not None else "10",
                tooltip=L.tooltip(tip))
            continue
        if backward and m is not None and m.kind != "partial":
            head, _, tail = m.label.partition(" = ")
            label = f"<<B>{L.esc(head)}</B>" + (f"<BR/>= {L.esc(tail)}" if tail else "") + ">"
            attrs = {"shape": "ellipse", "style": "", "margin": "0.02,0.01"}
            if m.kind == "grad" and _is_copy(m.of):        # ∇W(t): many of them, small
                attrs["fontsize"] = "9"
        elif backward and m is not None:
            label, attrs = "<+>", {}
        else:
            label, attrs = _label(n, g.alias.get(n))
        if backward:
            attrs = {**attrs, "color": BACKWARD, "fontcolor": BACKWARD}
        tip = f"{g.ids[n]}: {n.op.name}, shape {n.shape}, {n.dtype}" + _at(g, n)
        if m is not None:
            tip += f"; {m.label}" + (" so far" if m.kind == "partial" else "")
        elif n.adjoint is not None:        # (ids, not labels: those carry serial numbers)
            tip += f"; part of the backward step of {g.ids.get(n.adjoint, n.adjoint.op.name)}"
        put(n, label, tooltip=L.tooltip(tip), **attrs)
