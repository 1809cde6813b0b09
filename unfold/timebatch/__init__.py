"""The time-batching compiler: an unfolded graph run with time as one more batch axis.

    flat        one pass over the nodes: aliases, singles, and the members of classes (the copies
                of one computation), each described by where its inputs are
    group       each class's regular and peeled members, its readers; reductions
    strip       the classes cut into chunks of steps: each pass runs chunk by chunk
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

from .bind import BIND_BYTES, Bound, bind
from .codegen import generate
from .distribute import distribute, reassociate
from .flat import Flat
from .group import Grouping
from .kernels import sigmoid, sigmoid_of_negated
from . import lower, signs
from .lower import Loop, Unsupported
from .memory import MAX_CALLS, Sharing, schedule
from .strip import strip_mine


#: raise a failure of a time-batched run instead of rerunning the per-node schedule (which names
#: the node that failed); the property tests set it, to see any failure of the compiler itself
STRICT = False


class Plan:
    """A program compiled for one pattern of batched feeds and one batch size."""

    def __init__(self, program, signature: tuple[bool, ...], batch: int | None) -> None:
        order, top, far = program._take_walk()
        fed, fed_sequences = {}, {}
        for p, flag in zip(program.placeholders, signature):
            if p.step is not None and p.source is not None:
                fed_sequences[p.source] = flag
            else:
                fed[p] = flag
        flat = Flat(order, top, far, program.outputs, fed, fed_sequences, batch)   # (consumes order)
        del order
        g = Grouping(flat)
        #: the chunks of steps the passes run in (strip.py), 0: not cut
        self.chunks = strip_mine(g, batch)
        units = distribute(g)
        if units is not None and reassociate(g, units):        # then distribute again
            units = distribute(g)
        if units is None:
            raise Unsupported("the dependence graph defeats the analysis")
        st, code = lower.lower(g, units, batch)
        chunks = [_chunk(g, u) for u in units]
        #: σ calls reading an input its producers stored negated (signs.py)
        self.negated_sigmoids = signs.fold(
            code, [st.output(o) for o in flat.outputs],
            [st.loc(v) for v in flat.singles if v.fed] + [st.slab(c) for c in flat.classes
                                                          if c.fed], st.pinned, chunks)
        if len(chunks) != len(code):
            raise AssertionError("lowering gave a unit more or less")
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
        # fed buffers that may be read from the caller's arrays (``bind``): never shared
        whole = {s: v[0] for s, v in copies.items() if len(v) == 1 and len(sequences[s]) == 1
                 and sequences[s][0][1:] == v[0][1:]}
        candidates = {id(b): b for b in list(fed_at.values()) + [v[0] for v in whole.values()]
                      if b.base is None and b.nbytes >= BIND_BYTES}
        st.pinned.update(candidates)
        instrs = sum(len(u) for u in code)
        if instrs <= MAX_CALLS:
            # buffers whose lives do not overlap share memory, in an order that keeps few alive
            code = [code[u] for u in schedule(code, st.pinned, chunks)]
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
        self._bind(bind(self.run_code.__globals__, candidates, out), whole)
        # σ(x) = 1 / (1 + e⁻ˣ) overflows to the right answer, 0, where σ(x) < 1e-308
        sigmoids = (sigmoid, sigmoid_of_negated)
        self.quiet_overflow = any(i.fn in sigmoids or isinstance(i, Loop) and
                                  any(fn in sigmoids for fn, _ in i.args[2])
                                  for unit in code for i in unit)
        self.instructions = instrs

    def _bind(self, bound: dict, whole: dict) -> None:
        """Placeholders and whole sequences read from the caller's arrays (``bind``): their
        buffers are dropped (a sequence fed step by step is assembled in a staging array)."""
        self._bound: dict = {}                       # placeholder → Bound
        self._bound_sequences: dict = {}             # source → (Bound, first step, last step)
        for p, buf in list(self._fed.items()):
            if id(buf) in bound:
                self._bound[p] = bound[id(buf)]
                del self._fed[p]
                self.nbytes -= buf.nbytes
        for source, (slab, lo, hi) in whole.items():
            if id(slab) in bound:
                self._bound_sequences[source] = (bound[id(slab)], lo, hi)
                del self._sequences[source]
                self._copy_rows.pop(source, None)
                self.nbytes -= slab.nbytes
        self._bindings = list(self._bound.values()) + [b for b, _, _ in
                                                       self._bound_sequences.values()]

    def describe(self) -> str:
        """One line per unit: what runs as one op, as a sum, or step by step."""
        lines = []
        for kind, ops, peeled in self.units:
            what = ", ".join(ops) + (f" (+{peeled} peeled)" if peeled else "")
            lines.append(f"{kind:9} {what}")
        return "\n".join(lines)

    def run(self, values: dict, sequences: dict | None = None) -> list[np.ndarray]:
        """Evaluate, given the fed values of placeholders and (optionally) whole sequences."""
        fed, staged = self._fed, None
        for p, value in values.items():
            buf = fed.get(p)
            if buf is not None:
                np.copyto(buf, value)
            elif p in self._bound:
                self._bound[p].bind(value)
            elif p.source in self._copy_rows:    # a step of a sequence, fed by the general path
                slab, lo, _ = self._copy_rows[p.source]
                np.copyto(slab[p.step - lo, ...], value)
            else:                                # … of a sequence read in place: staged
                binding, lo, _ = self._bound_sequences[p.source]
                np.copyto(binding.staging()[p.step - lo, ...], value)
                staged = staged or set()
                staged.add(p.source)
        for source in staged or ():
            binding = self._bound_sequences[source][0]
            binding.bind(binding.staging())
        if sequences:
            for source, array in sequences.items():
                bound = self._bound_sequences.get(source)
                if bound is not None:
                    binding, lo, hi = bound
                    binding.bind(array if lo == 1 and hi == len(array) else array[lo - 1:hi])
                    continue
                for slab, a, b in self._sequences[source]:
                    np.copyto(slab, array[a - 1:b])
        try:
            if self.quiet_overflow:
                with np.errstate(over="ignore"):
                    self.run_code()
            else:
                self.run_code()
            return [np.array(a) for a in self._out]
        finally:
            for binding in self._bindings:
                binding.release()


def _chunk(g, u) -> int:
    """The rank of the chunk of steps a unit belongs to (strip.py), -1 for none."""
    c = u.classes[0] if u.classes else u.peeled[0][0] if u.peeled else \
        u.reduction.cls if u.reduction is not None else None
    return g.chunk.get(c.id, -1) if c is not None else -1


def plan(program, signature: tuple[bool, ...], batch: int | None) -> Plan | None:
    """The time-batched plan, or None when this graph runs on the per-node schedule."""
    try:
        return Plan(program, signature, batch)
    except Unsupported:
        return None
