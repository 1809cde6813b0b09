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

from unfold.errors import UnfoldValueError
from unfold.recurrence import Recurrence

from . import labels as L
from .book import Book, Edge, check_recurrence, contract
from .output import Drawing
from .views import _Drawer, new_graph

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


def parts(rec: Recurrence) -> tuple[Book, list[str], list[str], list[str], list[str]]:
    """(book, memories, write head, read head, controller) of ``rec``."""
    book = contract(rec)
    memories = [name for name, st in rec.states.items() if len(st.shape) >= 2 and
                name in book.variables]
    if not memories:
        raise UnfoldValueError(f"recurrence {rec.name!r} has no memory: viz.memory draws a "
                               f"state of two or more dimensions (cells × width) as its cells")
    mem = set(memories)
    states = {v.name for v in book.variables.values() if v.kind == "state"}
    named = {v.name for v in book.variables.values() if v.kind in ("named", "point")}
    write = _into(book, mem, named)
    read0 = {e.dst for e in book.edges if e.src in mem} - mem - write
    read = read0 | _into(book, read0, named - write)
    order = list(book.variables)
    controller = [n for n in order if n not in mem | write | read]
    return book, memories, [n for n in order if n in write], [n for n in order if n in read], \
        controller


def memory(rec: Recurrence, *, params: bool = True) -> Drawing:
    """Fig. 10.18: the task network of ``rec`` at the bottom, its memory cells on top, the write
    and read heads between, joined by thick arrows (see the module doc)."""
    check_recurrence(rec)
    book, memories, write, read, controller = parts(rec)
    sub = Book(book.name, {n: book.variables[n] for n in controller},
               [e for e in book.edges if e.src in controller and e.dst in controller])
    dot = new_graph(f"{rec.name} (memory)", nodesep="0.45")
    d = _Drawer(dot, sub, None, params=params, biases=False)
    ids = d.folded()
    d.close()
    top = max(d.ranks)
    cells = {}
    for m in memories:
        shape = rec.states[m].shape
        boxes = "".join(f'<TD WIDTH="26" HEIGHT="22" BGCOLOR="#f2f2f2"></TD>'
                        for _ in range(min(shape[0], 16)))
        more = '<TD BORDER="0">…</TD>' if shape[0] > 16 else ""
        label = (f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3"><TR>{boxes}{more}</TR>'
                 f'<TR><TD BORDER="0" COLSPAN="{min(shape[0], 16) + bool(more)}">memory cells '
                 f'{L.symbol(m)} ({shape[0]} × {" × ".join(map(str, shape[1:]))})</TD></TR>'
                 f"</TABLE>>")
        cells[m] = L.node_id(m) + "[memory]"
        dot.node(cells[m], label, shape="plaintext", fixedsize="false",
                 tooltip=L.tooltip(f"{m}: the memory, {shape[0]} cells of {shape[1:]}"))
    heads = {}
    for title, members in (("writing", write), ("reading", read)):
        if not members:
            continue
        prefix = _common_prefix(members)
        inner = ", ".join(L.symbol(n[len(prefix):]) for n in members)
        heads[title[:-3] if title == "reading" else "write"] = key = f"[{title}]"
        dot.node(key, f"<<B>{title}</B>"
                      f"<BR/>{inner}>", shape="box",
                 style="rounded", fixedsize="false", margin="0.15,0.06",
                 tooltip=L.tooltip(f"{title}: {', '.join(members)}"))
    with dot.subgraph() as row:                       # the memory on top, the heads under it
        row.attr(rank="max")
        for node in cells.values():
            row.node(node)
    with dot.subgraph() as row:
        row.attr(rank="same")
        for node in heads.values():
            row.node(node)
    d.invisible(d.ranks[top][0], next(iter(heads.values()), next(iter(cells.values()))))

    def join(edges: list[Edge], head: str | None = None, tail: str | None = None,
             **attrs: str) -> None:
        done = set()
        for e in edges:
            a = tail or ids.get(e.src) or cells.get(e.src)
            b = head or ids.get(e.dst) or cells.get(e.dst)
            if a is None or b is None or (a, b) in done or a == b:
                continue
            done.add((a, b))
            label = {"label": L.params(e.labels)} if params and e.labels and head is None \
                and tail is None else {}
            dot.edge(a, b, **label, **attrs,
                     tooltip=L.tooltip(f"{e.src} → {e.dst}" + (f", {e.delay} step(s) earlier"
                                                                if e.delay else "")))
    heads_of = {n: heads["write"] for n in write} | {n: heads["read"] for n in read}
    into_write = [e for e in book.edges if e.dst in write and e.src in controller]
    join(into_write, head=heads.get("write"), **THICK)
    for m in memories:
        join([e for e in book.edges if e.src in write and e.dst == m], tail=heads["write"],
             head=cells[m], **THICK) if "write" in heads else None
        # reading: drawn from the memory down into the read head
        drawn = set()
        for e in book.edges:
            if e.src == m and e.dst in heads_of and heads_of[e.dst] not in drawn:
                head = heads_of[e.dst]
                drawn.add(head)
                if head == heads.get("read"):
                    dot.edge(head, cells[m], dir="back", **THICK,
                             tooltip=L.tooltip(f"{m} → {e.dst}"))
                else:                                 # (content addressing reads M(t−1))
                    dot.edge(head, cells[m], dir="back", style="dashed", constraint="false",
                             tooltip=L.tooltip(f"{m} → {e.dst} (the cells as they were)"))
    if "read" in heads:
        for e in book.edges:
            if e.src in read and e.dst in controller:
                when = f", {e.delay} step(s) later" if e.delay else ""
                dot.edge(heads["read"], ids[e.dst], constraint="false",
                         **({"label": L.params(e.labels)} if params and e.labels else {}),
                         tooltip=L.tooltip(f"{e.src} → {e.dst}{when}"))
    return dot
