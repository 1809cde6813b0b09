"""Explicit memory drawn as the book draws it (section 10.12, Fig. 10.18).

``viz.memory(rec)`` draws a recurrence with a matrix-valued state — its memory, a row of cells —
the way Fig. 10.18 does: the recurrent *task network* (the controller) at the bottom, the memory
cells at the top, and between them the two ways the controller uses them, as thick arrows: the
values that *write* (the write head: where, what to erase, what to add) and the values that
*read* (the read head: where, and the vector read). Everything is read off the graph: the memory
is any state of two or more dimensions, the write head the named values on the way from the
controller into it, the read head those on the way from it back to the controller.
"""
from __future__ import annotations

from typing import Sequence

from unfold import arguments
from unfold.errors import UnfoldValueError
from unfold.recurrence import Recurrence

from . import labels as L
from .book import Book, Edge, check_recurrence, contract
from .output import Drawing
from .views import DELAY, _Drawer, new_graph

THICK = {"penwidth": "3.2", "arrowsize": "1.1", "color": "#333333"}


def _into(book: Book, targets: set[str], allowed: set[str]) -> set[str]:
    """The variables of ``allowed`` with a way (inside one step) into ``targets`` through
    ``allowed`` only."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for e in book.edges:
            if e.delay == 0 and e.src in allowed and e.src not in found and \
                    (e.dst in targets or e.dst in found):
                found.add(e.src)
                changed = True
    return found


def _common_prefix(names: list[str]) -> str:
    """The ``head.`` that all ``names`` start with (``write.k``, ``write.w``), or ``""``."""
    first = names[0].rpartition(".")[0]
    return f"{first}." if first and all(n.startswith(f"{first}.") for n in names) else ""


def parts(rec: Recurrence, hide: Sequence[str] = ()
          ) -> tuple[Book, list[str], list[str], list[str], list[str]]:
    """(book, memories, write head, read head, controller) of ``rec``."""
    book = contract(rec, hide)
    memories = [name for name, st in rec.states.items() if len(st.shape) >= 2 and
                name in book.variables]
    if not memories:
        raise UnfoldValueError(f"recurrence {rec.name!r} has no memory: viz.memory draws a "
                               f"state of two or more dimensions (cells × width) as its cells")
    mem = set(memories)
    named = {v.name for v in book.variables.values() if v.kind in ("named", "point")}
    write = _into(book, mem, named)
    read0 = {e.dst for e in book.edges if e.src in mem} - mem - write
    read = read0 | _into(book, read0, named - write)
    order = list(book.variables)
    controller = [n for n in order if n not in mem | write | read]
    return book, memories, [n for n in order if n in write], [n for n in order if n in read], \
        controller


def _cells(dot: Drawing, rec: Recurrence, m: str) -> str:
    """The node of memory ``m``: a row of cells (at most 16 drawn), named with its shape."""
    shape = rec.states[m].shape
    shown = min(shape[0], 16)
    # the cells in a table of their own, centred over the (wider) caption: in one table dot
    # shares the caption's extra width out among the cells' columns unevenly (the book draws
    # identical cells)
    boxes = "".join('<TD WIDTH="26" HEIGHT="22" BGCOLOR="#f2f2f2" FIXEDSIZE="TRUE"></TD>'
                    for _ in range(shown))
    more = '<TD BORDER="0">…</TD>' if shape[0] > 16 else ""
    label = (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0"><TR><TD>'
             f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3"><TR>{boxes}{more}</TR></TABLE>'
             f'</TD></TR><TR><TD>memory cells '
             f'{L.symbol(m)} ({shape[0]} × {" × ".join(map(str, shape[1:]))})</TD></TR>'
             f"</TABLE>>")
    node = L.node_id(m) + "[memory]"
    dot.node(node, label, shape="plaintext", fixedsize="false",
             tooltip=L.tooltip(f"{m}: the memory, {shape[0]} cells of {shape[1:]}"))
    return node


def _head(dot: Drawing, title: str, members: list[str]) -> str:
    """The box of a head (``writing``, ``reading``) listing the values it computes."""
    prefix = _common_prefix(members)
    inner = ", ".join(L.symbol(n[len(prefix):]) for n in members)
    node = f"[{title}]"
    dot.node(node, f"<<B>{title}</B><BR/>{inner}>", shape="box", style="rounded",
             fixedsize="false", margin="0.15,0.06",
             tooltip=L.tooltip(f"{title}: {', '.join(members)}"))
    return node


def _read_square(dot: Drawing, d: _Drawer, head: str, e: Edge, reader: str) -> str:
    """The one delay square through which the controller reads ``e.src`` of ``e.delay`` steps
    before — however many of its units read it (an LSTM's three gates and input, as
    ``viz.folded`` draws one square per state and delay) —, beside ``reader``, the first of
    them, on the left (the read head's side), as the controller's own loop has its square
    beside it on the right: never far from the loop it marks."""
    square = f"{reader}[delay {e.delay} read]"
    dot.node(square, **DELAY, **({"xlabel": str(e.delay)} if e.delay > 1 else {}),
             tooltip=L.tooltip(f"delay: {e.src} as it was {e.delay} step(s) earlier"))
    d.invisible(square, reader)
    d.ranks.setdefault(d.row[e.dst], []).append(square)
    dot.edge(head, square, arrowhead="none", weight="0",
             tooltip=L.tooltip(f"{e.src}, {e.delay} step(s) earlier"))
    return square


def memory(rec: Recurrence, *, params: bool = True, hide: Sequence[str] = ()) -> Drawing:
    """Fig. 10.18: the task network of ``rec`` at the bottom, its memory cells on top, the write
    and read heads between, joined by thick arrows (see the module doc). Every edge runs the
    way its data flows: the controller into both heads, the write head into the cells, the
    cells into the read head (and, dashed, into the write head: content addressing reads the
    cells as they were), the read head back into the controller — through the delay square
    where the controller reads the vector of the step before. ``hide`` as in ``viz.folded``
    (eq. 10.8's pre-activation ``a``: the controller's loop is then the folded 10.3's)."""
    check_recurrence(rec)
    params = arguments.flag("memory: params", params)
    book, memories, write, read, controller = parts(rec, hide)
    sub = Book(book.name, {n: book.variables[n] for n in controller},
               [e for e in book.edges if e.src in controller and e.dst in controller])
    dot = new_graph(f"{rec.name} (memory)", nodesep="0.45")
    d = _Drawer(dot, sub, None, params=params, biases=False)
    ids = d.folded()
    cells = {m: _cells(dot, rec, m) for m in memories}
    heads = {title: _head(dot, title, members)
             for title, members in (("reading", read), ("writing", write)) if members}
    head_of = {n: heads["writing"] for n in write} | {n: heads["reading"] for n in read}

    def tip(e: Edge, what: str = "") -> str:
        return L.tooltip(f"{e.src} → {e.dst}{what}")
    done: set[tuple[str, str]] = set()

    def once(a: str, b: str) -> bool:
        new = (a, b) not in done
        done.add((a, b))
        return new
    for e in book.edges:            # the controller into its heads (their keys read h(t))
        if e.dst in head_of and e.src in controller and once(ids[e.src], head_of[e.dst]):
            dot.edge(ids[e.src], head_of[e.dst], **THICK, tooltip=tip(e))
    for m in memories:
        for e in book.edges:
            if e.src in write and e.dst == m and once(head_of[e.src], cells[m]):
                dot.edge(head_of[e.src], cells[m], **THICK, tooltip=tip(e))
            elif e.src == m and e.dst in head_of and once(cells[m], head_of[e.dst]):
                if head_of[e.dst] == heads.get("reading"):
                    dot.edge(cells[m], head_of[e.dst], **THICK, constraint="false",
                             tooltip=tip(e))
                else:                    # content addressing reads M(t−1)
                    dot.edge(cells[m], head_of[e.dst], style="dashed", constraint="false",
                             tooltip=tip(e, " (the cells as they were)"))
    squares: dict[tuple[str, int], str] = {}
    for e in book.edges:            # the read head back into the controller
        if e.src not in read or e.dst not in controller:
            continue
        label = {"xlabel" if e.delay else "label": L.params(e.labels)} \
            if params and e.labels else {}
        if not e.delay:
            dot.edge(heads["reading"], ids[e.dst], constraint="false", **label, tooltip=tip(e))
            continue
        if (e.src, e.delay) not in squares:
            squares[e.src, e.delay] = _read_square(dot, d, heads["reading"], e, ids[e.dst])
        dot.edge(squares[e.src, e.delay], ids[e.dst], **label, constraint="false",
                 tooltip=tip(e, f", {e.delay} step(s) earlier"))
    d.close()
    with dot.subgraph() as row:                       # the memory on top, the heads under it
        row.attr(rank="max")
        for node in cells.values():
            row.node(node)
    with dot.subgraph() as row:
        row.attr(rank="same")
        for node in heads.values():
            row.node(node)
    d.invisible(d.ranks[max(d.ranks)][0], next(iter(heads.values()),
                                               next(iter(cells.values()))))
    return dot
