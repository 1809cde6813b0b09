"""Gates: what an unnamed σ unit of a step does, and the letter the book gives it.

A gate is a sigmoid unit whose value multiplies another on the way to a state update (Fig.
10.16's forget, input and output gates, a GRU's update and reset gates). ``role(book, unit)``
reads what a unit gates off the products of a detailed contraction (``contract(rec,
detail=True)``: the element-wise products and the units kept as variables). The book view names
the gates that the user left unnamed by their role, with the chapter's letters (eqs. 10.40–10.46:
``f`` forget, ``g`` input, ``q`` output, ``u`` update, ``r`` reset), so that a gated cell written
inline with ``uf.sigmoid`` draws as the one whose gates are named with ``rec.name_node``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:                       # book.py imports this module
    from .book import Book, Edge

#: the chapter's letter for each gate (eqs. 10.40–10.46)
LETTERS = {"forget gate": "f", "input gate": "g", "output gate": "q", "update gate": "u",
           "reset gate": "r", "update and reset gates": "f"}
#: (one σ doing a GRU's u's and r's work: the minimal gated unit's forget gate, Zhou et al.)
#: the book's order of a cell's units, left to right: Fig. 10.16's input, input gate, forget
#: gate and output gate; a GRU's update gate before its reset gate (eqs. 10.45–10.46)
ORDER = ("input", "input gate", "forget gate", "update gate", "update and reset gates",
         "reset gate", "output gate")


#: the kinds of a detailed book's arithmetic nodes, which stand for the values they are taken
#: of: ``1 − u`` for u, ``h~ − h`` for both
TAKEN_OF = ("complement", "difference")


def role(book: "Book", gate: str) -> str:
    """What an unnamed σ unit does, read off the products it takes part in (``uses``): it
    multiplies a state's past into that state ("forget gate"), the cell's input into the state
    ("input gate"), the state's new value ("output gate"), or the state's past on its way into
    another unit ("reset gate"); "" when it does none of these. A gate that lets both the past
    and the input in, one of them through ``1 − gate``, is a GRU's "update gate" (eq. 10.45),
    but in a cell that also has an output gate it is an LSTM's coupled gate (Greff et al.'s
    CIFG), named by what it multiplies itself: the input gate of ``(1 − i) s + i g`` (its
    forget gate is ``1 − i``), the forget gate of ``f s + (1 − f) g``."""
    found = uses(book, gate)
    roles = {r for r, _ in found}
    if {"forget", "input", "reset"} <= roles:       # one σ sliced into a GRU's two gates
        return "update and reset gates"
    if {"forget", "input"} <= roles:
        direct = {r for r, itself in found if itself} & {"forget", "input"}
        if len(direct) == 1 and _has_output_gate(book):
            return f"{direct.pop()} gate"
        return "update gate"
    return next((f"{r} gate" for r in ("forget", "input", "output", "reset") if r in roles), "")


def uses(book: "Book", gate: str) -> set[tuple[str, bool]]:
    """What ``gate`` gates, read off the products it takes part in: ("forget", …) when it
    multiplies a state's past into that state, "input" the cell's input into a state,
    "output" a state's new value, "reset" a state's past into another unit; each with whether
    the gate itself takes part in the product (else its ``1 − gate``)."""
    states = {v.name for v in book.variables.values() if v.kind == "state"}

    def past(e: "Edge") -> str | None:        # the state whose earlier value ``e`` carries
        v = book.variables[e.src]
        if e.delay and e.src in states:
            return e.src
        return v.shows[0] if v.shows is not None and v.shows[0] in states else None

    def into_state(product: str) -> str | None:    # the state a product adds into
        seen, stack = set(), [product]
        while stack:
            name = stack.pop()
            for e in book.users_of(name):
                if e.delay or e.dst in seen:
                    continue
                if e.dst in states:
                    return e.dst
                seen.add(e.dst)
                if book.variables[e.dst].kind in ("product", "point"):
                    stack.append(e.dst)
        return None
    found = set()
    mine = {gate} | {e.dst for e in book.users_of(gate)         # the gate and its 1 − gate
                     if not e.delay and book.variables[e.dst].kind == "complement"}
    for m in mine:
        for use in book.users_of(m):
            if use.delay or book.variables[use.dst].kind != "product":
                continue
            partners = [f for e in book.inputs_of(use.dst) if e.src not in mine
                        for f in (book.inputs_of(e.src) if book.variables[e.src].kind ==
                                  "difference" else [e])]       # (u ⊙ (h~ − h): both gated)
            target = into_state(use.dst)
            for e in partners:
                state = past(e)
                kind = book.variables[e.src].kind
                if state is not None:
                    found.add(("forget" if target == state else "reset", m == gate))
                elif e.src in states and not e.delay:
                    found.add(("output", m == gate))
                elif kind in ("unit", "named") and target is not None:
                    found.add(("input", m == gate))
    return found


def _has_output_gate(book: "Book") -> bool:
    """Whether some σ of the cell lets a state's new value out (an LSTM's q; a GRU has none)."""
    return any(v.op == "σ" and any(r == "output" for r, _ in uses(book, v.name))
               for v in book.variables.values())


def partners(book: "Book", unit: str) -> set[str]:
    """The values ``unit`` is multiplied with, in the products it takes part in."""
    vs = book.variables
    mine = {unit} | {e.dst for e in book.users_of(unit)     # (and its 1 − u, its u − h)
                     if vs[e.dst].kind in TAKEN_OF}
    found = {f.src for m in mine for p in book.users_of(m) if vs[p.dst].kind == "product"
             for f in book.inputs_of(p.dst) if f.src not in mine}
    out: set[str] = set()
    for f in found:
        out |= {g.src for g in book.inputs_of(f)} if vs[f].kind in TAKEN_OF else {f}
    return out


def gates(book: "Book") -> dict[str, str]:
    """The unnamed σ units of a detailed book that are gates, with their roles. A σ unit that a
    gate multiplies is what the gate lets through (the book's LSTM squashes its cell input with
    σ too), not a gate: the units whose role is plain (forget, output, update, reset) are gates
    first, then those that only let an input in, unless their partner is already a gate."""
    vs = book.variables
    chosen = {v.name for v in vs.values() if v.op == "σ" and v.kind != "unit"}
    roles = {v.name: role(book, v.name) for v in vs.values() if v.kind == "unit" and v.op == "σ"}
    def lettered(name: str) -> bool:          # its parameters carry the input gate's g
        return any(p[1:].lstrip("_") == "g" for e in book.inputs_of(name)
                   for p in e.labels + e.biases)
    out: dict[str, str] = {}
    # (of two σ multiplied together, the graph cannot tell the gate from the input: the one
    # whose parameters say g — U_g, W_g, b_g — is the gate, else the one computed first)
    for name in sorted((n for n in roles if roles[n] in LETTERS),
                       key=lambda n: (roles[n] == "input gate", not lettered(n))):
        if roles[name] == "input gate" and partners(book, name) & chosen:
            continue
        chosen.add(name)
        out[name] = roles[name]
    return out


def roles(book: "Book") -> dict[str, str]:
    """The role of every σ of a detailed book that has one: the unnamed gates' (``gates``), the
    named σ's (``rec.name_node("f", …)``: what it gates, an input gate unless its partner is a
    named σ too — of two named σ multiplied together, which is the gate and which the input is
    the user's word), and "input" for a unit that a gate multiplies, named or not (the cell's
    input: PyTorch's g as the book's unnamed one; an unnamed σ sliced into two gates: "update
    and reset gates")."""
    vs = book.variables
    found = gates(book)
    sigmoid = {v.name for v in vs.values() if v.op == "σ"}
    named = {v.name for v in vs.values() if v.kind == "named" and v.op == "σ"}
    out = {}
    for v in vs.values():
        if v.kind == "unit":
            r = found.get(v.name) or ("input" if partners(book, v.name) & sigmoid else
                                      role(book, v.name) if v.op == "σ" else "")
        elif v.name in named:
            r = role(book, v.name)
            r = "" if r == "input gate" and partners(book, v.name) & named else r
        elif v.kind == "named" and v.op:     # a named candidate: the user's g is the input too
            r = "input" if partners(book, v.name) & sigmoid else ""
        else:
            continue
        if r:
            out[v.name] = r
    return out
