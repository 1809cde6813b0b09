"""The time-batching compiler: an unfolded graph run with time as one more batch axis.

    flat        one pass over the nodes: aliases, singles, and the members of classes (the copies
                of one computation), each described by where its inputs are
    group       each class's regular and peeled members, its readers; reductions
    distribute  the dependence graph of the classes, its recurrent core, an order of units
    lower       storage (a slab per class, buffers allocated once) and numpy calls; a loop's
                step lowered once, as a template
    codegen     the calls as one Python function, loops as ``for`` over strided rows

``plan(program, signature, batch)`` compiles a ``Program`` for one pattern of batched feeds and
one batch size; ``Plan.run(values)`` evaluates it. Planning keeps nothing per node once it is
done. See docs/architecture.md, "Execution".
"""
from __future__ import annotations

import numpy as np

from .codegen import generate
from .distribute import distribute, reassociate
from .flat import Flat
from .group import Grouping
from .kernels import sigmoid
from . import lower
from .lower import Loop, Unsupported
from .memory import MAX_CALLS, Sharing


#: raise a failure of a time-batched run instead of rerunning the per-node schedule (which names
#: the node that failed); the property tests set it, to see any failure of the compiler itself
STRICT = False


class Plan:
    """A program compiled for one pattern of batched feeds and one batch size."""

    def __init__(self, program, signature: tuple[bool, ...], batch: int | None) -> None:
        order, top = program._take_walk()
        fed, fed_sequences = {}, {}
        for p, flag in zip(program.placeholders, signature):
            if p.step is not None and p.source is not None:
                fed_sequences[p.source] = flag
            else:
                fed[p] = flag
        flat = Flat(order, top, program.outputs, fed, fed_sequences, batch)   # (consumes order)
        del order
        g = Grouping(flat)
        units = distribute(g)
        if units is not None and reassociate(g, units):        # then distribute again
            units = distribute(g)
        if units is None:
            raise Unsupported("the dependence graph defeats the analysis")
        st, code = lower.lower(g, units, batch)
        self.units = [(u.kind, [c.rep.op.name for c in u.classes], len(u.peeled))
                      for u in units]
        out = [st.output(o) for o in flat.outputs]
        fed_at = {v.node: st.loc(v) for v in flat.singles if v.fed}
        sequences: dict = {}
        copies: dict = {}
        for c in flat.classes:
            if c.fed:
                source = c.rep.source
                slab = st.slab(c)
                sequences.setdefault(source, []).extend(
                    (slab[a - c.lo:b - c.lo + 1], a, b) for a, b in c.runs)
                copies.setdefault(source, []).append((slab, c.lo, c.hi))
        g.dismantle()
        del g, units, flat
        # a sequence fed step by step (the general path) needs its copies' rows
        self._copy_rows = {s: v[0] for s, v in copies.items() if len(v) == 1}
        self.nbytes = st.nbytes
        instrs = sum(len(u) for u in code)
        if instrs <= MAX_CALLS:
            # buffers whose lives do not overlap share memory
            held = list(fed_at.values()) + [t[0] for ts in sequences.values() for t in ts]
            sharing = Sharing(code, st.pinned, held, out)
            for unit in code:
                for i in unit:
                    i.args = sharing.rebase(i.args)
            fed_at = {k: sharing.rebase(v) for k, v in fed_at.items()}
            out = sharing.rebase(out)
            sequences = {k: [(sharing.rebase(a), lo, hi) for a, lo, hi in v]
                         for k, v in sequences.items()}
            self._copy_rows = {k: (sharing.rebase(a), lo, hi)
                               for k, (a, lo, hi) in self._copy_rows.items()}
            self.nbytes = sharing.nbytes
            del sharing
        self._out, self._fed, self._sequences = out, fed_at, sequences
        self.run_code, self.calls = generate(code)
        # σ(x) = 1 / (1 + e⁻ˣ) overflows to the right answer, 0, where σ(x) < 1e-308
        self.quiet_overflow = any(i.fn is sigmoid or isinstance(i, Loop) and
                                  any(fn is sigmoid for fn, _ in i.args[2])
                                  for unit in code for i in unit)
        self.instructions = instrs

    def describe(self) -> str:
        """One line per unit: what runs as one op, as a sum, or step by step."""
        lines = []
        for kind, ops, peeled in self.units:
            what = ", ".join(ops) + (f" (+{peeled} peeled)" if peeled else "")
            lines.append(f"{kind:9} {what}")
        return "\n".join(lines)

    def run(self, values: dict, sequences: dict | None = None) -> list[np.ndarray]:
        """Evaluate, given the fed values of placeholders and (optionally) whole sequences."""
        fed = self._fed
        for p, value in values.items():
            buf = fed.get(p)
            if buf is not None:
                np.copyto(buf, value)
            else:                                # a step of a sequence, fed by the general path
                slab, lo, _ = self._copy_rows[p.source]
                np.copyto(slab[p.step - lo, ...], value)
        if sequences:
            for source, array in sequences.items():
                for slab, a, b in self._sequences[source]:
                    np.copyto(slab, array[a - 1:b])
        if self.quiet_overflow:
            with np.errstate(over="ignore"):
                self.run_code()
        else:
            self.run_code()
        return [np.array(a) for a in self._out]


def plan(program, signature: tuple[bool, ...], batch: int | None) -> Plan | None:
    """The time-batched plan, or None when this graph runs on the per-node schedule."""
    try:
        return Plan(program, signature, batch)
    except Unsupported:
        return None
