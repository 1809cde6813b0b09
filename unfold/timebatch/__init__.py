"""The time-batching compiler: an unfolded graph run with time as one more batch axis.

    group       the τ copies of one computation as classes; reductions; invariants
    distribute  the dependence graph of the classes, its recurrent core, an order of units
    lower       storage (a slab per class, buffers allocated once) and numpy calls
    codegen     the calls as one Python function, repeated steps rolled into loops

``plan(program, signature, batch)`` compiles a ``Program`` for one pattern of batched feeds and
one batch size; ``Plan.run(values)`` evaluates it. See docs/architecture.md, "Execution".
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .bind import BIND_BYTES, Bound, bind
from .codegen import generate
from .distribute import distribute
from .flat import Flat
from .group import Grouping
from .kernels import sigmoid
from .lower import lower
from .memory import MAX_CALLS, Sharing, schedule


#: raise a failure of a time-batched run instead of rerunning the per-node schedule (which names
#: the node that failed); the property tests set it, to see any failure of the compiler itself
STRICT = False


#: plans with at most this many calls keep them (and their description) for inspection
KEEP_CALLS = 20_000


class Plan:
    """A program compiled for one pattern of batched feeds and one batch size."""

    def __init__(self, program, signature: tuple[bool, ...], batch: int | None) -> None:
        flat = Flat(program.order, program._positions, program.placeholders, program._slot,
                    signature, batch, program._index)
        self.flat = flat
        g = Grouping(flat)
        units = distribute(g)
        if units is None:
            raise _Unsupported("the dependence graph defeats the analysis")
        cyclic = {m: k for k, u in enumerate(units) if u.cyclic for m in u.members}
        if flat.reassociate(cyclic):                 # then group and distribute again
            g = Grouping(flat)
            units = distribute(g)
            if units is None:
                raise _Unsupported("the dependence graph defeats the analysis")
        self.grouping, self.units = g, units
        st, code = lower(g, units, batch)
        self.storage = st
        self._positions = {p: i for p, i in zip(program.placeholders,
                                                 (flat.position[p] for p in program.placeholders))}
        self._out = [st.loc(r) for r in flat.outputs]
        self._sequences = self._sequence_targets(program)
        self._fed = {i: st.loc(i) for i in flat.fed}
        self.nbytes = st.nbytes
        # fed buffers that may be bound to the caller's arrays (``bind``): never shared
        steps = {flat.position[c] for copies in program.feeds._sliced.values() for c in copies}
        candidates = {id(b): b for b in [b for i, b in self._fed.items() if i not in steps] +
                      [t[0] for t in self._sequences.values() if isinstance(t, tuple)]
                      if b.base is None and b.nbytes >= BIND_BYTES}
        st.pinned.update(candidates)
        if sum(len(c) for c in code) <= MAX_CALLS:
            # buffers whose lives do not overlap share memory
            fed = list(self._fed.values()) + [t[0] for t in self._sequences.values()
                                              if isinstance(t, tuple)]
            code = [code[u] for u in schedule(code, st.pinned)]     # memory-aware order
            sharing = Sharing(code, st.pinned, fed, self._out)
            for instrs in code:
                for i in instrs:
                    i.args = sharing.rebase(i.args)
            self._fed = {k: sharing.rebase(v) for k, v in self._fed.items()}
            self._out = sharing.rebase(self._out)
            self._sequences = {k: sharing.rebase(v) for k, v in self._sequences.items()}
            self.nbytes = sharing.nbytes
            del sharing                # (it keeps the unshared buffers alive while planning)
        self.run_code, self.calls = generate(code)
        self._bind(program, bind(self.run_code.__globals__, candidates, self._out), code)
        # σ(x) = 1 / (1 + e⁻ˣ) overflows to the right answer, 0, where σ(x) < 1e-308
        self.quiet_overflow = any(i.fn is sigmoid for unit in code for i in unit)
        # what planning needed is dropped (lowering's own buffers, the analysis); a small plan
        # keeps its calls and its description for inspection
        self.storage = None
        self._description = self.describe() if self.calls <= KEEP_CALLS else \
            f"{len(self.units)} units, {self.calls} calls"
        self.code = code if self.calls <= KEEP_CALLS else None
        self.flat = self.grouping = self.units = None

    def _bind(self, program, bound: dict, code) -> None:
        """Placeholders (and whole sequences) read from the caller's arrays: their buffers are
        dropped; steps of a bound sequence fed one by one are copied into a staging array."""
        self._bound: dict[int, Bound] = {}
        self._bound_sequences: dict = {}
        self._step_of: dict[int, tuple] = {}
        for i, buf in list(self._fed.items()):
            if id(buf) in bound:
                self._bound[i] = bound[id(buf)]
                del self._fed[i]
                self.nbytes -= buf.nbytes
        for source, target in list(self._sequences.items()):
            if isinstance(target, tuple) and id(target[0]) in bound:
                slab, lo, hi = target
                self._bound_sequences[source] = (bound[id(slab)], lo, hi)
                del self._sequences[source]
                self.nbytes -= slab.nbytes
                for c in program.feeds._sliced[source]:
                    i = self.flat.position[c]
                    self._fed.pop(i, None)
                    self._step_of[i] = (source, c.step - lo)
        gone = set(bound)
        for instrs in code:                  # what is kept for inspection holds no buffer
            for i in instrs:
                i.args = _strip(i.args, gone)

    def describe(self) -> str:
        """One line per unit: what runs as one op, as a sum, or step by step."""
        if self.flat is None:
            return self._description
        flat, g = self.flat, self.grouping
        lines = []
        for u in self.units:
            if u.kind == "vector":
                c = u.cls
                what = f"{flat.order[c.rep].op.name} × {sum(c.regular)} steps as one op" + (
                    f" (+{len(u.members)} alone)" if u.members else "")
            elif u.kind == "reduction":
                red = u.reduction
                what = (f"Σ of {len(red.leaves)} terms" + "".join(
                    f", absorbing {flat.order[c.rep].op.name} × {len(c.members)}"
                    for c in u.absorbed))
            else:
                ops: dict[str, int] = {}
                for m in u.members:
                    ops[flat.order[m].op.name] = ops.get(flat.order[m].op.name, 0) + 1
                what = "one by one: " + ", ".join(f"{k} × {v}" for k, v in ops.items())
            lines.append(f"{u.kind:9} {what}")
        return "\n".join(lines)

    def _sequence_targets(self, program) -> dict:
        """For each folded sequence: (slab, first step, last step) when its step copies are the
        rows of one slab, else [(buffer, step), …]."""
        out = {}
        g, st = self.grouping, self.storage
        for source, copies in program.feeds._sliced.items():
            pos = [self.flat.position[c] for c in copies]
            ks = {g.cls[i] for i in pos}
            k = next(iter(ks))
            if len(ks) == 1 and k >= 0 and k in st.slabs and k not in st.view_classes:
                c = g.classes[k]
                out[source] = (st.slabs[k], c.lo, c.hi)
            else:
                out[source] = [(st.loc(i), self.flat.order[i].step) for i in pos]
        return out

    def run(self, values: dict, sequences: dict | None = None) -> list[np.ndarray]:
        """Evaluate, given the fed values of placeholders and (optionally) whole sequences."""
        position = self._positions
        staged = None
        for p, value in values.items():
            i = position[p]
            buf = self._fed.get(i)
            if buf is not None:
                np.copyto(buf, value)
            elif i in self._bound:
                self._bound[i].bind(value)
            else:                                   # a step of a bound sequence
                source, row = self._step_of[i]
                np.copyto(self._bound_sequences[source][0].staging()[row, ...], value)
                staged = staged or set()
                staged.add(source)
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
                target = self._sequences[source]
                if isinstance(target, tuple):
                    slab, lo, hi = target
                    np.copyto(slab, array[lo - 1:hi])
                else:
                    for buf, t in target:
                        np.copyto(buf, array[t - 1])
        if self.quiet_overflow:
            with np.errstate(over="ignore"):
                self.run_code()
        else:
            self.run_code()
        return [np.array(a) for a in self._out]


def _strip(obj, gone: set):
    """``obj`` with the views of the buffers ``gone`` replaced by None."""
    if isinstance(obj, np.ndarray):
        return None if id(obj if obj.base is None else obj.base) in gone else obj
    if isinstance(obj, tuple):
        return tuple(_strip(x, gone) for x in obj)
    if isinstance(obj, list):
        return [_strip(x, gone) for x in obj]
    return obj


class _Unsupported(Exception):
    pass


def plan(program, signature: tuple[bool, ...], batch: int | None) -> Plan | None:
    """The time-batched plan, or None when this graph runs on the per-node schedule."""
    try:
        return Plan(program, signature, batch)
    except _Unsupported:
        return None
