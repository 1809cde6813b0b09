"""Codegen: a plan's instructions as one Python function.

Single calls are written out as source while they are few, and beyond ``STRAIGHT_LINES`` walked
from a list of ``(function, arguments)`` (compiling a very long function costs more than it
saves). A ``Loop`` becomes a ``for`` over its iterators — the rows of strided arrays, or ring
rows cycled::

    _f0, _a1, _f1, _f2 = f0, a1, f1, f2
    for r0, r1, r2 in zip(I0, I1, cycle(C2)):      # views of step t, t+1, …
        _f0(r0, _a1, r2)                            # e.g. np.dot(h(t−1), Wᵀ, Wh(t))
        _f1(r2, r1, r2)
        _f2(r2, r1)

Arguments the same at every step are constants of the function, read into locals before the
loop. numpy functions that dispatch on ``__array_function__`` (``np.dot``, ``np.copyto``, …) are
called as their C implementation: the plan's arrays are all plain ndarrays (``bind`` binds no
other class), for which the dispatcher — a Python call, ~120 ns of a 0.4 µs ``np.dot`` of a
(1, 32) row — only ends up calling it.
"""
from __future__ import annotations

from itertools import cycle, repeat

import numpy as np

from .lower import It, Loop

_DISPATCHER = type(np.dot)

#: straight-line calls written as source; beyond, walked from a list
STRAIGHT_LINES = 4000


def _direct(fn):
    """``fn``, or the C function it dispatches to (module docstring). (numpy before 1.25 has no
    C dispatcher: ``type(np.dot)`` is then a plain function, and one without
    ``_implementation`` — a kernel of ours — stays itself.)"""
    return getattr(fn, "_implementation", fn) if type(fn) is _DISPATCHER else fn


class _Source:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.space: dict[str, object] = {"cycle": cycle, "repeat": repeat}
        self.lines: list[str] = []
        self.straight = 0
        self.calls = 0
        self.pending: list = []

    def name(self, obj, prefix: str = "a") -> str:
        if prefix == "f":
            obj = _direct(obj)
        key = id(obj)
        n = self.names.get(key)
        if n is None:
            n = self.names[key] = f"{prefix}{len(self.names)}"
            self.space[n] = obj
        return n

    def flush(self) -> None:
        instrs, self.pending = self.pending, []
        if not instrs:
            return
        if self.straight + len(instrs) > STRAIGHT_LINES:
            table = [(_direct(i.fn), i.args) for i in instrs]
            self.lines.append(f"    for fn, args in {self.name(table, 'T')}:")
            self.lines.append("        fn(*args)")
        else:
            for i in instrs:
                self.lines.append(f"    {self.name(i.fn, 'f')}"
                                  f"({', '.join(self.name(a) for a in i.args)})")
            self.straight += len(instrs)
        self.calls += len(instrs)

    def loop(self, instr: Loop) -> None:
        self.flush()
        steps, iterators, body = instr.args
        names = []
        for kind, it in iterators:
            if kind == "ring":
                names.append(f"cycle({self.name(it, 'C')})")
            elif getattr(it, "ndim", 2) == 1:   # 0-d rows: numpy iterates them as scalars
                names.append(f"map({self.name(it, 'I')}.__getitem__, "
                             f"zip(range({len(it)}), repeat(...)))")
            else:
                names.append(self.name(it, "I"))
        if all(kind == "ring" for kind, _ in iterators):
            names.insert(0, f"range({steps})")           # (cycles never end)
            body = [(fn, tuple(It(a.k + 1) if isinstance(a, It) else a for a in args))
                    for fn, args in body]
        targets = ", ".join(f"r{k}" for k in range(len(names)))
        lines = []
        local: dict[str, str] = {}           # a global read in the loop → its local name
        for fn, args in body:
            spelled = [f"r{a.k}" if isinstance(a, It) else self.name(a) for a in args]
            spelled = [local.setdefault(x, "_" + x) if x[0] != "r" else x
                       for x in [self.name(fn, "f")] + spelled]
            lines.append(f"        {spelled[0]}({', '.join(spelled[1:])})")
        # (the loop's functions and constant arguments read as locals: read once per call of
        # the plan, after ``bind`` has pointed the names at this call's arrays)
        self.lines.append(f"    {', '.join(local.values())}{',' if len(local) == 1 else ''} = "
                          f"{', '.join(local)}{',' if len(local) == 1 else ''}")
        self.lines.append(f"    for {targets}{',' if len(names) == 1 else ''} in "
                          f"zip({', '.join(names)}):")
        self.lines += lines
        self.calls += steps * len(body)

    def function(self):
        self.flush()
        source = "def run():\n" + ("\n".join(self.lines) if self.lines else "    pass") + "\n"
        exec(compile(source, "<unfold time-batched plan>", "exec"), self.space)
        return self.space["run"], source


def generate(units) -> tuple:
    """The function running ``units`` (each a list of instructions), and its number of calls."""
    src = _Source()
    for code in units:
        for i in code:
            if isinstance(i, Loop):
                src.loop(i)
            else:
                src.pending.append(i)
    run, source = src.function()
    run.source = source
    return run, src.calls
