"""Memory: buffers whose lives do not overlap share their memory, packed into one arena.

Lowering gives every value a buffer of its own. Walking the units in order, a buffer lives from
the first unit that uses it to the last (the outputs to the end, fed values from the start). An
element-wise call may write its result over an input it reads for the last time, element for
element (``tanh(a(t))`` over ``a(t)``, ``U x + b`` over ``U x``): such buffers are tied together
at the offsets that make the call run in place. The tied groups are then given offsets in one
arena, largest first, each at the lowest offset free during its whole life ("greedy by size",
as TensorFlow Lite plans its tensors): what a plan holds is then about what the computation
needs at its widest point, as in a hand-written workspace. Buffers filled when planning
(constants, zeros of an assembled gradient) keep their own memory.
"""
from __future__ import annotations

import numpy as np

from .bind import arrays_in
from .kernels import EFFECTS
from .lower import It, Loop

#: buffers smaller than this keep their own memory (sharing them saves nothing)
SMALL = 1024
#: programs with more calls keep one buffer per value (planning stays linear and quick)
MAX_CALLS = 200_000
#: at most this many groups are packed into an arena (packing costs O(groups²) vector steps);
#: beyond, each group keeps memory of its own
MAX_GROUPS = 20_000
#: offsets in the arena are multiples of this (a cache line: SIMD loads stay aligned)
ALIGN = 64


def _owner(a: np.ndarray) -> np.ndarray:
    return a if a.base is None else a.base


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


#: a step loop is looked into (its calls step by step) when it makes at most this many calls
LOOK_INTO = 50_000


def _calls(instr) -> list | None:
    """The calls ``(fn, args)`` an instruction makes: a ``Loop``'s, step by step (None beyond
    ``LOOK_INTO``)."""
    if not isinstance(instr, Loop):
        return [(instr.fn, instr.args)]
    steps, iterators, body = instr.args
    if steps * len(body) > LOOK_INTO:
        return None
    rows = [list(it) if isinstance(it, np.ndarray) else
            [it[s % len(it)] for s in range(steps)] for _, it in iterators]
    return [(fn, tuple(rows[a.k][s] if isinstance(a, It) else a for a in args))
            for s in range(steps) for fn, args in body]


def _effects(fn, args):
    """(arrays read, arrays written) by a call, for the calls whose effect is known: ufuncs
    (output last), ``np.dot``/``np.matmul`` with ``out``, and the kernels declaring it
    (``kernels.EFFECTS``). None otherwise."""
    if isinstance(fn, np.ufunc):
        if len(args) == fn.nin + fn.nout and all(isinstance(a, np.ndarray) or np.isscalar(a)
                                                  for a in args):
            return args[:fn.nin], args[fn.nin:]
        return None
    if fn is np.dot or fn is np.matmul:
        return (args[:2], args[2:]) if len(args) == 3 else None
    where = EFFECTS.get(fn)
    if where is None:
        return None
    ins, outs = where
    return [args[j] for j in ins], [args[j] for j in outs]


def _tie(code, new: np.ndarray, shared: dict, first: dict, last: dict):
    """An input ``new`` may be written over, element for element: its owner id and the offset
    of ``new`` from it — or None.

    The candidates are the inputs the first call writing ``new`` reads (``tanh(a)`` over
    ``a``; ``U x + b`` over ``U x``; in a step loop ``z(t) = W h(t−1) + (b + U x)(t)`` over each
    row of ``b + U x``) whose life ends while ``new`` lives. One qualifies when, from the first
    use of ``new`` to the last of the input, every call touching either has a known effect,
    the input is only read — by ufuncs writing ``new`` at the same elements, at one fixed
    offset — and each element of ``new`` is written at most once: so each element of the input
    is read before it is written over, and never after."""
    kn = id(new)
    start = first[kn]
    if not 0 <= start < len(code):
        return None
    candidates = []
    for instr in code[start]:
        for fn, args in _calls(instr) or ():
            eff = _effects(fn, args)
            if eff is not None and any(isinstance(a, np.ndarray) and _owner(a) is new
                                       for a in eff[1]):
                candidates = [id(_owner(a)) for a in eff[0] if isinstance(a, np.ndarray)]
                break
        if candidates:
            break
    for k in dict.fromkeys(candidates):
        if k == kn or k not in shared or not start <= last[k] <= last[kn]:
            continue
        old, shift, written, ok = shared[k], None, [], True
        for u in range(start, last[k] + 1):
            for instr in code[u]:
                arrays: list = []
                arrays_in(instr.args, arrays)
                touched = {id(_owner(a)) for a in arrays}
                if k not in touched and kn not in touched:
                    continue
                calls = _calls(instr)
                if calls is None:
                    ok = False
                    break
                for fn, args in calls:
                    eff = _effects(fn, args)
                    if eff is None:
                        ok = False
                        break
                    ins, outs = eff
                    mine = [a for a in outs if isinstance(a, np.ndarray) and _owner(a) is new]
                    if any(isinstance(a, np.ndarray) and _owner(a) is old for a in outs):
                        ok = False
                        break
                    written += mine
                    reads = [a for a in ins if isinstance(a, np.ndarray) and _owner(a) is old]
                    if not reads:
                        continue
                    if not isinstance(fn, np.ufunc) or len(mine) != 1 or len(outs) != 1:
                        ok = False
                        break
                    out = mine[0]
                    for a in reads:
                        here = (_address(a) - _address(old)) - (_address(out) - _address(new))
                        if a.shape != out.shape or a.strides != out.strides or \
                                a.dtype != out.dtype or (shift is not None and here != shift):
                            ok = False
                            break
                        shift = here
                    if not ok:
                        break
                if not ok:
                    break
            if not ok:
                break
        if not ok or shift is None or any(not a.flags.c_contiguous for a in written):
            continue
        ends = sorted((_address(a), _address(a) + a.nbytes) for a in written)
        if all(e <= b for (_, e), (b, _) in zip(ends, ends[1:])):
            return k, shift
    return None


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
                arrays_in(i.args, found)
                for a in found:
                    touch(a, u)
        end = len(code)
        for a in outputs:
            touch(a, end)
        self.nbytes = 0
        shared: dict[int, np.ndarray] = {}
        for k, o in owners.items():
            if k in pinned or o.nbytes < SMALL or not o.flags.c_contiguous:
                self.nbytes += o.nbytes
            else:
                shared[k] = o
        # tie buffers written in place over an input (``_tie``): group (its first member's id)
        # and offset of each buffer in its group
        group: dict[int, tuple[int, int]] = {}
        members: dict[int, list[int]] = {}
        tied: set[int] = set()               # inputs written over (by one buffer at most)
        for k in sorted(shared, key=lambda k: first[k]):
            tie = _tie(code, shared[k], shared, first, last)
            if tie is not None and tie[0] in group and tie[0] not in tied:
                tied.add(tie[0])
                root, at = group[tie[0]]
                group[k] = (root, at + tie[1])
                members[root].append(k)
            else:
                group[k] = (k, 0)
                members[k] = [k]
        blocks = []                       # (size, first, last, root, shift of the group)
        for root, ks in members.items():
            lo = min(group[k][1] for k in ks)
            hi = max(group[k][1] + shared[k].nbytes for k in ks)
            blocks.append((hi - lo, min(first[k] for k in ks), max(last[k] for k in ks), root,
                           -lo))
        offsets = _pack(blocks) if len(blocks) <= MAX_GROUPS else None
        self.memory: dict[int, tuple[np.ndarray, int]] = {}   # owner id → (raw memory, offset)
        if offsets is None:
            for size, _, _, root, shift in blocks:
                raw = np.empty(size, np.uint8)
                self.nbytes += size
                for k in members[root]:
                    self.memory[k] = (raw, shift + group[k][1])
        elif blocks:
            size = _arena(offsets, blocks)
            raw = np.empty(size + ALIGN, np.uint8)
            base = -_address(raw) % ALIGN
            self.nbytes += size
            for off, (_, _, _, root, shift) in zip(offsets, blocks):
                for k in members[root]:
                    self.memory[k] = (raw, base + off + shift + group[k][1])
        self._moved: dict[int, np.ndarray] = {}
        self._keep: list = []

    def rebase(self, obj):
        if isinstance(obj, np.ndarray):
            k = id(obj)
            new = self._moved.get(k)
            if new is None:
                o = _owner(obj)
                place = self.memory.get(id(o))
                if place is None:
                    new = obj
                else:
                    raw, at = place
                    new = np.ndarray(obj.shape, obj.dtype, buffer=raw,
                                     offset=at + _address(obj) - _address(o), strides=obj.strides)
                self._moved[k] = new
                self._keep.append(obj)                   # ids stay unique while planning
            return new
        if isinstance(obj, tuple):
            return tuple(self.rebase(x) for x in obj)
        if isinstance(obj, list):
            return [self.rebase(x) for x in obj]
        return obj


#: arenas of at most this many groups are packed in two orders (the smaller is kept)
TWICE = 2000


def _pack(blocks: list[tuple]) -> list[int]:
    """Offsets for blocks ``(size, first, last, …)`` such that two blocks alive at the same time
    (their [first, last] intersect) never overlap: largest first, or largest size × life first
    (which often packs to the widest point exactly), whichever arena is smaller."""
    by_size = _packed(blocks, lambda j: (-blocks[j][0], blocks[j][1]))
    if len(blocks) > TWICE:
        return by_size
    by_area = _packed(blocks, lambda j: (-blocks[j][0] * (blocks[j][2] - blocks[j][1] + 1),
                                         blocks[j][1]))
    return min(by_size, by_area, key=lambda offsets: _arena(offsets, blocks))


def _arena(offsets: list[int], blocks: list[tuple]) -> int:
    return max((off + b[0] for off, b in zip(offsets, blocks)), default=0)


def _packed(blocks: list[tuple], key) -> list[int]:
    """Offsets placing the blocks in the order of ``key``, each at the lowest aligned offset
    free during its whole life."""
    n = len(blocks)
    order = sorted(range(n), key=key)
    start = np.empty(n, np.int64)
    stop = np.empty(n, np.int64)
    born = np.array([b[1] for b in blocks], np.int64)
    dies = np.array([b[2] for b in blocks], np.int64)
    placed = np.zeros(n, bool)
    offsets = [0] * n
    for j in order:
        size = blocks[j][0]
        live = placed & (born <= dies[j]) & (dies >= born[j])
        at = 0
        if live.any():
            idx = np.flatnonzero(live)
            idx = idx[np.argsort(start[idx], kind="stable")]
            for s, e in zip(start[idx].tolist(), stop[idx].tolist()):
                if s - at >= size:
                    break
                at = max(at, -(-e // ALIGN) * ALIGN)
        offsets[j] = at
        start[j], stop[j] = at, at + size
        placed[j] = True
    return offsets


#: plans with more units keep the order they were distributed in
MAX_SCHEDULED = 5000
#: a buffer touched by more units keeps their order whatever bytes each touches
MAX_APART = 64


def _extent(a: np.ndarray) -> tuple[int, int]:
    """The bytes of its memory an array may touch: [first, past the last)."""
    lo = hi = _address(a)
    if a.size == 0:
        return lo, lo
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += s * (n - 1)
        else:
            hi += s * (n - 1)
    return lo, hi + a.itemsize


class _Span:
    """What a unit does to one buffer: the arrays it touches, those it may write, and the bytes
    it writes over entirely (its C-contiguous written arrays: their extents)."""

    __slots__ = ("touched", "written", "whole")

    def __init__(self) -> None:
        self.touched: list[np.ndarray] = []
        self.written: list[np.ndarray] = []
        self.whole: list[tuple[int, int]] = []

    def write(self, a: np.ndarray) -> None:
        self.written.append(a)
        if a.flags.c_contiguous:
            self.whole.append(_extent(a))

    def extent(self) -> tuple[int, int]:
        """The bytes it may touch, first to past the last."""
        spans = [_extent(a) for a in self.touched if a.size]
        return (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else (0, 0)

    def covers(self, other: "_Span") -> bool:
        """Whether it writes over every byte ``other`` touches."""
        lo, hi = other.extent()
        return any(a <= lo and hi <= b for a, b in self.whole)


def _overlap(xs: list, ys: list) -> bool:
    """Whether an array of ``xs`` and one of ``ys`` share a byte (exactly, for strided slices
    side by side: the gates' slices of one assembled gradient; when that is too hard to tell,
    yes)."""
    for a in xs:
        for b in ys:
            if not np.may_share_memory(a, b):
                continue
            try:
                if np.shares_memory(a, b, max_work=SHARE_WORK):
                    return True
            except np.exceptions.TooHardError:
                return True
    return False


#: the bound of the work ``np.shares_memory`` may do to tell whether two views overlap
SHARE_WORK = 1000


def _spans(instrs: list) -> dict[int, _Span]:
    """Owner id → what a unit's instructions do to it: the outputs of calls whose effect is
    known (``_effects``) are written, every argument of the others may be."""
    out: dict = {}

    def span(a):
        k = id(_owner(a))
        s = out.get(k)
        if s is None:
            s = out[k] = _Span()
        return s

    for i in instrs:
        found: list = []
        arrays_in(i.args, found)
        if isinstance(i, Loop):                      # (its rows: all of each buffer, written)
            for o in {id(_owner(a)): _owner(a) for a in found}.values():
                s = span(o)
                s.touched.append(o)
                s.write(o)
            continue
        eff = _effects(i.fn, i.args)
        written = found if eff is None else [a for a in eff[1] if isinstance(a, np.ndarray)]
        for a in found:
            span(a).touched.append(a)
        for a in written:
            span(a).write(a)
    return out


def _ordered(users: list[int], spans: list[_Span]):
    """Pairs (earlier, later) of the units touching one buffer that must keep their order:
    those touching common bytes one of them may write (rows of one slab written by different
    units — a peeled step, the regular ones —, slices of one assembled gradient: units writing
    disjoint slices, and units only reading, are free to move past each other). Each later
    unit is tied to the earlier ones back to one writing over all the bytes it touches (the
    units before conflict with that one, and are behind it)."""
    if len(users) > MAX_APART:
        return zip(users, users[1:])
    pairs = []
    for j in range(1, len(users)):
        sj = spans[j]
        for i in range(j - 1, -1, -1):
            si = spans[i]
            if _overlap(si.written, sj.touched) or _overlap(si.touched, sj.written):
                pairs.append((users[i], users[j]))
                if si.covers(sj):
                    break
    return pairs


def schedule(code: list, pinned: set[int], chunks: list[int] | None = None) -> list[int]:
    """An order of the units ``code`` that keeps memory low: the positions of the units, in the
    order to run them.

    Units that touch common bytes of a buffer, one of them writing, keep their order (that is
    always safe; ``_ordered``); among the units free to run, the one that adds the fewest bytes
    — buffers it touches first, less buffers it touches last — runs next (ties: the
    distributed order). A buffer written in parts by several units (an assembled gradient,
    each gate's slice written by its own units) counts against each of its writers its share
    only: whichever starts it, the others write into it for free, so the first is not put off
    while the transient values the others free pile up. What this moves: the off-path factors
    of a backward pass computed while the forward values they read are alive, each
    derivative slab consumed right after it is made, the peeled first step of a backward loop
    run just before the loop rather than where it was built.

    ``chunks`` gives each unit the rank of the chunk of steps it belongs to (strip.py; -1 for
    none): a unit of an earlier chunk runs first whatever its bytes, so that a chunk's values
    die before the next chunk's are made."""
    n = len(code)
    rank = chunks if chunks is not None else [0] * n
    if n > MAX_SCHEDULED:
        return list(range(n))
    touches: list[dict[int, int]] = []               # unit → {owner id: bytes}
    users: dict[int, list[int]] = {}                 # owner id → units touching it, in order
    spans: dict[tuple[int, int], _Span] = {}         # (owner id, unit) → what it does there
    for u, instrs in enumerate(code):
        found: list = []
        for i in instrs:
            arrays_in(i.args, found)
        mine = {}
        for a in found:
            o = _owner(a)
            k = id(o)
            if k not in mine:
                mine[k] = 0 if k in pinned or o.nbytes < SMALL else o.nbytes
                users.setdefault(k, []).append(u)
        for k, span in _spans(instrs).items():
            spans[k, u] = span
        touches.append(mine)
    # units writing each buffer: a buffer written in parts by several units (the slices of an
    # assembled gradient) counts against each its share only
    writers = {k: max(1, sum(1 for u in us if spans[k, u].written)) for k, us in users.items()}
    waiting = [0] * n                                # predecessors not yet run
    after: list[list[int]] = [[] for _ in range(n)]
    for k, us in users.items():
        for a, b in _ordered(us, [spans[k, u] for u in us]):
            after[a].append(b)
            waiting[b] += 1
    left = {k: len(us) for k, us in users.items()}   # units still to touch each owner
    started: set[int] = set()
    ready = [u for u in range(n) if waiting[u] == 0]
    order = []
    while ready:
        best, cost = None, None
        for u in ready:
            c = 0
            for k, size in touches[u].items():
                if k not in started:
                    c += size / writers[k]
                if left[k] == 1:
                    c -= size
            c = (rank[u], c, u)
            if cost is None or c < cost:
                best, cost = u, c
        ready.remove(best)
        order.append(best)
        for k in touches[best]:
            started.add(k)
            left[k] -= 1
        for v in after[best]:
            waiting[v] -= 1
            if waiting[v] == 0:
                ready.append(v)
    return order if len(order) == n else list(range(n))
