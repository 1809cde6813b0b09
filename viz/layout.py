"""Where the book view puts things: one row per variable (bottom to top), one column per step.

``rows(book)`` stacks the variables as chapter 10 does: inputs at the bottom, then hidden states,
outputs and losses, and the targets above the losses they feed. Each state has a row of its own
(a bidirectional RNN's ``h`` and ``g`` never share one). Other variables of the same depth share
a row in folded views (an LSTM's gates side by side) and stack in unfolded ones.

``axis(steps, window)`` is the time axis: concrete steps ``1 … τ``, or a generic window such as
``("...", "t-1", "t", "t+1", "...")`` where ``...`` at an end is the book's ellipsis node
``h(…)`` and ``...`` inside stands for the elided middle of the sequence (Fig. 10.5).

``place(book, columns)`` decides which variable is drawn in which column and which edges join
them: everything a drawn variable reads, starting from the states and whatever else is read at a
later step (at every step), the variables nothing reads (at every step), and the losses (at their
steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .book import Book, Edge

ELLIPSIS = "..."
#: the book's generic window (Figs. 10.2–10.4)
GENERIC = (ELLIPSIS, "t-1", "t", "t+1", ELLIPSIS)


def rows(book: Book, shared: bool = True) -> dict[str, int]:
    """Row of each variable, 0 at the bottom, with no empty row. With ``shared`` variables of
    the same depth share a row (an LSTM's gates side by side, in a folded view); without, every
    variable has a row of its own, in the same order (so that the cells of one step of an
    unfolded view stand in one column)."""
    row: dict[str, int] = {}
    exclusive: set[int] = set()           # rows held by a state
    occupied: set[int] = set()
    names = [v for v in book.variables.values() if v.kind != "target"]
    for var in names:
        srcs = [e.src for e in book.inputs_of(var.name)
                if e.delay == 0 and e.src in row]
        r = 0 if var.kind in ("input", "context") else max((row[s] + 1 for s in srcs), default=1)
        while r in exclusive or (var.kind == "state" and r in occupied):
            r += 1
        row[var.name] = r
        occupied.add(r)
        if var.kind == "state":
            exclusive.add(r)
    top = max(row.values(), default=-1)
    for var in book.variables.values():
        if var.kind == "target":
            fed = [row[e.dst] for e in book.users_of(var.name) if e.delay == 0 and e.dst in row]
            row[var.name] = max(fed) + 1 if fed else top + 1
    order = list(book.variables)
    if not shared:
        stacked = sorted(row, key=lambda name: (row[name], order.index(name)))
        return {name: i for i, name in enumerate(stacked)}
    used = sorted(set(row.values()))
    return {name: used.index(r) for name, r in row.items()}


@dataclass(frozen=True)
class Column:
    """One column of an unfolded drawing.

    ``kind`` is ``"step"`` (a step of the sequence), ``"gap"`` (the elided middle, drawn with
    ellipses: states and what feeds them only) or ``"end"`` (an ellipsis at either end, holding
    only the far ends of edges that cross it)."""

    index: int
    step: str                      # the superscript: "3", "t-1", "..."
    kind: str

    @property
    def key(self) -> str:
        """The column's part of a node id: the step, or ``...`` and the index for ellipses."""
        return f"{ELLIPSIS}{self.index}" if self.step == ELLIPSIS else self.step


def axis(steps: int | None = None, window: Sequence[str] | None = None) -> list[Column]:
    """The time axis: ``steps=τ`` for ``1 … τ``; ``window`` for symbolic steps with ellipses."""
    if steps is not None and window is not None:
        raise ValueError("give either steps (concrete steps 1…τ) or window (symbolic steps), "
                         "not both")
    if steps is not None:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return [Column(i, str(i + 1), "step") for i in range(steps)]
    window = [str(s).replace("…", ELLIPSIS) for s in (GENERIC if window is None else window)]
    if not any(s != ELLIPSIS for s in window):
        raise ValueError(f"the window {window!r} has no step; e.g. ('...', 't-1', 't', 't+1', "
                         f"'...')")
    last = len(window) - 1
    return [Column(i, s, "step" if s != ELLIPSIS else "end" if i in (0, last) else "gap")
            for i, s in enumerate(window)]


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
    if steps is None or not all(c.step.isdigit() for c in columns if c.kind == "step"):
        return real
    wanted = {str(t) for t in steps}
    return [c.index for c in columns if c.kind == "step" and c.step in wanted]


def place(book: Book, columns: list[Column]) -> Placement:
    """Which variables are drawn in which column, and the edges between them."""
    out = Placement(columns)
    real = [c.index for c in columns if c.kind != "end"]
    first_end = columns[0].kind == "end"
    last_end = columns[-1].kind == "end"

    def source_column(edge: Edge, c: int) -> int | None:
        """The column ``edge.src`` is read from at column ``c`` (None: before the sequence)."""
        s = c + edge.delay if edge.backward else c - edge.delay
        if s < real[0]:
            return 0 if first_end else None
        if s > real[-1]:
            return len(columns) - 1 if last_end else None
        return s

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
            s = source_column(e, c)
            if s is not None:
                work.append((e.src, s))
                out.edges.append(((e.src, s), cell, e))
    # delayed edges leaving the window end in an ellipsis on that side
    for name, c in sorted(drawn):
        if columns[c].kind == "end":
            continue
        for e in book.users_of(name):
            if e.delay == 0:
                continue
            d = c - e.delay if e.backward else c + e.delay
            end = 0 if d < real[0] and first_end else \
                len(columns) - 1 if d > real[-1] and last_end else None
            if end is not None:
                drawn.add((e.dst, end))
                out.edges.append(((name, c), (e.dst, end), e))
    order = {name: i for i, name in enumerate(book.variables)}
    out.cells = sorted(drawn, key=lambda cell: (cell[1], order[cell[0]]))
    out.contexts = sorted(contexts, key=order.__getitem__)
    out.edges.sort(key=lambda edge: (edge[1][1], order[edge[1][0]], order[edge[0][0]],
                                     -1 if edge[0][1] is None else edge[0][1]))
    return out
