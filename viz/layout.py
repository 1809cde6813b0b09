"""Where the book view puts things: one row per variable (bottom to top), one column per step.

``rows(book)`` stacks the variables as chapter 10 does: inputs at the bottom, then hidden states,
outputs and losses, and the targets above the losses they feed. Each state has a row of its own
(a bidirectional RNN's ``h`` and ``g`` never share one). Other variables of the same depth share
a row in folded views (an LSTM's gates side by side) and stack in unfolded ones — except the
read-outs (``readouts``: two outputs of one state, their losses and targets), side by side in
every view.

``axis(steps, window)`` is the time axis: concrete steps ``1 … τ`` (with ``max_steps``, a long
sequence keeps its first and last steps and one column of ellipses for the middle), or a generic
window such as ``("...", "t-1", "t", "t+1", "...")`` where ``...`` at an end is the book's
ellipsis node ``h(…)`` and ``...`` inside stands for the elided middle of the sequence (Fig. 10.5).

``place(book, columns)`` decides which variable is drawn in which column and which edges join
them: everything a drawn variable reads, starting from the states and whatever else is read at a
later step (at every step), the variables nothing reads (at every step), and the losses (at their
steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from unfold import arguments
from unfold.errors import UnfoldTypeError, UnfoldValueError

from .book import Book, Edge

ELLIPSIS = "..."
#: the book's generic window (Figs. 10.2–10.4)
GENERIC = (ELLIPSIS, "t-1", "t", "t+1", ELLIPSIS)


def rows(book: Book, shared: bool | set[str] = True) -> dict[str, int]:
    """Row of each variable, 0 at the bottom, with no empty row. With ``shared`` variables of
    the same depth share a row (an LSTM's gates side by side, in a folded view); without, every
    variable has a row of its own, in the same order (so that the cells of one step of an
    unfolded view stand in one column), but the read-outs (``readouts``) of one depth and kind
    share theirs, as folded (two outputs of h side by side, but an output below a loss that
    reads h too); with a set of names, those share their rows too (the gates inside an open
    cell)."""
    names = [v for v in book.variables.values() if v.kind != "target"]
    later = _backward_only(book)
    forward = [v.name for v in names if v.kind == "state" and not v.backward]

    def stack(floor: dict[str, int]) -> dict[str, int]:
        row: dict[str, int] = {}
        exclusive: set[int] = set()           # rows held by a state
        occupied: set[int] = set()
        for var in names:
            srcs = [e.src for e in book.inputs_of(var.name)
                    if e.delay == 0 and e.src in row]
            r = 0 if var.kind in ("input", "context") else \
                max((row[s] + 1 for s in srcs), default=1)
            if var.name in later or (var.kind == "state" and var.backward and forward):
                # above the forward chain (see _backward_only), whatever order the updates
                # were written in (Fig. 10.11: h's row under g's)
                r = max([r] + [row.get(f, floor.get(f, -1)) + 1 for f in forward])
            while r in exclusive or (var.kind == "state" and r in occupied):
                r += 1
            row[var.name] = r
            occupied.add(r)
            if var.kind == "state":
                exclusive.add(r)
        return row
    row = stack({})
    if later or any(v.kind == "state" and v.backward for v in names):
        row = stack(row)          # (the forward states' rows known before the backward ones)
    top = max(row.values(), default=-1)
    for var in book.variables.values():
        if var.kind == "target":
            fed = [row[e.dst] for e in book.users_of(var.name) if e.delay == 0 and e.dst in row]
            row[var.name] = max(fed) + 1 if fed else top + 1
    order = {name: i for i, name in enumerate(book.variables)}
    if shared is not True:
        inner, out_of = shared or set(), readouts(book)

        def key(name: str) -> tuple | str:       # (one row for each key)
            return (row[name], "shared") if name in inner else \
                (row[name], book.variables[name].kind) if name in out_of else name
        first: dict = {}
        for name in sorted(row, key=order.__getitem__):
            first.setdefault(key(name), order[name])
        stacked = sorted(row, key=lambda n: (row[n], n not in inner, first[key(n)], order[n]))
        out, last, k = {}, None, -1
        for name in stacked:
            if key(name) != last:
                k, last = k + 1, key(name)
            out[name] = k
        return out
    used = sorted(set(row.values()))
    return {name: used.index(r) for name, r in row.items()}


def readouts(book: Book) -> set[str]:
    """The values read out of the recurrence: those from which no path of the same step leads
    to a state and that no later step reads (outputs, losses, their targets; not Fig. 10.4's
    o, fed to h(t+1), nor a gate). Unfolded, they share their rows as folded (o = V h beside
    p = P h, L beside M, y above L and z above M): stacked, p stood in a row above o, as a
    layer on top of it, and each target went up past the other's loss."""
    reads: dict[str, set[str]] = {}
    for e in book.edges:
        if not e.delay:
            reads.setdefault(e.dst, set()).add(e.src)
    inside = {n for n, v in book.variables.items() if v.kind in ("input", "context", "state")
              or any(e.delay for e in book.users_of(n))}
    work = list(inside)
    while work:                              # (back from them: what feeds them)
        for src in reads.get(work.pop(), ()):
            if src not in inside:
                inside.add(src)
                work.append(src)
    return set(book.variables) - inside


def _backward_only(book: Book) -> set[str]:
    """When a step has states running both ways (a bidirectional RNN's h and g), the values
    computed on the way to the backward states alone (g's gates): they stand above every
    forward state, so that each chain keeps its own band of rows — the forward cell below, the
    backward one above — instead of g's gates sharing the forward gates' row, their edges up to
    g running past h and crossing h's."""
    states = [v for v in book.variables.values() if v.kind == "state"]
    if not (any(v.backward for v in states) and any(not v.backward for v in states)):
        return set()
    feeds: dict[str, set[str]] = {}
    for e in book.edges:
        if not e.delay:
            feeds.setdefault(e.src, set()).add(e.dst)
    kinds = {v.name: v for v in states}
    out = set()
    for v in book.variables.values():
        if v.kind not in ("named", "point", "cell", "unit", "product", "complement", "difference"):
            continue    # (a compact cell; the last four: viz.cell's, a backward cell's input unit)
        reached, stack = set(), [v.name]
        while stack:
            for d in feeds.get(stack.pop(), ()):
                if d not in reached:
                    reached.add(d)
                    if d not in kinds:
                        stack.append(d)
        hit = [kinds[d] for d in reached if d in kinds]
        if hit and all(s.backward for s in hit):
            out.add(v.name)
    return out


@dataclass(frozen=True)
class Column:
    """One column of an unfolded drawing.

    ``kind`` is ``"step"`` (a step of the sequence), ``"gap"`` (the elided middle, drawn with
    ellipses: states and what feeds them only) or ``"end"`` (an ellipsis at either end, holding
    only the far ends of edges that cross it). ``t`` is the step number of a concrete step, and
    ``span`` the first and last steps a concrete gap stands for."""

    index: int
    step: str                      # the superscript: "3", "t-1", "..."
    kind: str
    t: int | None = None
    span: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        """The column's part of a node id: the step, or ``...`` and the index for ellipses."""
        return f"{ELLIPSIS}{self.index}" if self.step == ELLIPSIS else self.step


#: the most columns (time steps, or a tree's leaves) a drawing is built with: ``dot`` could not
#: lay out a larger one in reasonable time anyway (see ``viz.output.MAX_STATEMENTS``)
MAX_COLUMNS = 1000


def check_columns(what: str, count: int, fix: str) -> None:
    """Refuse, before any work, a drawing of more than ``MAX_COLUMNS`` columns."""
    if count > MAX_COLUMNS:
        raise UnfoldValueError(f"{what}: {count:,} columns to draw, more than "
                               f"viz.layout.MAX_COLUMNS = {MAX_COLUMNS:,} — dot would take "
                               f"hours to lay them out; {fix} (or raise "
                               f"viz.layout.MAX_COLUMNS)")


def axis(steps: int | None = None, window: Sequence[str] | None = None,
         max_steps: int | None = None) -> list[Column]:
    """The time axis: ``steps=τ`` for ``1 … τ`` (more than ``max_steps`` steps keep the first and
    last ``max_steps // 2`` and one ellipsis column between); ``window`` for symbolic steps with
    ellipses."""
    if steps is not None and window is not None:
        raise UnfoldValueError("give either steps (concrete steps 1…τ) or window (symbolic "
                               "steps), not both")
    if steps is not None:
        steps = arguments.positive_int("steps", steps)
        if max_steps is not None:
            max_steps = arguments.positive_int("max_steps (or None)", max_steps, minimum=2)
        if max_steps is None or steps <= max_steps:
            check_columns("steps", steps, "pass max_steps=k to draw k of them (the middle ones "
                                          "elided), or fewer steps")
            return [Column(i, str(i + 1), "step", i + 1) for i in range(steps)]
        check_columns("max_steps", max_steps, "give a smaller max_steps")
        k = max_steps // 2
        head = [Column(i, str(i + 1), "step", i + 1) for i in range(k)]
        gap = Column(k, ELLIPSIS, "gap", span=(k + 1, steps - k))
        tail = [Column(k + 1 + i, str(t), "step", t) for i, t in
                enumerate(range(steps - k + 1, steps + 1))]
        return head + [gap] + tail
    if isinstance(window, (str, bytes)) or (window is not None and
                                            not isinstance(window, Sequence)):
        raise UnfoldTypeError(f"window must be a sequence of steps such as ('...', 't-1', 't', "
                              f"'t+1', '...'), got {window!r}")
    if window is not None:
        check_columns("window", len(window), "give a shorter window")
    window = [str(s).replace("…", ELLIPSIS) for s in (GENERIC if window is None else window)]
    if not any(s != ELLIPSIS for s in window):
        raise UnfoldValueError(f"the window {window!r} has no step; e.g. ('...', 't-1', 't', "
                               f"'t+1', '...')")
    last = len(window) - 1
    return [Column(i, s, "step" if s != ELLIPSIS else "end" if i in (0, last) else "gap")
            for i, s in enumerate(window)]


def shown_steps(columns: list[Column]) -> str:
    """Which steps a concrete axis shows, in words: ``steps 1–6 and 95–100 of τ = 100``."""
    concrete = [c.t for c in columns if c.t is not None]
    gaps = [c.span for c in columns if c.span is not None]
    if not concrete:
        return ""
    tau = max(concrete + [g[1] for g in gaps])
    if not gaps:
        return f"τ = {tau}, all steps shown"
    before = [t for t in concrete if t < gaps[0][0]]
    after = [t for t in concrete if t > gaps[0][1]]
    return (f"τ = {tau}: steps {before[0]}–{before[-1]} and {after[0]}–{after[-1]} shown, "
            f"{gaps[0][0]}–{gaps[0][1]} elided (…)")


Cell = tuple[str, int]        # (variable, column index)


@dataclass
class Placement:
    """What an unfolded drawing holds: cells (variable, column), context variables (drawn once)
    and edges between cells (or from a context, whose column is ``None``)."""

    columns: list[Column]
    cells: list[Cell] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    edges: list[tuple[tuple[str, int | None], Cell, Edge]] = field(default_factory=list)


def _loss_columns(steps, columns: list[Column]) -> list[int]:
    real = [c.index for c in columns if c.kind == "step"]
    if steps == "last":
        return real[-1:]
    if steps == "first":
        return real[:1]
    if steps is None or not all(c.t is not None for c in columns if c.kind == "step"):
        return real
    wanted = set(steps)
    return [c.index for c in columns if c.kind == "step" and c.t in wanted]


def _merge_ellipsis_edges(edges: list, columns: list[Column]) -> list:
    """One edge between a cell and an ellipsis: ``h(…)`` stands for several steps, so ``W``
    from ``h(t−2)`` and ``W_d`` from ``h(t−3)`` into ``h(t−1)`` are one edge "W, W_d", and so
    are ``W`` and ``W_d`` from ``h(t+1)`` into the ``h(…)`` after it (two would run side by
    side, each label in the other's way)."""
    hides = lambda c: c is not None and columns[c].step == ELLIPSIS
    merged: dict[tuple, tuple] = {}
    for k, (src, dst, e) in enumerate(edges):
        ellipsis = hides(src[1]) or hides(dst[1])
        key = (src, dst) if ellipsis else k
        if key in merged:
            old = merged[key][2]
            e = Edge(e.src, e.dst, min(old.delay, e.delay), e.backward,
                     old.labels + tuple(n for n in e.labels if n not in old.labels),
                     old.biases + tuple(n for n in e.biases if n not in old.biases))
        merged[key] = (src, dst, e)
    return list(merged.values())


def place(book: Book, columns: list[Column]) -> Placement:
    """Which variables are drawn in which column, and the edges between them.

    An edge that leaves the window at its right end ends in an ellipsis node: that of its
    destination when it is a state, else that of the state it leaves (unlabelled), so that only
    state rows end in ellipses (an LSTM's gates never get one)."""
    out = Placement(columns)
    real = [c.index for c in columns if c.kind != "end"]
    first_end = columns[0].kind == "end"
    last_end = columns[-1].kind == "end"
    by_step = {c.t: c.index for c in columns if c.t is not None}
    gaps = [c for c in columns if c.span is not None]

    def source_column(edge: Edge, c: int) -> int | None:
        """The column ``edge.src`` is read from at column ``c`` (None: before the sequence)."""
        t = columns[c].t
        if t is not None:                       # concrete steps: by step number
            s = t + edge.delay if edge.backward else t - edge.delay
            if s in by_step:
                return by_step[s]
            return next((g.index for g in gaps if g.span[0] <= s <= g.span[1]), None)
        s = c + edge.delay if edge.backward else c - edge.delay
        if s < real[0]:
            return 0 if first_end else None
        if s > real[-1]:
            return len(columns) - 1 if last_end else None
        return s

    def source_columns(edge: Edge, c: int) -> list[int]:
        """The columns ``edge.src`` is read from at column ``c``: a concrete gap stands for
        every step of its span, so a delayed edge into it comes from each shown step it
        reads (``W h(t−2)`` into the gap ``5–8``: from ``h(3)`` and ``h(4)``)."""
        span = columns[c].span
        if span is None or not edge.delay:
            s = source_column(edge, c)
            return [] if s is None else [s]
        d = edge.delay
        ends = range(max(span[0], span[1] - d + 1), span[1] + 1) if edge.backward else \
            range(span[0], min(span[1], span[0] + d - 1) + 1)
        found = {by_step[s] for t in ends
                 if (s := t + d if edge.backward else t - d) in by_step}
        return sorted(found)

    sinks: list[Cell] = []
    leaves = ("input", "context", "target")
    for var in book.variables.values():
        carried = any(e.delay for e in book.users_of(var.name)) and var.kind not in leaves
        if var.kind == "state" or carried:       # what carries the recurrence: every step
            sinks += [(var.name, c) for c in real]
        elif var.kind == "loss":
            sinks += [(var.name, c) for c in _loss_columns(var.steps, columns)]
        elif not book.users_of(var.name) and var.kind not in leaves:
            sinks += [(var.name, c.index) for c in columns if c.kind == "step"]

    drawn: set[Cell] = set()
    contexts: set[str] = set()
    work = list(sinks)
    while work:
        cell = work.pop()
        if cell in drawn:
            continue
        drawn.add(cell)
        name, c = cell
        if columns[c].kind == "end":
            continue                          # an ellipsis: nothing drawn behind it
        for e in book.inputs_of(name):
            if book.variables[e.src].kind == "context":
                contexts.add(e.src)
                out.edges.append(((e.src, None), cell, e))
                continue
            for s in source_columns(e, c):
                work.append((e.src, s))
                out.edges.append(((e.src, s), cell, e))
    # delayed edges leaving the window end in an ellipsis on that side
    for name, c in sorted(drawn):
        if columns[c].kind == "end":
            continue
        # (edges into a state first: the one into its own ellipsis keeps its parameters)
        for e in sorted(book.users_of(name), key=lambda e: book.variables[e.dst].kind != "state"):
            if e.delay == 0:
                continue
            d = c - e.delay if e.backward else c + e.delay
            end = 0 if d < real[0] and first_end else \
                len(columns) - 1 if d > real[-1] and last_end else None
            if end is None:
                continue
            if book.variables[e.dst].kind != "state":
                # into its own ellipsis, with the parameters it enters the next step through
                # when it enters through one edge (Fig. 10.4's o(t+1) –W→ o(…), as o(…) –W→
                # h(t−1) at the other end); through several (a gated cell's), unlabelled
                one = sum(1 for u in book.users_of(name) if u.delay) == 1
                e = Edge(name, name, e.delay, e.backward, e.labels if one else (),
                         e.biases if one else ())
            drawn.add((e.dst, end))
            out.edges.append(((name, c), (e.dst, end), e))
    out.edges = _merge_ellipsis_edges(out.edges, columns)
    order = {name: i for i, name in enumerate(book.variables)}
    out.cells = sorted(drawn, key=lambda cell: (cell[1], order[cell[0]]))
    out.contexts = sorted(contexts, key=order.__getitem__)
    out.edges.sort(key=lambda edge: (edge[1][1], order[edge[1][0]], order[edge[0][0]],
                                     -1 if edge[0][1] is None else edge[0][1]))
    return out
