"""Memory: buffers whose lives do not overlap share their memory.

Lowering gives every value a buffer of its own. Walking the units in order, a buffer lives from
the first unit that uses it to the last (the outputs to the end, fed values from the start); a
buffer of the same size whose life is over is reused for the next one, and every view of the
program (the arguments of its calls) is moved onto the memory it was given. What a plan holds is
then about what the computation needs at its widest point, as in a hand-written workspace.
Buffers filled when planning (constants, zeros of an assembled gradient) keep their own memory.
"""
from __future__ import annotations

import numpy as np

#: buffers smaller than this keep their own memory (sharing them saves nothing)
SMALL = 1024
#: programs with more calls keep one buffer per value (planning stays linear and quick)
MAX_CALLS = 200_000


def _arrays(obj, out: list) -> None:
    if isinstance(obj, np.ndarray):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            _arrays(x, out)


def _owner(a: np.ndarray) -> np.ndarray:
    return a if a.base is None else a.base


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _in_place(instrs, old: np.ndarray, new: np.ndarray) -> bool:
    """Whether the unit ``instrs`` — one ufunc call writing a view of ``new`` — reads ``old``
    only element for element with its output, so that the two may share memory."""
    if len(instrs) != 1 or not isinstance(instrs[0].fn, np.ufunc):
        return False
    fn, args = instrs[0].fn, instrs[0].args
    if len(args) != fn.nin + 1 or not isinstance(args[-1], np.ndarray) or \
            _owner(args[-1]) is not new:
        return False
    out = args[-1]
    at = _address(out) - _address(new)
    reads = 0
    for a in args[:-1]:
        if isinstance(a, np.ndarray) and _owner(a) is old:
            if a.shape != out.shape or a.strides != out.strides or \
                    _address(a) - _address(old) != at:
                return False
            reads += 1
    return reads > 0


class Sharing:
    """``rebase(obj)``: ``obj`` (an array, or tuples and lists of them) moved onto shared memory."""

    def __init__(self, code, pinned: set[int], fed: list, outputs: list) -> None:
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        owners: dict[int, np.ndarray] = {}

        def touch(a, u):
            o = _owner(a)
            k = id(o)
            owners[k] = o
            if k not in first:
                first[k] = u
            last[k] = max(last.get(k, u), u)

        for a in fed:
            touch(a, -1)
        for u, instrs in enumerate(code):
            for i in instrs:
                found: list = []
                _arrays(i.args, found)
                for a in found:
                    touch(a, u)
        end = len(code)
        for a in outputs:
            touch(a, end)
        self.nbytes = 0
        self.memory: dict[int, np.ndarray] = {}          # owner id → the raw memory it uses
        free: list[np.ndarray] = []                       # raw blocks no buffer uses now
        releases: list[tuple[int, np.ndarray, int]] = []  # (last use, raw block, owner id)
        for k in sorted(owners, key=lambda k: first[k]):
            o = owners[k]
            if k in pinned or o.nbytes < SMALL or not o.flags.c_contiguous:
                self.nbytes += o.nbytes
                continue
            # return the blocks whose last use is before this buffer's first use
            releases.sort(key=lambda r: r[0])
            while releases and releases[0][0] < first[k]:
                free.append(releases.pop(0)[1])
            # an element-wise call may write over an input it reads for the last time
            raw = None
            for j, (end_, block, old) in enumerate(releases):
                if end_ == first[k] and block.nbytes >= o.nbytes and \
                        _in_place(code[first[k]] if 0 <= first[k] < len(code) else (),
                                  owners[old], o):
                    raw = block
                    del releases[j]
                    break
            if raw is None:
                # the smallest free block that holds it (blocks are not split)
                fits = [j for j, b in enumerate(free) if b.nbytes >= o.nbytes]
                if fits:
                    raw = free.pop(min(fits, key=lambda j: free[j].nbytes))
                else:
                    raw = np.empty(o.nbytes, np.uint8)
                    self.nbytes += o.nbytes
            self.memory[k] = raw
            releases.append((last[k], raw, k))
        self._moved: dict[int, np.ndarray] = {}
        self._keep: list = []

    def rebase(self, obj):
        if isinstance(obj, np.ndarray):
            k = id(obj)
            new = self._moved.get(k)
            if new is None:
                o = _owner(obj)
                raw = self.memory.get(id(o))
                if raw is None:
                    new = obj
                else:
                    offset = _address(obj) - _address(o)
                    new = np.ndarray(obj.shape, obj.dtype, buffer=raw, offset=offset,
                                     strides=obj.strides)
                self._moved[k] = new
                self._keep.append(obj)                   # ids stay unique while planning
            return new
        if isinstance(obj, tuple):
            return tuple(self.rebase(x) for x in obj)
        if isinstance(obj, list):
            return [self.rebase(x) for x in obj]
        return obj
