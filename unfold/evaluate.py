"""The executor: a graph compiled once into a flat schedule, then run on numpy arrays.

``compile(nodes)`` orders the graph (inputs before users), finds each value's last reader so it can
be freed right after, and learns how the graph may be fed: by placeholder node, by name, or — for
an unfolded recurrence — by the folded sequence node, whose array is sliced along time for the
per-step inputs ``x(1) … x(τ)``. For each pattern of batched feeds it then fixes, once, which op
runs batched and which bookkeeping ops reduce to aliases.
"""
from __future__ import annotations

import math
import operator
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import schedule, timebatch
from .errors import (FeedError, UnfoldError, UnfoldTypeError, UnfoldValueError, as_raised,
                     describe)
from .feed import Feeds
from .graph import Node, Op, Walked, gc_paused, walk
from .ops.base import ALIAS, is_placeholder

_KERNEL, _FORWARD, _BATCHED, _ALIAS, _FETCH = 0, 1, 2, 3, 4
#: how a program runs: time-batched (the default) or node by node (the reference)
MODES = ("batched", "reference")
#: time-batched plans kept per program (one per pattern of batched feeds and batch size)
_PLANS = 4
#: graphs with more nodes are time-batched only when most of their nodes are tagged with a step
UNTIMED_NODES = 10_000


class Program:
    """A compiled graph: call it with a feed to get the outputs' values."""

    def __init__(self, outputs: Sequence[Node], checkpoint: int | str | None = None,
                 mode: str = "batched") -> None:
        if mode not in MODES:
            raise UnfoldValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.outputs = tuple(outputs)
        # the graph, found once: a list indexed by ``top − serial`` (kept until it is planned)
        self._walk = walk(self.outputs)
        order, self._top, self.placeholders, self.n_nodes, _ = self._walk
        self.feeds = Feeds(self.placeholders, self)
        checkpoint = _checkpoint(checkpoint)
        if checkpoint == "sqrt":
            steps = max((n.step for n in order if n is not None and n.step is not None),
                        default=1)
            checkpoint = max(1, math.isqrt(steps - 1) + 1)
        self.checkpoint: int | None = checkpoint
        self._schedule: tuple | None = None
        self._nodes: tuple | None = None
        self._plans: dict[tuple, tuple] = {}
        self._batched_plans: OrderedDict[tuple, Any] = OrderedDict()
        # how a time-batched run is fed: whole sequences (each with its step copies) and the
        # placeholders fed one by one
        self._sequence_copies = list(self.feeds._sliced.items())
        self._direct = self.feeds._direct
        self._signatures: dict[tuple, tuple] = {}

    # --- the graph, node by node (the reference schedule) ----------------------------------------

    def _walked_order(self) -> tuple[list, int, dict]:
        """The graph as a list indexed by ``top − serial`` (None for serial numbers of other
        graphs), ``top`` (the outputs' largest serial number), and the places of the nodes set
        apart beyond a gap (``graph.walk``)."""
        if self._walk is None:
            self._walk = walk(self.outputs)
        return self._walk[0], self._walk[1], self._walk[4]

    def _take_walk(self) -> tuple[list, int, dict]:
        """The walk for a planner that consumes it (the program walks again if it needs it
        later)."""
        walked = self._walked_order()
        self._walk = None
        return walked

    def _per_node(self):
        """The per-node structures of the reference schedule, made when first needed: the
        order, each node's position, each node's inputs as positions (``_positions``), and the
        positions it reads (``_reads``: there, the extra last slot — always None — stands for
        inputs whose value is never read, so they are not kept alive). An alias (a dummy copy
        W(t), a named value) shares its input's slot: it is never run, its readers read the
        value it stands for."""
        if self._nodes is None:
            walked = self._walked_order()[0]
            order = [n for n in reversed(walked) if n is not None]
            index = {node: i for i, node in enumerate(order)}
            none = len(order)
            root: list[int] = []
            positions, reads = [], []
            for i, node in enumerate(order):
                ins = tuple([root[index[x]] for x in node.inputs])
                root.append(ins[0] if node.op is ALIAS else i)
                positions.append(ins)
                meta = node.op.meta_inputs
                reads.append(ins if not meta else
                             tuple(none if k in meta else j for k, j in enumerate(ins)))
            slot = [root[index[node]] for node in self.outputs]
            self._nodes = (order, index, positions, reads, slot)
        return self._nodes

    @property
    def order(self) -> list[Node]:
        """Every node of the graph, inputs before users, in the order they were built."""
        return self._per_node()[0]

    @property
    def _index(self) -> dict[Node, int]:
        return self._per_node()[1]

    @property
    def _positions(self) -> list[tuple[int, ...]]:
        return self._per_node()[2]

    @property
    def _reads(self) -> list[tuple[int, ...]]:
        return self._per_node()[3]

    @property
    def _slot(self) -> list[int]:
        return self._per_node()[4]

    def __contains__(self, node: Node) -> bool:
        return node in Walked(*self._walked_order())

    def _node_schedule(self) -> tuple[list[int], list[tuple[int, ...]]]:
        """The per-node schedule — the order of computation (with recomputations when
        checkpointing) and the frees after each entry — made when first needed (a time-batched
        program needs it only to name a failing node)."""
        if self._schedule is None:
            keep = set(self._slot)
            fed = [self._index[p] for p in self.placeholders]
            if self.checkpoint is None:
                sequence = schedule.plain(self.order)
            else:
                # the steps of a sequence are sliced from it right before each reader: holding
                # every step's view from the start would be O(τ)
                fetched = {j for copies in self.feeds._sliced.values() for c in copies
                           if (j := self._index[c]) not in keep}
                fed = [j for j in fed if j not in fetched]
                sequence = schedule.checkpointed(self.order, self._reads, keep, self.checkpoint,
                                                 fetched)
            frees = schedule.frees(sequence, self._reads, keep, fed, once=self.checkpoint is None)
            self._schedule = (sequence, frees, fed)
        return self._schedule

    def peak_elements(self) -> int:
        """The most array elements (per example) this program computes and holds at once — what
        liveness and checkpointing save. Fed values and aliases (which share memory) count 0."""
        sizes = [0 if n.op is ALIAS or is_placeholder(n) else n.size for n in self.order]
        return schedule.peak(*self._node_schedule()[:2], sizes, [])

    # --- running --------------------------------------------------------------------------------

    def __call__(self, feed: Mapping[Any, Any]) -> list[np.ndarray]:
        with gc_paused():
            if self.mode == "batched" and self.checkpoint is None:
                out = self._run_batched(feed)
                if out is not None:
                    return out
            if self.checkpoint is not None:
                found = self.feeds.resolve_sequences(feed)
                if found is not None:
                    return self._run(*found)
            return self._run(self.feeds.resolve(feed))

    def _run_batched(self, feed: Mapping[Any, Any]) -> list[np.ndarray] | None:
        """The time-batched run, fed sequences whole; None to take the general path."""
        found = self.feeds.resolve_sequences(feed)
        if found is None:
            return None
        values, sequences = found
        flags, batch = [], None
        for source, copies in self._sequence_copies:
            a = sequences[source]
            flag = a.ndim == copies[0].ndim + 2
            flags.append(flag)
            if flag:
                if batch is not None and batch != a.shape[1]:
                    return None
                batch = a.shape[1]
        for p in self._direct:
            v = values[p]
            flag = v.ndim == p.ndim + 1
            flags.append(flag)
            if flag:
                if batch is not None and batch != v.shape[0]:
                    return None
                batch = v.shape[0]
        short = tuple(flags)
        signature = self._signatures.get(short)
        if signature is None:
            of_source = dict(zip((s for s, _ in self._sequence_copies), flags))
            of_direct = dict(zip(self._direct, flags[len(self._sequence_copies):]))
            signature = self._signatures[short] = tuple(
                of_direct[p] if p in of_direct else of_source[p.source]
                for p in self.placeholders)
        plan = self._batched_plan(signature, batch)
        if plan is None:
            return None
        try:
            return plan.run(values, sequences)
        except Exception:
            if timebatch.STRICT:
                raise
            return None

    def _run(self, values: dict[Node, np.ndarray],
             sequences: Mapping[Node, np.ndarray] | None = None) -> list[np.ndarray]:
        """The per-node run. ``values``: each placeholder's array, or — with ``sequences``, the
        folded sequences fed whole — those of the placeholders fed one by one."""
        def fetch(p: Node) -> np.ndarray:
            v = values.get(p)
            return sequences[p.source][p.step - 1] if v is None else v

        batch, signature = None, []
        for p in self.placeholders:
            v = values.get(p)
            if v is None:               # (a step of a sequence: its batch is the second axis)
                s = sequences[p.source]
                batched, size = s.ndim == p.ndim + 2, s.shape[1:2]
            else:
                batched, size = v.ndim == p.ndim + 1, v.shape[:1]
            signature.append(batched)
            if batched:
                if batch is None:
                    batch = size[0]
                elif size[0] != batch:
                    raise FeedError(f"{p.label!r} is fed with a batch of {size[0]} but "
                                    f"another input with a batch of {batch}; all batched inputs "
                                    f"of one evaluation share the batch size")
        signature = tuple(signature)
        if self.mode == "batched" and self.checkpoint is None:
            fast = self._batched_plan(signature, batch)
            if fast is not None:
                try:
                    return fast.run(values)
                except Exception:
                    # the per-node schedule names the node and step that failed
                    if timebatch.STRICT:
                        raise
        found = self._plans.get(signature)
        if found is None:
            found = self._plans[signature] = self._plan(signature)
        plan, regs = found
        slots: list[Any] = [None] * regs.count               # register 0 stays None
        for j, r in regs.fed.items():
            slots[r] = fetch(self.order[j])
        node = None
        try:
            for i, mode, node, op, ins, flags, frees in plan:
                if mode == _KERNEL:                 # op is a plain function of the values
                    if len(ins) == 2:
                        slots[i] = op(slots[ins[0]], slots[ins[1]])
                    else:
                        slots[i] = op(*[slots[j] for j in ins])
                    if frees:
                        for j in frees:
                            slots[j] = None
                    continue
                args = [slots[j] for j in ins]
                if mode == _FORWARD:
                    slots[i] = op.forward(node, *args)
                elif mode == _BATCHED:
                    slots[i] = op.batched(node, args, flags, batch)
                elif mode == _FETCH:
                    slots[i] = fetch(node)
                else:
                    slots[i] = args[0]
                for j in frees:
                    slots[j] = None
        except UnfoldError:
            raise
        except Exception as exc:  # a numpy failure deep inside: say where it happened
            raise as_raised(exc, f"evaluating {describe(node)} failed: {type(exc).__name__}: "
                                 f"{exc}") from exc
        fed = {id(_root(v)) for v in values.values()}
        fed.update(id(_root(v)) for v in (sequences or {}).values())
        return [_owned(slots[regs.kept[j]], fed) for j in self._slot]

    def _batched_plan(self, signature: tuple[bool, ...], batch: int | None):
        key = (signature, batch)
        if key in self._batched_plans:
            self._batched_plans.move_to_end(key)
            return self._batched_plans[key]
        try:
            plan = timebatch.plan(self, signature, batch) if self._has_time() else None
        except MemoryError:         # buffers too large: the node path names what failed
            plan = None
        except Exception:           # a graph the planner cannot handle: the per-node schedule
            if timebatch.STRICT:    # computes it (as when a time-batched run fails)
                raise
            plan = None
        self._batched_plans[key] = plan
        while len(self._batched_plans) > _PLANS:
            self._batched_plans.popitem(last=False)
        _trim_cache()
        return plan

    def _has_time(self) -> bool:
        """Whether the graph is worth planning: small, or most of its nodes tagged with a step
        (an unfolded graph and its gradient). A large graph without time structure — a long
        chain built by hand — runs node by node, with no planning cost (a sample decides)."""
        if self.n_nodes <= UNTIMED_NODES:
            return True
        walked = self._walked_order()[0]
        # (at random places: a regular stride can land on one node of each step, the period of
        # an unfolded graph)
        where = random.Random(0).sample(range(len(walked)), min(1000, len(walked)))
        sample = [walked[k] for k in where if walked[k] is not None]
        return 2 * sum(n.step is not None for n in sample) > len(sample)

    @property
    def nbytes(self) -> int:
        """About how much memory this program keeps alive: its graph and its plans' buffers."""
        return _NODE_BYTES * self.n_nodes + sum(
            p.nbytes + 200 * p.instructions for p in self._batched_plans.values()
            if p is not None)

    def release(self) -> None:
        """Drop the time-batched plans (their buffers) and the per-node structures; the next
        call plans again."""
        self._batched_plans.clear()
        self._plans.clear()
        self._nodes = self._schedule = None

    def _plan(self, signature: tuple[bool, ...]) -> tuple[list, schedule.Registers]:
        """The schedule for one pattern of batched feeds: ``(register, mode, node, op, registers
        read, flags, registers freed)`` per entry of the sequence, and its registers."""
        batched = [False] * len(self.order)
        for p, flag in zip(self.placeholders, signature):
            batched[self._index[p]] = flag
        modes: list[int] = [_FORWARD] * len(self.order)
        flags_of: list[tuple] = [()] * len(self.order)
        kernels: list = [None] * len(self.order)
        order, positions = self.order, self._positions
        sequence, frees_of, fed = self._node_schedule()
        for i in sequence:
            node = order[i]
            op = node.op
            if not node.inputs and is_placeholder(node):
                modes[i] = _FETCH           # a step of a sequence, sliced for its reader
                continue
            flags = tuple([batched[j] for j in positions[i]])
            if True in flags:
                batched[i] = op.out_batched(node, flags)
            if type(op).is_identity is not Op.is_identity and op.is_identity(node, flags):
                modes[i] = _ALIAS
            else:
                kernels[i] = op.kernel(node, flags)
                if kernels[i] is not None:
                    modes[i] = _KERNEL
                elif batched[i] or True in flags:
                    modes[i] = _BATCHED
            flags_of[i] = flags
        regs = schedule.registers(sequence, self._reads, frees_of, fed, set(self._slot))
        return [(r, modes[i], order[i], kernels[i] or order[i].op, ins, flags_of[i], frees)
                for i, r, ins, frees in zip(sequence, regs.writes, regs.reads, regs.frees)], regs


def _owned(value: Any, fed: set[int]) -> np.ndarray:
    """An output array the caller may write to, and that writing to a fed array leaves alone:
    broadcast views, constants, fed values and views of them (an output that is an input,
    ``x(t)``, ``W(t)``, ``reshape(x)``; ``fed``: the ids of the fed arrays' memory) are copied."""
    array = np.asarray(value)
    return array if array.flags.writeable and id(_root(array)) not in fed else array.copy()


def _root(a: Any) -> Any:
    """The array owning the memory of ``a`` (through views of views)."""
    while isinstance(a, np.ndarray) and isinstance(a.base, np.ndarray):
        a = a.base
    return a


# the most recently used programs: at most 16, and at most CACHE_BYTES held in all (a program holds
# its whole graph alive, and each of its time-batched plans its buffers)
_CACHE: OrderedDict[tuple, Program] = OrderedDict()
_CACHE_PROGRAMS = 16
#: the most memory the program cache keeps alive (estimated: graph nodes and plan buffers)
CACHE_BYTES = 512 * 2**20
#: what one node of a compiled graph costs to keep (the node, its program entries), estimated
_NODE_BYTES = 400


def clear_cache() -> None:
    """Forget every compiled program (``compile`` and ``evaluate`` keep the most recent ones, with
    their graphs and buffers, bounded by ``CACHE_BYTES``): release their memory now — their
    plans' buffers too, for a program the caller still holds (it plans again when called)."""
    for program in _CACHE.values():
        program.release()
    _CACHE.clear()


def _trim_cache() -> None:
    while len(_CACHE) > 1 and (len(_CACHE) > _CACHE_PROGRAMS or
                               sum(p.nbytes for p in _CACHE.values()) > CACHE_BYTES):
        _CACHE.popitem(last=False)


def compile(nodes: Sequence[Node], checkpoint: int | str | None = None,
            mode: str = "batched") -> Program:
    """The compiled program of ``nodes`` (cached: compiling the same outputs again is free).

    ``checkpoint=k`` (or ``"sqrt"`` for k ≈ √τ) schedules an unfolded graph's backward pass with
    checkpointing: only every k-th step's states are stored, the rest is recomputed when needed —
    the same values, bit for bit, in O(τ/k + k) memory: O(√τ) for k ≈ √τ (k ≥ τ is one segment,
    the memory of the plain schedule). A checkpointed program runs the per-node schedule (as
    ``mode="reference"``), not the time-batched plan: batching a group over all τ steps needs
    its τ inputs and outputs at once — the O(τ) memory checkpointing exists to avoid — so it
    trades speed for memory twice.
    """
    nodes = tuple(nodes)
    for n in nodes:
        if not isinstance(n, Node):
            raise UnfoldTypeError(f"evaluate: outputs must be nodes, got {type(n).__name__}")
    if not isinstance(mode, str):
        raise UnfoldValueError(f"mode must be one of {MODES}, got {mode!r}")
    key = (nodes, _checkpoint(checkpoint), mode)
    program = _CACHE.get(key)
    if program is None:
        with gc_paused():
            program = _CACHE[key] = Program(key[0], key[1], mode)
        _trim_cache()
    else:
        _CACHE.move_to_end(key)
    return program


def _checkpoint(k: Any) -> int | str | None:
    """``checkpoint=`` checked: None, "sqrt", or a positive number of steps (a Python or numpy
    integer; not a bool, not a float)."""
    if k is None or isinstance(k, str) and k == "sqrt":
        return k
    if not isinstance(k, (bool, np.bool_)):
        try:
            steps = operator.index(k)
        except TypeError:
            steps = None
        if steps is not None and steps >= 1:
            return steps
    hint = " (did you mean 'sqrt'?)" if isinstance(k, str) and \
        k.strip().lower() in ("sqrt", "√", "'sqrt'") else ""
    raise UnfoldValueError(f"checkpoint must be a positive number of steps k (segments of k "
                           f"steps: only every k-th state is kept, the rest recomputed) or 'sqrt' "
                           f"(k ≈ √τ), got {k!r}{hint}; e.g. checkpoint=10 or checkpoint='sqrt'")


def evaluate(nodes: Node | Sequence[Node], feed: Mapping[Any, Any] | None = None, *,
             checkpoint: int | str | None = None, mode: str = "batched") -> list[np.ndarray]:
    """The values of ``nodes`` (a list of arrays, one per node) given ``feed``.

    ``feed`` maps placeholders — or their names — to arrays. An ``input`` may carry one extra
    leading batch axis; an unfolded recurrence's sequence is fed as one array of shape (τ, …) or
    (τ, batch, …) under its folded node or name. See ``compile`` for ``checkpoint``.
    """
    if isinstance(nodes, Node):
        nodes = [nodes]
    try:
        nodes = list(nodes) if not isinstance(nodes, (str, bytes)) else None
    except TypeError:
        nodes = None
    if nodes is None:
        raise UnfoldTypeError("evaluate: give a node or a list of nodes")
    return compile(nodes, checkpoint, mode)({} if feed is None else feed)
