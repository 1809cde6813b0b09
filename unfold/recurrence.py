"""Recurrences: the folded graph of section 10.1, and its unfolding into τ explicit steps.

A user writes the step ``h(t) = f(h(t-1), x(t); θ)`` once::

    rec = Recurrence("rnn")
    x = rec.sequence("x", (m,))              # x(t), one per step
    y = rec.sequence("y", (), dtype="int64")  # targets are sequences too
    h = rec.state("h", (n,))                  # what step t reads: h(t-1) (zeros at t = 1)
    W, U, b = rec.param("W", (n, n)), rec.param("U", (n, m)), rec.param("b", (n,))
    V, c = rec.param("V", (k, n)), rec.param("c", (k,))
    h_t = rec.update(h, unfold.tanh(b + W @ h + U @ x))   # the delay edge h(t) → h(t+1)
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", unfold.cross_entropy(o, y))

``rec.unfold(τ)`` copies the step τ times. State reads become the previous step's values, every
sequence gets a per-step input ``x(t)``, and every shared parameter ``W`` reaches step ``t`` only
through its dummy copy ``W(t)`` (section 10.2.2), so that back-propagation through time yields
``∇W = Σ_t ∇W(t)`` as explicit nodes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import arguments, graph
from .errors import RecurrenceError, UnfoldKeyError, UnfoldTypeError, as_raised, describe
from .graph import (MANY, _NO_ATTRS, Meta, Node, _Filling, _adjoint_of, _batch_flag, _make,
                    _object_new, at, gc_paused, substitute, topological)
from .graph import meta as shared_meta
from .grad import added
from .timebatch.flat import Constants, generated
from .ops import batch_sum, cast, constant, greater, maximum, stop_gradient, where
from .ops.elementwise import WHERE
from .ops.base import (ALIAS, CONSTANT, INPUT, PARAM, Placeholder, _check_name, _check_shape,
                       check_dtype, named, unmasked)
from .ops.base import input as leaf_input, param as leaf_param


#: the leaf standing for a state's past value, h(t−d), inside the folded step
STATE = Placeholder("state")
_PARAM, _INPUT, _OTHER = -1, -2, -3    # recipe kinds: leaves copied at every step, special ops
#: whether unfolding makes each step's copies with one generated function of the step's recipes
#: (False: the loop of ``_copy_step``, the reference)
GENERATED = True

#: the name of the engine's own input, the padding mask of ``unfold(τ, mask=True)``, which no
#: variable may take (the inputs of ``unfold(τ, history=True)`` are named ``h(0)``, ``h(-1)``…
#: but fed by node, so a variable of that name is only ambiguous when fed by name — a clear
#: error, from the feed)
RESERVED = "mask"


def _check_node(value: Any, what: str) -> None:
    if not isinstance(value, Node):
        raise UnfoldTypeError(f"{what}: the value must be a node of the step (built from the "
                              f"recurrence's sequences, states, params and ops), got "
                              f"{type(value).__name__} {value!r}; wrap a fixed array in "
                              f"unfold.constant")


def check_loss(name: str, value: Any) -> None:
    """A loss is a floating-point node, a scalar per example."""
    _check_node(value, f"loss {name!r}")
    if value.shape != ():
        raise RecurrenceError(f"loss {name!r} must be a scalar per example, got "
                              f"{describe(value)}; reduce it, e.g. with unfold.sum")
    if value.dtype.kind != "f":
        raise RecurrenceError(f"loss {name!r} is {describe(value)}; a loss is a "
                              f"floating-point value (cast it with unfold.cast)")


def _check_steps(name: str, steps: Any) -> tuple[int, ...] | str | None:
    """A loss's steps: None (every step), ``"last"``, ``"first"`` or distinct steps ≥ 1."""
    if steps is None or (isinstance(steps, str) and steps in ("last", "first")):
        return steps
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
        raise RecurrenceError(f"loss {name!r}: steps must be None (every step), 'last', 'first' "
                              f"or a list of steps, got {steps!r}")
    chosen = tuple(arguments.positive_int(f"loss {name!r}: a step", t, error=RecurrenceError)
                   for t in steps)
    if not chosen or len(set(chosen)) != len(chosen):
        raise RecurrenceError(f"loss {name!r}: steps {list(chosen)} must be a non-empty list of "
                              f"distinct steps (a step listed twice would count twice)")
    return chosen


@dataclass(eq=False)          # holds nodes: == between them is element-wise
class _State:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    init: Node
    backward: bool
    reads: dict[int, Node] = field(default_factory=dict)     # delay d → the leaf h(t−d)
    value: Node | None = None                                # the update h(t)

    @property
    def depth(self) -> int:
        """How far back the step reads: the largest delay d of its reads h(t−d)."""
        return max(self.reads, default=1)


class Recurrence:
    """The folded graph of a recurrence: per-step sequences, states with delays, shared
    parameters, context inputs, per-step outputs and losses."""

    def __init__(self, name: str = "recurrence") -> None:
        if not isinstance(name, str):
            raise UnfoldTypeError(f"Recurrence: the name must be a string, got "
                                  f"{type(name).__name__} {name!r}")
        self.name = name
        self.sequences: dict[str, Node] = {}
        self.targets: set[str] = set()          # sequences that are targets (y), not inputs
        self.contexts: dict[str, Node] = {}
        self.params: dict[str, Node] = {}
        self.outputs: dict[str, Node] = {}
        self.losses: dict[str, tuple[Node, tuple[int, ...] | str | None]] = {}
        self.named: dict[str, Node] = {}
        self._states: dict[str, _State] = {}
        self._state_of: dict[Node, _State] = {}

    # --- declarations ----------------------------------------------------------------------------

    def _fresh(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise UnfoldTypeError(f"recurrence {self.name!r}: a variable needs a non-empty "
                                  f"string name, got {type(name).__name__} {name!r}")
        if name == RESERVED:
            raise RecurrenceError(f"recurrence {self.name!r}: the name {name!r} is reserved — "
                                  f"rec.unfold(τ, mask=True) feeds its padding mask under it; "
                                  f"give your variable another name")
        name = _check_name(name)
        taken = (self.sequences, self.contexts, self.params, self.outputs, self.losses,
                 self.named, self._states)
        if any(name in d for d in taken):
            raise RecurrenceError(f"recurrence {self.name!r}: the name {name!r} is already "
                                  f"declared; every variable needs its own name")
        return name

    def _own(self, leaf: Node) -> Node:
        """``leaf`` marked as declared by this recurrence (``attrs["recurrence"]``): in a graph
        that joins recurrences, its qualified name is ``<recurrence>.<name>``."""
        return Node(leaf.op, (), leaf.shape, leaf.dtype, name=leaf.name,
                    attrs={"recurrence": self.name}, may_batch=leaf.may_batch)

    def sequence(self, name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
        """A per-step input ``x(t)`` (inputs and targets alike), fed as one array (τ, …)."""
        node = self.sequences[name] = self._own(leaf_input(self._fresh(name), shape, dtype))
        return node

    def target(self, name: str, shape: Sequence[int] = (), dtype: Any = np.int64) -> Node:
        """A per-step target ``y(t)``: a sequence that losses compare outputs with (drawn above
        the losses, as in Fig. 10.3). Integer class indices by default."""
        node = self.sequence(name, shape, dtype)
        self.targets.add(name)
        return node

    def context(self, name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
        """An input that is the same at every step (the fixed vector ``x`` of Fig. 10.9)."""
        node = self.contexts[name] = self._own(leaf_input(self._fresh(name), shape, dtype))
        return node

    def param(self, name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
        """A parameter shared by every step; unfolding gives it a dummy copy per step."""
        node = self.params[name] = self._own(leaf_param(self._fresh(name), shape, dtype))
        return node

    @arguments.allocates
    def state(self, name: str, shape: Sequence[int] = (), init: Node | None = None,
              dtype: Any = np.float64, backward: bool = False) -> Node:
        """A state ``h``; returns what step ``t`` reads, ``h(t−1)`` (``h(t+1)`` when the
        recurrence runs ``backward`` in time, as the ``g`` of a bidirectional RNN).

        ``init`` is the value before the first step: zeros by default, or any node of the state's
        shape (a param for a learned initial state, a context input, an encoder's output).
        """
        name = self._fresh(name)
        shape = _check_shape(shape, f"state {name!r}")
        dtype = check_dtype(dtype, f"state {name!r}")
        backward = arguments.flag(f"state {name!r}: backward", backward)
        if init is None:
            init = constant(np.zeros(shape, dtype))
        elif not isinstance(init, Node):
            init = unmasked(init, f"state {name!r}: init")
            try:
                array = np.asarray(init)
            except (TypeError, ValueError):
                array = np.asarray(None)
            if array.dtype.kind not in "biuf":
                raise UnfoldTypeError(f"state {name!r}: init must be a node (or an array of "
                                      f"numbers) of shape {shape}, got {type(init).__name__} "
                                      f"{init!r}")
            init = constant(array, dtype)
        if init.shape != shape or init.dtype != dtype:
            raise RecurrenceError(f"state {name!r} is {shape} {dtype} but its init is "
                                  f"{describe(init)}; give an init of the state's shape and dtype")
        st = self._states[name] = _State(name, shape, dtype, init, backward)
        return self.past(st.name, 1)

    def past(self, state: Node | str, delay: int) -> Node:
        """``h(t−d)``: a state read ``delay`` steps back (a skip connection through time,
        section 10.9); ``h(t+d)`` for a backward state."""
        st = self._lookup(state)
        if isinstance(delay, (bool, np.bool_)) or not isinstance(delay, (int, np.integer)):
            raise UnfoldTypeError(f"state {st.name!r}: the delay must be an integer ≥ 1, got "
                                  f"{type(delay).__name__} {delay!r}")
        if delay < 1:
            raise RecurrenceError(f"state {st.name!r}: delay {delay!r} is not a positive integer;"
                                  f" a cycle through a state must pass through a delay of at "
                                  f"least one step")
        delay = int(delay)
        if delay not in st.reads:
            leaf = Node(STATE, (), st.shape, st.dtype, name=st.name, attrs={"delay": delay},
                        may_batch=True)
            st.reads[delay] = leaf
            self._state_of[leaf] = st
        return st.reads[delay]

    def update(self, state: Node | str, value: Node) -> Node:
        """Declare ``h(t) = value`` (the delay edge); returns ``value`` named as the state, the
        node to use downstream (e.g. ``o = c + V @ rec.update(h, tanh(a))``)."""
        st = self._lookup(state)
        _check_node(value, f"update of state {st.name!r}")
        if value is st.reads.get(1):
            raise RecurrenceError(f"update of state {st.name!r}: h(t) = h(t−1) — the state "
                                  f"would never change from its init; a value that is the same "
                                  f"at every step is a context (rec.context) or a constant")
        if st.value is not None:
            raise RecurrenceError(f"state {st.name!r} is updated twice; a state has exactly one "
                                  f"update per step")
        if value.shape != st.shape or value.dtype != st.dtype:
            raise RecurrenceError(f"state {st.name!r} is {st.shape} {st.dtype} but its update is "
                                  f"{describe(value)}; the update must have the state's shape "
                                  f"and dtype")
        if value.name != st.name or value.op is STATE:     # a read is replaced when unfolding:
            value = named(value, st.name)                # the update must be a node of its own
        st.value = value
        return value

    def output(self, name: str, value: Node) -> Node:
        """A per-step output ``o(t)``."""
        name = self._fresh(name)
        _check_node(value, f"output {name!r}")
        self.outputs[name] = value = named(value, name)
        return value

    def loss(self, name: str, value: Node, steps: Iterable[int] | str | None = None) -> Node:
        """A per-step loss ``L(t)`` (a scalar per example). ``steps`` limits it to some steps:
        ``"last"`` for a single output at the end of the sequence (Fig. 10.5), or a list."""
        name = self._fresh(name)
        check_loss(name, value)
        steps = _check_steps(name, steps)
        value = named(value, name)
        self.losses[name] = (value, steps)
        return value

    def name_node(self, name: str, value: Node) -> Node:
        """Give a name to an inner value so that drawings show it (an LSTM's gates)."""
        name = self._fresh(name)
        _check_node(value, f"name_node {name!r}")
        self.named[name] = value = named(value, name)
        return value

    def _lookup(self, state: Node | str) -> _State:
        if isinstance(state, str):
            if state not in self._states:
                raise RecurrenceError(f"recurrence {self.name!r} has no state {state!r}; "
                                      f"states: {sorted(self._states)}")
            return self._states[state]
        if not isinstance(state, Node):
            raise UnfoldTypeError(f"recurrence {self.name!r}: a state is given by its node or "
                                  f"name, got {type(state).__name__} {state!r}")
        if state in self._state_of:
            return self._state_of[state]
        raise RecurrenceError(f"{describe(state)} is not a state of recurrence {self.name!r}")

    # --- introspection ---------------------------------------------------------------------------

    @property
    def states(self) -> dict[str, "_State"]:
        return dict(self._states)

    def roots(self) -> list[Node]:
        """The folded graph's sinks: state updates, outputs, losses and named values."""
        roots = [st.value for st in self._states.values() if st.value is not None]
        roots += list(self.outputs.values())
        roots += [v for v, _ in self.losses.values()]
        roots += list(self.named.values())
        return roots

    def body(self) -> list[Node]:
        """Every node of the folded step, inputs before users."""
        return topological(self.roots())

    def check(self) -> None:
        """Validate the folded graph (``unfold`` calls it): every state updated once, no
        undeclared inputs, and no cycle across time between forward and backward states."""
        for st in self._states.values():
            if st.value is None:
                raise RecurrenceError(f"state {st.name!r} of recurrence {self.name!r} is never "
                                      f"updated; call rec.update({st.name!r}, new_value)")
        if not self.roots():
            raise RecurrenceError(f"recurrence {self.name!r} is empty: declare a state update, "
                                  f"an output or a loss")
        declared = set(self.sequences.values()) | set(self.contexts.values())
        backward_leaves = {leaf for st in self._states.values() if st.backward
                           for leaf in st.reads.values()}
        reads_backward: set[Node] = set()
        for node in self.body():
            if node.op is INPUT and node not in declared:
                raise RecurrenceError(f"{describe(node)} is used in the step of {self.name!r} "
                                      f"but not declared; create it with rec.sequence (one value "
                                      f"per step) or rec.context (the same at every step)")
            if node.op is STATE and node not in self._state_of:
                raise RecurrenceError(f"{describe(node)} is a state of another recurrence")
            if node in backward_leaves or any(i in reads_backward for i in node.inputs):
                reads_backward.add(node)
        for st in self._states.values():
            if not st.backward and st.value in reads_backward:
                raise RecurrenceError(
                    f"state {st.name!r} runs forward in time but its update reads a backward "
                    f"state: h(t) would need g(t+1), which needs h(t+1) — a cycle through time "
                    f"that no delay breaks; let only outputs combine the two directions")
        self._reads_backward = reads_backward

    # --- unfolding -------------------------------------------------------------------------------

    def unfold(self, steps: int, *, truncate: int | None = None, mask: bool = False,
               bind: Mapping[Node | str, Node] | None = None,
               history: bool = False) -> "Unfolded":
        """The τ-step computational graph (an ordinary graph of unfold's IR).

        ``truncate=k`` cuts the gradient through states at every k-th step (truncated BPTT: the
        sequence is processed in chunks of k steps, the state carried forward between chunks, and
        gradients flow back only within a chunk; the initial state belongs to the first chunk).

        ``mask=True`` adds a sequence ``mask`` (1 for real steps, 0 for padding, shape (τ,) or
        (τ, batch); any other value is refused) for sequences of different lengths. A padded
        step reads zeros for every sequence, whatever the feed holds there (NaN included), adds
        no loss, and carries the states unchanged — each chosen by ``where``, never multiplied,
        so nothing in the padding reaches the loss or the gradients. A loss taken at
        ``steps="last"`` (``"first"``) is taken at each sequence's own last (first) real step;
        one taken at listed steps, at those of them that are real.

        ``history=True`` makes the steps before the first inputs: a state read ``d`` steps back,
        ``h(t−d)`` with ``t ≤ d``, reads ``h(t−d)`` from ``history(h)`` — placeholders
        ``h(0), h(−1), …, h(1−D)`` (D the deepest delay read) — instead of the state's init.
        Feeding them ``final_history(h)`` of the unfolding of the previous chunk continues a
        stream exactly: chunk after chunk, the result is that of ``unfold(τ, truncate=k)`` over
        the whole stream, skip connections included. (A backward state reads the future, which
        a chunk cannot have before the next: it is refused.)

        ``bind`` replaces context inputs (by node or name) with nodes of another graph — how two
        recurrences are joined: a decoder whose context ``C`` (its initial state, an input at
        every step) is the final state of an unfolded encoder (Fig. 10.12)::

            decoder.unfold(n_y, bind={"C": encoder_graph.final("h")})
        """
        steps = arguments.positive_int("unfold: steps", steps, error=RecurrenceError)
        if truncate is not None:
            truncate = arguments.positive_int("unfold: truncate", truncate, error=RecurrenceError)
        mask = arguments.flag("unfold: mask", mask)
        history = arguments.flag("unfold: history", history)
        if bind is not None and not isinstance(bind, Mapping):
            raise UnfoldTypeError(f"unfold: bind must be a dict context → node, got "
                                  f"{type(bind).__name__}")
        self.check()
        if history:
            backward = sorted(st.name for st in self._states.values() if st.backward)
            if backward:
                raise RecurrenceError(
                    f"unfold(history=True): recurrence {self.name!r} has backward states "
                    f"{backward}; a backward state at the end of a chunk reads the start of the "
                    f"next one, which a stream processed chunk by chunk does not have yet — unfold "
                    f"the whole sequence instead (truncate=k for truncated BPTT)")
        bind = self._bindings(bind or {})
        past = history and sum(st.depth for st in self._states.values())
        nodes = steps * len(self.body()) + past
        memory = _graph_memory()
        if memory and nodes * _NODE_BYTES > memory:
            raise as_raised(MemoryError(), _too_large(self, steps, nodes, past, memory))
        with gc_paused():
            try:
                return Unfolded(self, steps, truncate, mask, bind, history)
            except MemoryError as exc:
                raise as_raised(exc, _too_large(self, steps, nodes, past, memory)) from None

    def _bindings(self, bind: Mapping[Node | str, Node]) -> dict[Node, Node]:
        out = {}
        for key, node in bind.items():
            context = self.contexts.get(key) if isinstance(key, str) else key
            if context is None or not any(context is c for c in self.contexts.values()):
                raise RecurrenceError(f"bind: {key!r} is not a context of recurrence "
                                      f"{self.name!r}; contexts: {sorted(self.contexts)}")
            if not isinstance(node, Node):
                raise UnfoldTypeError(f"bind: context {context.name!r} is bound to "
                                      f"{type(node).__name__} {node!r}; bind a node (e.g. "
                                      f"encoder_graph.final('h'), or unfold.constant(array))")
            if node.shape != context.shape or node.dtype != context.dtype:
                raise RecurrenceError(f"bind: context {context.name!r} is {context.shape} "
                                      f"{context.dtype} but is bound to {node!r}; bind a node of "
                                      f"the same shape and dtype")
            out[context] = node
        return out


#: about what one node of an unfolded graph costs (the node, its attributes, its copy lists)
_NODE_BYTES = 200


def _graph_memory() -> int | None:
    """The memory an unfolded graph may take: half of what the machine has available now (the
    rest is for its values), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return None


def _too_large(rec: Recurrence, steps: int, nodes: int, past: int, memory: int | None) -> str:
    have = f", more than half the memory available ({2 * memory / 2**30:.1f} GiB)" \
        if memory else ""
    fix = (f"{past:,} of them are the history inputs h(0), h(−1), … that history=True makes "
           f"for the deepest delay read (rec.past(h, D)): use a shorter delay"
           if 2 * past > nodes else
           "unfold fewer steps — a long stream is trained chunk by chunk "
           "(Trainer(carry=True).fit_stream), or with truncate=k over a shorter unfolding")
    return (f"unfold({steps}) of recurrence {rec.name!r}: the unfolded graph would hold about "
            f"{nodes:,} nodes (≈ {nodes * _NODE_BYTES / 2**30:.3g} GiB){have}; {fix}")


class Unfolded:
    """A recurrence unfolded over τ steps: every node tagged with its step and folded source.

    ``at(node, t)`` is the copy of folded ``node`` at step ``t`` (1-based, as in the book);
    ``copies(W)`` lists ``W(1) … W(τ)``; ``loss`` is ``L = Σ_t L(t)``, summed over the batch.
    """

    def __init__(self, rec: Recurrence, steps: int, truncate: int | None, mask: bool,
                 bind: dict[Node, Node], history: bool = False) -> None:
        self.recurrence, self.steps, self.truncate, self.bind = rec, steps, truncate, bind
        # each state's initial value, with bound contexts substituted
        self._init = {st.name: substitute([st.init], bind)[0] for st in rec._states.values()}
        # with history: the values before the first step, h(0), h(−1), …, h(1−D), are inputs
        self._history: dict[str, list[Node]] | None = None if not history else {
            st.name: [Node(INPUT, (), st.shape, st.dtype, name=f"{st.name}({-j})",
                           may_batch=True) for j in range(st.depth)]
            for st in rec._states.values()}
        body = rec.body()
        # folded node → [None, copy at step 1, …, copy at step τ]
        self._copies: dict[Node, list[Node | None]] = {}
        self._update_states = {st.value: st for st in rec._states.values()}
        # the padding mask, a boolean per step (fed as 0/1, checked by the feed)
        self.mask = None
        if mask:
            self.mask = Node(INPUT, (), (), np.dtype(bool), name="mask", may_batch=True,
                             attrs={"recurrence": rec.name})   # fed as <name>.mask when joined
        # a per-step input knows the whole length, the names its model is fed by (not a bound
        # context: a value fed for it would be ignored), and the mask that pads it (the feed
        # gives padded steps zeros)
        fed = [name for name, c in rec.contexts.items() if c not in bind]
        self._sequence_attrs = MappingProxyType({"steps": steps, "mask": self.mask,
                                                 "model": frozenset([*rec.sequences, *fed,
                                                                     *rec.params, RESERVED])})
        if mask:
            meta = Meta("mask", MappingProxyType(dict(self._sequence_attrs, binary=True)),
                        self.mask, self.mask.dtype, self.mask.shape)
            self._copies[self.mask] = [None] + [
                _make(INPUT, (), meta, t, 1)
                for t in range(1, steps + 1)]
        self._masked_meta: dict[Node, Meta] = {}      # (one per masked state, for its copies)
        self._ends: dict[str, dict[int, Node]] = {}
        self._own: dict[str, Node] = {}      # a loss at each sequence's own last/first step
        contexts = set(rec.contexts.values())
        shared = {n for n in body if n.op is CONSTANT or n in contexts}
        copied = [n for n in body if n not in shared and n.op is not STATE]
        copied = self._aliases_first(copied)
        for n in copied:
            self._copies[n] = [None] * (steps + 1)
        chosen = {}                          # loss name → the steps it is taken at
        for name, (value, which) in rec.losses.items():
            every = which is None or (mask and which in ("last", "first"))
            chosen[name] = (list(range(1, steps + 1)) if every else [steps]
                            if which == "last" else [1] if which == "first" else list(which))
            for t in chosen[name]:
                if not 1 <= t <= steps:
                    raise RecurrenceError(f"loss {name!r} is asked at step {t}, outside 1…{steps}")
        # L = Σ_t L(t), accumulated as each step is built (so it also runs step by step: each
        # L(t) is added, and freed, as soon as its step has run); and the number of terms taken
        self._total: Node | None = None
        self._terms: Node | None = None
        first = [n for n in copied if n not in rec._reads_backward]
        second = [n for n in copied if n in rec._reads_backward]
        same: dict[Node, list[Node]] = {}
        for nodes, times in ((first, range(1, steps + 1)), (second, range(steps, 0, -1))):
            if not nodes:
                continue
            reads: dict[tuple[str, int], tuple[_State, int, list[Node | None]]] = {}
            recipes = [self._recipe(n, shared, reads, same) + (self._meta_of(n),) for n in nodes]
            here = set(nodes)
            losses = [(k, v, set(chosen[k]), which) for k, (v, which) in rec.losses.items()
                      if v in here]
            stepper = self._stepper(recipes, same) if GENERATED else None
            for t in times:
                if stepper is not None and self._read_step(reads, t):
                    stepper(t, graph.at(t, _adjoint_of[-1]))
                else:
                    self._copy_step(recipes, t, self._read_step(reads, t))
                for name, value, at, which in losses:
                    if t in at:
                        self._accumulate(self._copies[value][t], name, which)
        self._losses = {name: [self.at(value, t) for t in chosen[name]]
                        for name, (value, _) in rec.losses.items()}
        self._losses.update({name: [own] for name, own in self._own.items()})

    def _aliases_first(self, copied: list[Node]) -> list[Node]:
        """``copied`` with each declared variable (``rec.output``/``loss``/``name_node``) right
        after the value it names, and ``self._alias`` mapping that value to it: a step whose user
        went on with the expression rather than the returned node then reads the variable all the
        same (an identity), so the unfolded graph is one graph however the model is written."""
        rec = self.recurrence
        declared = [*rec.named.values(), *rec.outputs.values(), *(v for v, _ in rec.losses.values()),
                    *(st.value for st in rec.states.values() if st.value is not None)]
        self._alias: dict[Node, Node] = {}
        here = set(copied)
        for a in declared:
            x = a.inputs[0]
            if a.op is ALIAS and a in here and x in here and x.op not in (PARAM, INPUT) \
                    and x not in self._alias:
                self._alias[x] = a
        if not self._alias:
            return copied
        moved = set(self._alias.values())
        order = []
        for n in copied:
            if n not in moved:
                order.append(n)
                while n in self._alias:              # (a chain: o = V h; rec.update(y_prev, o))
                    n = self._alias[n]
                    order.append(n)
        return order

    def _accumulate(self, term: Node, name: str, which: Iterable[int] | str | None) -> None:
        """Add ``L(t)`` to the total — with a mask, only where step t is taken (a real step; for
        ``"last"``/``"first"``, each sequence's own last/first real step, whose loss is then
        ``losses(name)``'s one node), selected by ``where`` so that whatever a padded step
        computed never reaches the loss."""
        if self.mask is not None:
            taken = self._taken(term.step, which)
            term = where(taken, term, 0.0)
            count = cast(taken, term.dtype)
            self._terms = count if self._terms is None else self._terms + count
            if which in ("last", "first"):
                own = self._own.get(name)
                self._own[name] = term if own is None else own + term
        self._total = term if self._total is None else added(self._total, term, _adjoint_of[-1])

    def _taken(self, t: int, which: Iterable[int] | str | None) -> Node:
        """Whether the loss is taken at step ``t`` of each sequence of a masked batch."""
        if which not in ("last", "first"):
            return self._copies[self.mask][t]
        ends = self._ends.get(which)
        if ends is None:
            ends = self._ends[which] = self._own_ends(which)
        return ends[t]

    def _own_ends(self, which: str) -> dict[int, Node]:
        """Step t → whether t is each sequence's own last (``"last"``) or first real step: a real
        step with no real step after it (before it). Any 0/1 pattern works, holes included."""
        times = range(self.steps, 0, -1) if which == "last" else range(1, self.steps + 1)
        ends, beyond = {}, None           # beyond: 1 where a real step lies beyond t
        for t in times:
            m = cast(self._copies[self.mask][t], np.float64)
            ends[t] = greater(m, 0.5) if beyond is None else greater(m, beyond)
            beyond = m if beyond is None else maximum(m, beyond)
        return ends

    # --- building --------------------------------------------------------------------------------

    def _resolver(self, node: Node, shared: set[Node]):
        """How a step finds its copy of input ``node``: the node itself (constants, contexts), the
        same step's copy (a list indexed by step), or a state read (state, delay)."""
        if node in shared:
            return self.bind.get(node, node)
        if node.op is STATE:
            return (self.recurrence._state_of[node], node.attrs["delay"])
        return self._copies[node]

    def _recipe(self, node: Node, shared: set[Node], reads: dict, same: dict) -> tuple:
        """How every step copies folded ``node``: ``(node, its copies, kind, inputs, resolvers,
        masked)``. ``kind`` is the number of inputs (of an op batched when any input is), or
        _PARAM / _INPUT / _OTHER (any other op: built by ``Node``); ``inputs`` holds, per
        input, a list indexed by step — the input's copies, a state read's values (filled by
        ``_read_step``), or the same shared node at every step."""
        copies = self._copies[node]
        if node.op is PARAM:
            return node, copies, _PARAM, (node,), (), False     # one inputs tuple for all W(t)
        if node.op is INPUT:
            return node, copies, _INPUT, (), (), False
        alias = self._alias
        resolvers = [self._resolver(i if alias.get(i, node) is node else alias[i], shared)
                     for i in node.inputs]
        inputs = []
        for r in resolvers:
            if r.__class__ is tuple:             # (state, delay)
                key = (r[0].name, r[1])
                if key not in reads:
                    reads[key] = (*r, [None] * (self.steps + 1))
                r = reads[key][2]
            elif r.__class__ is not list:
                if r not in same:
                    same[r] = [r] * (self.steps + 1)
                r = same[r]
            inputs.append(r)
        masked = self.mask is not None and node in self._update_states
        plain = not node.op.unbatches and node.op.batch_like is None    # batched if any input is
        return node, copies, len(inputs) if plain else _OTHER, inputs, resolvers, masked

    def _read_step(self, reads: dict, t: int) -> bool:
        """Fill in what step ``t`` reads of each state; False if a read crosses a truncation cut
        (each reader then gets its own stop_gradient, built as the reader is)."""
        for st, delay, values in reads.values():
            value, cut = self._source(st, delay, t)
            if cut:
                return False
            values[t] = value
        return True

    def _meta_of(self, node: Node) -> Meta:
        """The name, attributes and source shared by every copy of folded ``node``."""
        attrs = _NO_ATTRS if node.op is PARAM else self._sequence_attrs if node.op is INPUT \
            else node.attrs
        return Meta(node.name, attrs, node, node.dtype, node.shape)

    def _stepper(self, recipes, same: dict):
        """``_copy_step`` for a step whose state reads are filled in, as one generated
        straight-line function ``step(t, tag)`` of these recipes (it runs τ times): each copy
        made as ``_copy_step`` makes it, in the same order, an input made earlier in the step
        read from its local variable."""
        const = Constants()
        code = ["def step(t, tag):"]
        local: dict[int, str] = {}                  # id(copies list) → its copy's variable
        constant_lists = {id(v): k for k, v in same.items()}  # the same node at every step
        for j, (node, copies, kind, inputs, _, masked, meta) in enumerate(recipes):
            c = f"c{j}"
            ins = []
            for r in inputs:
                if id(r) in local:
                    ins.append(local[id(r)])
                elif id(r) in constant_lists:
                    ins.append(const(constant_lists[id(r)]))
                else:
                    ins.append(f"{const(r)}[t]")
            if kind == _PARAM:
                op, a, b, where, flag = ALIAS, const(inputs[0]), "None", "tag", "0"
            elif kind == _INPUT:
                op, a, b, where, flag = INPUT, "()", "MANY", "t", "1"
            elif kind in (1, 2):
                op, where = node.op, "tag"
                a, b = (ins[0], "None") if kind == 1 else ins
                if kind == 1:
                    code.append(f"    a = {a}")
                    a, flag = "a", "(a._key & 1)"
                else:
                    code.append(f"    a = {a}\n    b = {b}")
                    a, b, flag = "a", "b", "((a._key | b._key) & 1)"
            else:
                op = None
                args = "(" + "".join(f"{i}, " for i in ins) + ")"
                code.append(f"    ins = {args}\n    {c} = make({const(node.op)}, ins, "
                            f"{const(meta)}, {'tag' if ins else 't'}, "
                            f"batch_flag({const(node.op)}, ins))")
            if op is not None:
                code.append(f"    {c} = new(Filling)\n    {c}.op = {const(op)}\n"
                            f"    {c}._a = {a}\n    {c}._b = {b}\n    {c}._meta = {const(meta)}\n"
                            f"    {c}._at = {where}\n    {c}._key = key() + {flag}\n"
                            f"    {c}.__class__ = Node")
            if masked:
                code.append(f"    {c} = masked({const(node)}, {c}, t)")
            code.append(f"    {const(copies)}[t] = {c}")
            local[id(copies)] = c
        code.append("    return None")
        names = {"new": graph._object_new, "Filling": _Filling, "Node": Node, "MANY": MANY,
                 "key": graph._keys.__next__, "make": _make, "batch_flag": _batch_flag,
                 "masked": self._masked_update}
        return generated(code, names, const)

    def _copy_step(self, recipes, t: int, reads_filled: bool) -> None:
        adjoint = _adjoint_of[-1]        # None, unless unfolding inside someone's adjoint
        tag = at(t, adjoint)             # (the step t, or adjoint and step)
        new, key = _object_new, graph._keys.__next__
        for node, copies, kind, inputs, resolvers, masked, meta in recipes:
            # (the common kinds make their copy as ``_make`` would, inlined: it runs per node)
            if kind == 2 and reads_filled:
                a, b = inputs[0][t], inputs[1][t]
                op, where, flag = node.op, tag, (a._key | b._key) & 1
            elif kind == 1 and reads_filled:
                a, b = inputs[0][t], None
                op, where, flag = node.op, tag, a._key & 1
            elif kind == _PARAM:
                op, a, b, where, flag = ALIAS, inputs[0], None, tag, 0
            elif kind == _INPUT:
                op, a, b, where, flag = INPUT, (), MANY, t, 1
            else:
                ins = [r[t] for r in inputs] if reads_filled else [
                    r[t] if r.__class__ is list else r if r.__class__ is Node else
                    self._read(r[0], r[1], t) for r in resolvers]
                op = None
                copy = _make(node.op, tuple(ins), meta, tag if ins else t,
                             _batch_flag(node.op, ins))
            if op is not None:
                copy = new(_Filling)
                copy.op, copy._a, copy._b, copy._meta, copy._at = op, a, b, meta, where
                copy._key = key() + flag
                copy.__class__ = Node
            if masked:
                copy = self._masked_update(node, copy, t)
            copies[t] = copy

    def _masked_update(self, folded: Node, new: Node, t: int) -> Node:
        """h(t) = h_new where m(t), else h(t∓1): padding carries the state unchanged (selected,
        not blended, so the padding's values never leak in)."""
        st = self._update_states[folded]
        previous = self._read(st, 1, t)
        # made here, not by ``where``: the choice belongs to step t (the planner files a step-less
        # node by its inputs' steps, which for a backward state is t + 1)
        ins = (self._copies[self.mask][t], new, previous)
        chosen = _make(WHERE, ins, shared_meta(None, _NO_ATTRS, None, new.dtype, new.shape),
                       at(t, _adjoint_of[-1]), _batch_flag(WHERE, ins))
        named = self._masked_meta.get(folded)
        if named is None:
            named = self._masked_meta[folded] = Meta(new.name, _NO_ATTRS, folded, new.dtype,
                                                            new.shape)
        return _make(ALIAS, (chosen,), named, at(t, _adjoint_of[-1]),
                     chosen._key & 1)

    def _read(self, st: _State, delay: int, t: int) -> Node:
        """What step ``t`` reads of state ``st`` ``delay`` steps back (ahead, when backward)."""
        value, cut = self._source(st, delay, t)
        return stop_gradient(value) if cut else value

    def _source(self, st: _State, delay: int, t: int) -> tuple[Node, bool]:
        """The value step ``t`` reads of ``st`` ``delay`` steps away, and whether a truncation
        cut lies between (then the gradient must not flow through the read). Before the first
        step (after the last, for a backward state) it reads the history inputs or the init,
        which belongs to the chunk of the first (last) step."""
        source_step = t + delay if st.backward else t - delay
        k = self.truncate
        return (self._value_at(st, source_step),
                k is not None and (min(max(source_step, 1), self.steps) - 1) // k != (t - 1) // k)

    def _value_at(self, st: _State, step: int) -> Node:
        """The state's value after step ``step``: its copy, or before the first step (after the
        last, for a backward state) its history input or its init."""
        if 1 <= step <= self.steps:
            return self._copies[st.value][step]
        if self._history is not None:
            return self._history[st.name][-step]
        return self._init[st.name]

    # --- lookups ---------------------------------------------------------------------------------

    def at(self, node: Node | str, t: int) -> Node:
        """The copy of folded ``node`` (or the variable of that name) at step ``t``: ``h(t)`` for
        a state's update, ``h(t−1)`` for the state itself, ``W(t)`` for a parameter."""
        node = self._resolve(node)
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise UnfoldTypeError(f"at: the step must be an integer in 1…{self.steps}, got "
                                  f"{type(t).__name__} {t!r}")
        if not 1 <= t <= self.steps:
            raise RecurrenceError(f"step {t} is outside 1…{self.steps}")
        if node.op is STATE and node in self.recurrence._state_of:
            return self._read(self.recurrence._state_of[node], node.attrs["delay"], t)
        if node.op is CONSTANT or any(node is c for c in self.recurrence.contexts.values()):
            return self.bind.get(node, node)
        try:
            return self._copies[node][t]
        except KeyError:
            raise RecurrenceError(f"{describe(node)} is not part of the step of recurrence "
                                  f"{self.recurrence.name!r}") from None

    def _resolve(self, node: Node | str) -> Node:
        if isinstance(node, Node):
            return node
        if not isinstance(node, str):
            raise UnfoldTypeError(f"a variable of {self!r} is given by its node or its name, "
                                  f"got {type(node).__name__} {node!r}")
        rec = self.recurrence
        for table in (rec.outputs, rec.named, rec.sequences, rec.contexts, rec.params):
            if node in table:
                return table[node]
        if node in rec.losses:
            return rec.losses[node][0]
        if node in rec._states:
            return rec._states[node].value
        if node == "mask" and self.mask is not None:
            return self.mask
        raise RecurrenceError(f"recurrence {rec.name!r} has no variable named {node!r}")

    def nodes(self, step: int | None = None) -> list[Node]:
        """Every node of the unfolded graph (inputs before users), or only those of one step."""
        roots = [c for copies in self._copies.values() for c in copies if c is not None]
        every = topological(roots + ([self.loss] if self.losses() else []))
        return every if step is None else [n for n in every if n.step == step]

    def over_time(self, node: Node | str) -> list[Node]:
        """``[node(1), …, node(τ)]``."""
        return [self.at(node, t) for t in range(1, self.steps + 1)]

    def copies(self, param: Node | str) -> list[Node]:
        """The dummy copies ``W(1) … W(τ)`` of a shared parameter."""
        param = self._resolve(param)
        if param.op is not PARAM:
            raise RecurrenceError(f"{describe(param)} is not a parameter")
        return [c for c in self._copies.get(param, ())[1:] if c is not None]

    def final(self, state: Node | str) -> Node:
        """The state after the last step: ``h(τ)`` (``g(1)`` for a backward state)."""
        st = self.recurrence._lookup(state)
        return self._copies[st.value][1 if st.backward else self.steps]

    def history(self, state: Node | str) -> list[Node]:
        """The inputs ``h(0), h(−1), …, h(1−D)`` that an unfolding with ``history=True`` reads
        before its first step (D: the deepest delay the step reads)."""
        st = self.recurrence._lookup(state)
        if self._history is None:
            raise RecurrenceError(f"{self!r} reads the init of state {st.name!r} before its "
                                  f"first step; unfold with history=True to feed the past")
        return list(self._history[st.name])

    def final_history(self, state: Node | str) -> list[Node]:
        """``h(τ), h(τ−1), …, h(τ+1−D)``: what the next chunk's ``history(h)`` is fed to continue
        the stream (values before this unfolding's first step come from its own history, or
        init)."""
        st = self.recurrence._lookup(state)
        if st.backward:
            raise RecurrenceError(f"state {st.name!r} runs backward in time: its history is the "
                                  f"future of the sequence, which a stream does not carry")
        return [self._value_at(st, self.steps - j) for j in range(st.depth)]

    def losses(self, name: str | None = None) -> list[Node]:
        """The per-step losses ``L(t)`` (of one named loss, or of all). With a mask, a loss
        taken at ``"last"`` (``"first"``) is one node: each sequence's loss at its own last
        (first) real step."""
        if name is not None:
            if name not in self._losses:
                raise UnfoldKeyError(f"recurrence {self.recurrence.name!r} has no loss {name!r}; "
                                     f"its losses are {sorted(self._losses)}")
            return list(self._losses[name])
        return [n for per_step in self._losses.values() for n in per_step]

    @property
    def loss(self) -> Node:
        """``L = Σ_t L(t)``, summed over every declared loss and over the batch."""
        cached = self.__dict__.get("_loss")
        if cached is None:
            if self._total is None:
                raise RecurrenceError(f"recurrence {self.recurrence.name!r} declares no loss")
            cached = self._loss = Node(ALIAS, (batch_sum(self._total),), (), self._total.dtype,
                                       name="L")
        return cached

    @property
    def terms(self) -> Node:
        """How many loss terms ``L(t)`` of each example ``loss`` sums (per example: with a mask,
        its real steps that are taken; without, the same for all, an unbatched constant). The mean
        loss per term is ``loss`` divided by the sum of ``terms`` over the batch."""
        if self._total is None:
            raise RecurrenceError(f"recurrence {self.recurrence.name!r} declares no loss")
        if self._terms is None:
            self._terms = constant(np.array(len(self.losses()), self._total.dtype))
        return self._terms

    @property
    def params(self) -> list[Node]:
        """Every parameter of the unfolded graph, in the order they were created: the step's
        shared parameters, those of the states' initial values (a learned h(0)), and those of
        graphs joined with ``bind``."""
        return [n for n in topological(self.recurrence.roots() + list(self._init.values()) +
                                       list(self.bind.values())) if n.op is PARAM]

    @property
    def param_names(self) -> dict[str, Node]:
        """Every parameter by the name to feed, train and save it under: its own name in a graph
        of one recurrence; in a graph that joins recurrences (``bind``), qualified by the name of
        the recurrence that declared it — ``encoder.W``, ``decoder.W`` — so nothing clashes."""
        params = self.params
        joined = len({p.attrs.get("recurrence") for p in params} - {None}) > 1
        out: dict[str, Node] = {}
        for p in params:
            owner = p.attrs.get("recurrence")
            name = f"{owner}.{p.name}" if joined and owner is not None else p.name
            if name in out:
                raise RecurrenceError(f"two parameters of this graph are named {name!r}; give "
                                      f"the recurrences you join distinct names "
                                      f"(Recurrence('encoder'), Recurrence('decoder'))")
            out[name] = p
        return out

    def __repr__(self) -> str:
        return f"<Unfolded {self.recurrence.name!r}, {self.steps} steps>"
