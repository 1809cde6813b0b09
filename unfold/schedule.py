"""Schedules: in which order a compiled graph computes its nodes, and when each value is freed.

The plain schedule computes every node once, inputs before users, and frees each value right after
its last reader — so back-propagation through time holds O(τ) values, not O(nodes).

The checkpointed schedule (``checkpoint=k``) trades compute for memory on an unfolded graph. Steps
are cut into segments of k; a forward value is stored only if a later segment reads it (the state
at every k-th step: the checkpoints). Every other forward value is freed after its last forward
reader, and when the backward pass first needs a value of segment s, the forward nodes of s that
the backward pass reads are recomputed from the checkpoints. The gradient graph is unchanged and
the recomputation runs the same ops on the same inputs, so the results are bit-identical to the
plain schedule; with k ≈ √τ the memory is O(√τ): τ/k checkpoints and one segment's k steps. So
that nothing else is O(τ), each step of a fed sequence is sliced right before its reader (not all
τ views up front), and a run keeps its values in registers (``registers``): slots shared by
values not alive at the same time, as many as the most values alive at once — not one per node.

The backward nodes run demand-driven (``as_late_as_possible``): a gradient node larger than its
inputs — an outer product waiting for its accumulation chain — is computed right before its first
reader, not where the gradient graph was built. And at most ``RESIDENT`` recomputed segments are
held: a backward pass that comes back to a segment (the second, opposite backward chain of a
bidirectional net) recomputes it again. There, what stays O(τ) is a few gradient vectors per step
that the second chain's accumulations read (the sums' order is fixed by the gradient graph:
changing it would change the bits).
"""
from __future__ import annotations

from typing import Collection, NamedTuple, Sequence

from .graph import Node
from .ops.base import ALIAS, is_placeholder


#: recomputed segments held at once: recomputing one more drops the oldest (recomputed anew if the
#: backward pass comes back to it: a bidirectional net's second backward chain)
RESIDENT = 2


def plain(order: Sequence[Node]) -> list[int]:
    """Every computed node once, in topological order (placeholders are fed, and aliases share
    their input's value: neither is scheduled)."""
    return [i for i, node in enumerate(order) if not _unscheduled(node)]


def _unscheduled(node: Node) -> bool:
    return node.op is ALIAS or (not node.inputs and is_placeholder(node))


def checkpointed(order: Sequence[Node], reads: Sequence[tuple[int, ...]], keep: set[int],
                 k: int, fetched: Collection[int] = ()) -> list[int]:
    """The plain order, with segments of forward nodes recomputed before the backward pass reads
    them (see the module docstring). ``fetched``: fed values sliced from their sequence right
    before each reader (an entry of their own), instead of all held from the start."""
    n = len(order)
    fetch = [False] * n
    for j in fetched:
        fetch[j] = True
    forward = [node.step is not None and node.adjoint is None and bool(node.inputs)
               for node in order]
    segment = [(node.step - 1) // k if f else -1 for node, f in zip(order, forward)]
    backward_read = [False] * n
    last_forward_read = [-1] * n
    kept = [i in keep for i in range(n)]
    for i, node in enumerate(order):
        for j in reads[i]:
            if j >= n:
                continue
            if node.adjoint is not None:
                backward_read[j] = True
            else:
                last_forward_read[j] = i
                if forward[j] and (not forward[i] or segment[i] != segment[j]):
                    kept[j] = True                   # crosses a segment boundary: a checkpoint
    recomputable = [forward[i] and not kept[i] for i in range(n)]
    wanted: dict[int, list[int]] = {}                # segment → its values the backward reads
    for i in range(n):
        if recomputable[i] and backward_read[i]:
            wanted.setdefault(segment[i], []).append(i)

    live = [False] * n
    done: set[int] = set()
    resident: dict[int, set[int]] = {}           # recomputed segment → what it made live
    sequence: list[int] = []

    def emit(i: int) -> None:
        for j in dict.fromkeys(reads[i]):
            if j < n and fetch[j]:
                sequence.append(j)                   # a view of the fed sequence, for i alone
        sequence.append(i)
        live[i] = True

    def recompute(s: int) -> None:
        while len(resident) >= RESIDENT:             # the oldest segment is recomputed anew
            for j in resident.pop(next(iter(resident))):    # if it is needed again
                live[j] = False
        need, stack = set(), [j for j in wanted.get(s, ()) if not live[j]]
        while stack:
            j = stack.pop()
            if j in need:
                continue
            need.add(j)
            stack.extend(x for x in reads[j] if x < n and recomputable[x] and not live[x])
        for j in sorted(need):
            emit(j)
        done.add(s)
        resident[s] = need

    for i in as_late_as_possible(order, reads, keep):
        node = order[i]
        if fetch[i]:
            continue
        if _unscheduled(node):
            live[i] = True
            continue
        for j in reads[i]:
            if j < n and not live[j] and not fetch[j]:
                if not recomputable[j]:
                    raise AssertionError(f"checkpoint schedule lost {order[j]!r}")
                recompute(segment[j])
        emit(i)
        for j in reads[i] + (i,):
            # a forward instance dies after its last forward reader (the backward pass will read
            # a recomputed instance); recomputed instances live until liveness frees them
            if j < n and recomputable[j] and segment[j] not in done and \
                    last_forward_read[j] <= i:
                live[j] = False
    return sequence


def as_late_as_possible(order: Sequence[Node], reads: Sequence[tuple[int, ...]],
                        keep: Collection[int]) -> list[int]:
    """The nodes in an order where a gradient node larger than its inputs comes right before its
    first reader (the others, and the outputs, keep their places): demand-driven, so that a
    value the backward pass needs only much later — an outer product ∇W(t) = ∇a(t) h(t−1)ᵀ
    waiting for its accumulation chain — is not computed, and held, long before (its smaller
    inputs are held instead). Sorting by (the first reader's place, own place) keeps every
    input before its readers."""
    n = len(order)
    first = list(range(n))                          # the place of a node's first reader
    readers: list[list[int]] = [[] for _ in range(n)]
    for i, node in enumerate(order):
        if not _unscheduled(node):
            for j in reads[i]:
                if j < n:
                    readers[j].append(i)
    for i in range(n - 1, -1, -1):
        node = order[i]
        if readers[i] and node.adjoint is not None and i not in keep and node.size > sum(
                order[j].size for j in set(reads[i]) if j < n and not _unscheduled(order[j])):
            first[i] = min(first[c] for c in readers[i])
    return sorted(range(n), key=lambda i: (first[i], i))


def frees(sequence: Sequence[int], reads: Sequence[tuple[int, ...]], keep: set[int],
          fed: Sequence[int], once: bool = False) -> list[tuple[int, ...]]:
    """For each entry of ``sequence``, the values to free right after it: each instance of a
    value (a computation, or a recomputation) dies after its last reader; ``keep`` (the outputs)
    is never freed. ``once``: the sequence computes every value once (a plain schedule)."""
    n = len(reads)
    if once:
        return _frees_once(sequence, reads, keep, fed)
    writer = [-2] * (n + 1)                   # value → the entry that wrote its live instance
    for j in fed:
        writer[j] = -1
    last_read = [-1] * len(sequence)          # entry → the last entry reading what it wrote
    fed_last: dict[int, int] = {}
    for p, i in enumerate(sequence):
        for j in reads[i]:
            w = writer[j]
            if w >= 0:
                last_read[w] = p
            elif w == -1:
                fed_last[j] = p
        writer[i] = p
    out: list[list[int]] = [[] for _ in sequence]
    for p, i in enumerate(sequence):
        if i in keep and writer[i] == p:
            continue                          # an output's final value is returned
        out[max(last_read[p], p)].append(i)   # never read: freed right after it is computed
    for j, p in fed_last.items():
        if j not in keep:
            out[p].append(j)
    return [tuple(f) for f in out]


def _frees_once(sequence: Sequence[int], reads: Sequence[tuple[int, ...]], keep: set[int],
                fed: Sequence[int]) -> list[tuple[int, ...]]:
    """``frees`` for a sequence that computes every value once: free after the last reader."""
    entry = {i: p for p, i in enumerate(sequence)}
    last = dict.fromkeys(sequence, -1)
    last.update(dict.fromkeys(fed, -1))
    for p, i in enumerate(sequence):
        for j in reads[i]:
            last[j] = p
    last.pop(len(reads), None)                # the slot standing for unread (meta) inputs
    out: list[list[int]] = [[] for _ in sequence]
    for j, p in last.items():
        if j in keep or j not in entry and p < 0:
            continue                          # an output, or a fed value nobody reads
        out[p if p >= 0 else entry[j]].append(j)
    return [tuple(f) for f in out]


class Registers(NamedTuple):
    """A schedule with each value instance in a register (a slot of the run's list) that values
    not alive at the same time share: a run holds O(peak live values) slots, not O(nodes)."""
    writes: list[int]                 # entry → the register it writes
    reads: list[tuple[int, ...]]      # entry → the registers of the values it reads
    frees: list[tuple[int, ...]]      # entry → the registers to clear after it
    fed: dict[int, int]               # fed value → its register
    kept: dict[int, int]              # kept value (an output) → the register of its final value
    count: int                        # how many registers (register 0 is always None)


def registers(sequence: Sequence[int], reads: Sequence[tuple[int, ...]],
              free_lists: Sequence[tuple[int, ...]], fed: Sequence[int],
              keep: Collection[int]) -> Registers:
    """Registers for a schedule (``sequence`` with ``free_lists`` from ``frees``): a value's
    register is taken when it is computed (or fed) and given back when it is freed. Register 0
    stands for the slot ``len(reads)``, which is never written (inputs whose value is unread)."""
    held = {len(reads): 0}            # value → the register of its live instance
    spare: list[int] = []
    count = 1

    def take(j: int) -> int:
        nonlocal count
        if j in held:
            raise AssertionError(f"schedule writes value {j} while it is still held")
        if spare:
            held[j] = spare.pop()
        else:
            held[j], count = count, count + 1
        return held[j]

    fed_regs = {j: take(j) for j in fed}
    writes, ins, gone = [], [], []
    for i, free in zip(sequence, free_lists):
        ins.append(tuple([held[j] for j in reads[i]]))
        writes.append(take(i))
        freed = tuple([held.pop(j) for j in free])
        spare.extend(freed)
        gone.append(freed)
    return Registers(writes, ins, gone, fed_regs, {j: held[j] for j in keep if j in held}, count)


def peak(sequence: Sequence[int], free_lists: Sequence[tuple[int, ...]], sizes: Sequence[int],
         fed: Sequence[int]) -> int:
    """The largest number of elements (per example) held at once by a schedule."""
    held = {j: sizes[j] for j in fed}
    total = best = sum(held.values())
    for i, gone in zip(sequence, free_lists):
        total += sizes[i] - held.get(i, 0)
        held[i] = sizes[i]
        best = max(best, total)
        for j in gone:
            total -= held.pop(j, 0)
    return best
