"""Codegen: a plan's calls as one Python function, the repeated steps rolled into loops.

The calls of a recurrent unit come one per node, in the order the graph was built. Grouped by
step (in time order, forward or backward, when the unit's dependences allow it), the steps whose
calls are the regular members of the same classes, in the same order, make one loop::

    for r0, r1, r2 in zip(L0, L1, L2):      # the rows of step t, t+1, …
        f0(r0, c0, r1)                      # e.g. np.dot(h(t-1), Wᵀ, Wh(t))
        f1(r1, r2, r1)
        f2(r1, r1)

Arguments that are the same at every step are constants of the function; rows are zipped from
lists made once per plan. Everything else is written out call by call — as source while it is
short, and as a list of ``(function, arguments)`` walked by a small loop beyond
``STRAIGHT_LINES`` calls (compiling a very long function costs more than it saves).
"""
from __future__ import annotations

from typing import Sequence

#: straight-line calls written as source; beyond, walked from a list
STRAIGHT_LINES = 4000
#: the fewest steps worth a loop
MIN_LOOP = 2


class _Source:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.space: dict[str, object] = {}
        self.lines: list[str] = []
        self.straight = 0
        self.calls = 0

    def name(self, obj, prefix: str = "a") -> str:
        key = id(obj)
        n = self.names.get(key)
        if n is None:
            n = self.names[key] = f"{prefix}{len(self.names)}"
            self.space[n] = obj
        return n

    def call(self, fn, args, indent: str = "    ") -> None:
        self.lines.append(f"{indent}{self.name(fn, 'f')}({', '.join(self.name(a) for a in args)})")

    def straight_line(self, instrs) -> None:
        if not instrs:
            return
        if self.straight + len(instrs) > STRAIGHT_LINES:
            table = [(i.fn, i.args) for i in instrs]
            self.lines.append(f"    for fn, args in {self.name(table, 'T')}:")
            self.lines.append("        fn(*args)")
        else:
            for i in instrs:
                self.call(i.fn, i.args)
            self.straight += len(instrs)
        self.calls += len(instrs)

    def loop(self, bins: Sequence[list]) -> None:
        body = bins[0]
        zipped: list[list] = []
        names = []
        for k, first in enumerate(body):
            arg_names = []
            for j, a in enumerate(first.args):
                column = [b[k].args[j] for b in bins]
                if all(x is a for x in column):
                    arg_names.append(self.name(a))
                else:
                    # a row: the same column may serve several calls (written, then read)
                    key = tuple(id(x) for x in column[:2]) + (id(column[-1]), len(column))
                    for z, (zk, _) in enumerate(zipped):
                        if zk == key:
                            arg_names.append(f"r{z}_{len(self.lines)}")
                            break
                    else:
                        zipped.append((key, column))
                        arg_names.append(f"r{len(zipped) - 1}_{len(self.lines)}")
            names.append((self.name(first.fn, "f"), arg_names))
        loop_id = len(self.lines)
        lists = [self.name(column, "L") for _, column in zipped]
        targets = ", ".join(f"r{z}_{loop_id}" for z in range(len(zipped)))
        if len(zipped) == 1:
            targets += ","
        self.lines.append(f"    for {targets} in zip({', '.join(lists)}):" if zipped else
                          f"    for _ in range({len(bins)}):")
        for fn, args in names:
            args = [a if not a.startswith("r") else a.rsplit("_", 1)[0] + f"_{loop_id}"
                    for a in args]
            self.lines.append(f"        {fn}({', '.join(args)})")
        self.calls += len(bins) * len(body)

    def function(self):
        source = "def run():\n" + ("\n".join(self.lines) if self.lines else "    pass") + "\n"
        exec(compile(source, "<unfold time-batched plan>", "exec"), self.space)
        return self.space["run"], source


def _steps(instrs) -> list[list] | None:
    """The calls of a recurrent unit grouped by step, in time order, when the dependences allow
    running them so; None otherwise."""
    if any(i.index is None or i.write is None for i in instrs):
        return None
    bins: dict[int, list] = {}
    for i in instrs:
        bins.setdefault(i.index, []).append(i)
    if len(bins) < MIN_LOOP:
        return None
    writer = {i.write: i.index for i in instrs}
    up = down = False
    for i in instrs:
        for r in i.reads:
            t = writer.get(r)
            if t is not None:
                if t < i.index:
                    up = True
                elif t > i.index:
                    down = True
    if up and down:
        return None
    return [bins[t] for t in sorted(bins, reverse=down)]


def generate(units) -> tuple:
    """The function running ``units`` (each a list of ``Instr``), and its number of calls."""
    src = _Source()
    for code in units:
        steps = _steps(code) if len(code) >= 2 * MIN_LOOP else None
        if steps is None:
            src.straight_line(code)
            continue
        signature = [tuple(i.template for i in b) for b in steps]
        k = 0
        while k < len(steps):
            j = k + 1
            while j < len(steps) and signature[j] == signature[k] and \
                    abs(steps[j][0].index - steps[j - 1][0].index) == 1:
                j += 1
            if j - k >= MIN_LOOP and all(t[0] == "c" for t in signature[k]):
                src.loop(steps[k:j])
            else:
                src.straight_line([i for b in steps[k:j] for i in b])
            k = j
    run, source = src.function()
    run.source = source
    return run, src.calls
