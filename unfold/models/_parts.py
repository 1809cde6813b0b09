"""The pieces every chain model of chapter 10 is made of, written once.

* ``input_sequence`` — the per-step input ``x(t)``: a real vector, or a token id seen as its
  one-hot vector (so that ``U x(t)`` is a column of ``U``);
* ``new_state`` — a state that starts at zeros, or (``carry=True``) at a context input named
  ``<state>0`` (``h0``, ``s0``) so a long stream can be processed in chunks with the final state
  of one chunk fed as the initial state of the next (truncated BPTT, ``unfold.train``);
* ``affine`` — ``b + Σ M v`` with the parameters named as the book names them;
* ``readout`` — the output layer ``o = c + V h`` and its loss (eqs. 10.10–10.12, or squared error);
* ``fed_back`` — what a step is fed in place of the previous target: the truth (teacher
  forcing), the model's own output (free running), or a per-step random choice (scheduled
  sampling) — Figs. 10.6, 10.9, 10.10;
* ``chain`` — a recurrence from a cell: input, cell, output layer and loss.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldTypeError, UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence

LOSSES = ("cross_entropy", "squared_error")
OUTPUTS = ("every", "last")
INPUTS = ("vectors", "tokens")

#: ``cell(rec, x, n_hidden, carry=...) -> h(t)``: declares its states and params, returns h(t)
Cell = Callable[..., Node]

#: every builder of ``unfold.models``, by name: what a saved model is rebuilt with
BUILDERS: dict[str, Callable[..., Any]] = {}


def builder(build: Callable[..., Any]) -> Callable[..., Any]:
    """Register a builder and record, on what it builds, how to build it again:
    ``model.spec = {"builder": name, "args": {argument: value, …}}`` (every argument, defaults
    included, as JSON values; ``None`` when an argument cannot be written, e.g. a function).
    ``rebuild(model.spec)`` makes the same model — what ``unfold.train.save_model`` stores."""
    signature = inspect.signature(build)
    built = arguments.allocates(build)          # a size too large: UnfoldMemoryError, named

    @functools.wraps(build)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        model = built(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        extra = arguments.pop(next((p.name for p in signature.parameters.values()
                                    if p.kind is p.VAR_KEYWORD), ""), {})
        arguments.update(extra)
        try:
            spec = {"builder": build.__name__,
                    "args": {k: _as_json(v) for k, v in arguments.items()}}
        except TypeError:
            spec = None
        model.spec = spec
        return model

    BUILDERS[build.__name__] = recorded
    return recorded


def _as_json(value: Any) -> Any:
    """A builder argument as a JSON value (tuples, ranges and arrays become lists, dtypes their
    names); ``TypeError`` for anything else (a function)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (np.dtype, type)) and not isinstance(value, bool):
        return np.dtype(value).name
    if isinstance(value, (list, tuple, range, np.ndarray)):
        return [_as_json(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                      else value)]
    raise UnfoldTypeError(f"{type(value).__name__} is not a JSON value")


def rebuild(spec: Mapping[str, Any]) -> Any:
    """The model ``spec`` (a ``model.spec``) describes, built again."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("builder"), str) or \
            spec["builder"] not in BUILDERS or \
            not isinstance(spec.get("args"), Mapping):
        raise UnfoldValueError(f"rebuild: {spec!r:.200} is not the spec of a builder of "
                               f"unfold.models (builders: {sorted(BUILDERS)})")
    build = BUILDERS[spec["builder"]]
    signature = inspect.signature(build)
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        unknown = sorted(set(spec["args"]) - set(signature.parameters))
        if unknown:
            raise UnfoldTypeError(f"rebuild: {spec['builder']!r} has no arguments {unknown}; it "
                                  f"takes {list(signature.parameters)}")
    try:
        signature.bind(**spec["args"])
    except TypeError as exc:
        raise UnfoldTypeError(f"rebuild: the arguments of {spec['builder']!r} do not fit it "
                              f"({exc})") from None
    return build(**spec["args"])


def cell_options(what: str, cell: Callable[..., Any], options: Mapping[str, Any],
                 taken: Sequence[str] = ()) -> dict[str, Any]:
    """The ``**cell_options`` a builder passes on to ``cell``: keywords the cell takes (other
    than those in ``taken``, which the builder sets itself), else ``UnfoldTypeError`` naming
    them."""
    known = [p.name for p in inspect.signature(cell).parameters.values()
             if p.kind is p.KEYWORD_ONLY and p.name not in taken]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnfoldTypeError(f"{what}: unknown option(s) {unknown} for {cell.__name__}; it "
                              f"takes {known}")
    return dict(options)


class Scope:
    """A recurrence seen through a renaming: what a cell declares through it (params, states,
    contexts, named values) gets ``rename(name)`` — so two cells of one recurrence do not clash
    (a layer's ``W_1``, the backward direction's ``g.W``). ``backward=True`` runs the states it
    declares backward in time; ``inits`` gives some states (by the cell's name for them) an
    initial value."""

    def __init__(self, rec: "Recurrence | Scope", rename: Callable[[str], str],
                 backward: bool = False, inits: Mapping[str, Node] | None = None) -> None:
        if not isinstance(rec, (Recurrence, Scope)) or not callable(rename):
            raise UnfoldTypeError(f"Scope: a recurrence (or scope) and a renaming function, got "
                                  f"{type(rec).__name__} and {type(rename).__name__}")
        self.rec, self.rename, self.backward = rec, rename, backward
        self.inits = dict(inits or {})
        self.name = rec.name

    @classmethod
    def suffixed(cls, rec: "Recurrence | Scope", suffix: str, **options: Any) -> "Scope":
        """Every name ``n`` becomes ``n<suffix>`` (``W`` → ``W_1``)."""
        return cls(rec, lambda n: n + suffix, **options)

    @classmethod
    def prefixed(cls, rec: "Recurrence | Scope", prefix: str, **options: Any) -> "Scope":
        """Every name ``n`` becomes ``<prefix>n`` (``W`` → ``g.W``)."""
        return cls(rec, lambda n: prefix + n, **options)

    def param(self, name: str, shape: Any = (), dtype: Any = np.float64) -> Node:
        return self.rec.param(self.rename(name), shape, dtype)

    def context(self, name: str, shape: Any = (), dtype: Any = np.float64) -> Node:
        return self.rec.context(self.rename(name), shape, dtype)

    def state(self, name: str, shape: Any = (), init: Node | None = None,
              dtype: Any = np.float64, backward: bool = False) -> Node:
        return self.rec.state(self.rename(name), shape, init=self.inits.get(name, init),
                              dtype=dtype, backward=backward or self.backward)

    def name_node(self, name: str, value: Node) -> Node:
        return self.rec.name_node(self.rename(name), value)

    def update(self, state: Node | str, value: Node) -> Node:
        return self.rec.update(self.rename(state) if isinstance(state, str) else state, value)

    def past(self, state: Node | str, delay: int) -> Node:
        return self.rec.past(self.rename(state) if isinstance(state, str) else state, delay)


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    arguments.choice(what, value, choices)


def check_size(rec: Recurrence, what: str, n: Any) -> int:
    """A layer width or vocabulary size: a positive integer."""
    return arguments.positive_int(f"{rec.name}: {what}", n)


def input_sequence(rec: Recurrence, n_in: int, inputs: str = "vectors",
                   dtype: Any = np.float64) -> Node:
    """The input ``x(t)`` as a vector of size ``n_in``: a sequence ``x`` of real vectors, or of
    integer token ids in ``[0, n_in)`` turned into one-hot vectors inside the step."""
    _check_choice("inputs", inputs, INPUTS)
    n_in = check_size(rec, "n_in (the size of x(t), or the vocabulary)", n_in)
    dtype = arguments.float_dtype(f"{rec.name}: dtype", dtype)
    if inputs == "tokens":
        return ops.one_hot(rec.sequence("x", (), dtype=np.int64), n_in, dtype)
    return rec.sequence("x", (n_in,), dtype)


def new_state(rec: Recurrence, name: str, n: int, dtype: Any = np.float64,
              carry: bool = False) -> Node:
    """A state of ``n`` units; returns what step t reads, ``name(t−1)``. It starts at zeros, or
    with ``carry`` at the context input ``<name>0`` (fed by the caller)."""
    n = check_size(rec, f"the number of units of state {name!r} (n_hidden)", n)
    dtype = arguments.float_dtype(f"{rec.name}: dtype", dtype)
    carry = arguments.flag(f"{rec.name}: carry", carry)
    init = rec.context(f"{name}0", (n,), dtype) if carry else None
    return rec.state(name, (n,), init=init, dtype=dtype)


def affine(rec: Recurrence, n: int, bias: str | None, weights: Mapping[str, Node]) -> Node:
    """``bias + Σ_M M v`` for each ``M: v`` of ``weights``, declaring the parameters: ``bias``
    of shape (n,) and each ``M`` of shape (n, size of v). The book's ``b + W h + U x`` is
    ``affine(rec, n, "b", {"W": h, "U": x})``."""
    n = check_size(rec, "a layer width", n)
    terms = []
    dtype = next(iter(weights.values())).dtype if weights else np.float64
    if bias is not None:
        terms.append(rec.param(bias, (n,), dtype))
    for name, v in weights.items():
        terms.append(rec.param(name, (n, v.shape[0]), dtype) @ v)
    return terms[0] if len(terms) == 1 else ops.add_n(terms)


def output_loss(o: Node, y: Node, loss: str) -> Node:
    """``L(t)``: softmax cross-entropy ``−log softmax(o)_y`` (eqs. 10.11–10.12) for an integer
    target, or the squared error ``Σ_i (o_i − y_i)²`` for a real-valued one (the negative
    log-likelihood of a unit Gaussian up to a factor ½ and a constant, section 10.2.3)."""
    _check_choice("loss", loss, LOSSES)
    if loss == "cross_entropy":
        return ops.cross_entropy(o, y)
    return ops.mse(o, y, reduction="sum")


def target_sequence(rec: Recurrence, n_out: int, loss: str, dtype: Any = np.float64) -> Node:
    """The target ``y(t)``: a class index for cross-entropy, a vector of ``n_out`` for squared
    error."""
    _check_choice("loss", loss, LOSSES)
    if loss == "cross_entropy":
        return rec.target("y", (), np.int64)
    return rec.target("y", (n_out,), dtype)


def loss_steps(outputs: str | Sequence[int]) -> tuple[int, ...] | str | None:
    """Where a loss counts: ``"every"`` step, the ``"last"``, or the listed (1-based) steps."""
    if isinstance(outputs, str):
        _check_choice("outputs", outputs, OUTPUTS)
        return None if outputs == "every" else "last"
    if not isinstance(outputs, (Sequence, np.ndarray)):
        raise UnfoldValueError(f"outputs must be 'every', 'last' or a list of steps, got "
                               f"{outputs!r}")
    steps = tuple(arguments.positive_int("outputs: a step", t, minimum=0) for t in outputs)
    if not steps or min(steps) < 1:
        raise UnfoldValueError(f"outputs: list the 1-based steps whose loss counts, got "
                               f"{outputs!r}")
    return steps


def readout(rec: Recurrence, h: Node, n_out: int, loss: str = "cross_entropy",
            outputs: str | Sequence[int] = "every", state: Node | None = None,
            extra: Mapping[str, Node] | None = None) -> Node:
    """``o(t) = c + V h(t)`` (eq. 10.10; ``+ Σ M v`` for each ``M: v`` of ``extra``), declared as
    output ``o`` (or as the update of ``state`` when the output is itself fed back, Fig. 10.4),
    with the loss ``L`` against the target ``y`` at every step (Fig. 10.3), only at the last
    (Fig. 10.5), or at the listed steps. Returns ``o``."""
    steps = loss_steps(outputs)
    n_out = check_size(rec, "n_out (the number of classes or output units)", n_out)
    y = target_sequence(rec, n_out, loss, h.dtype)
    value = affine(rec, n_out, "c", {"V": h, **(extra or {})})
    o = rec.output("o", value) if state is None else rec.update(state, value)
    rec.loss("L", output_loss(o, y, loss), steps=steps)
    return o


def one_hot_like(y: Node, k: int, dtype: Any) -> Node:
    """A target as the vector the network is fed: one-hot for a class, itself for a vector."""
    return ops.one_hot(y, k, dtype) if y.dtype.kind in "iu" else y


FEEDBACKS = ("argmax", "softmax")


def as_feedback(o: Node, loss: str, feedback: str = "argmax") -> Node:
    """What the model feeds back of its own output ``o`` in place of a target: for classes, the
    one-hot vector of its most probable class (``argmax``, not differentiable, like a sampled
    symbol) or its whole distribution ``softmax(o)`` (differentiable); for real vectors, ``o``."""
    _check_choice("feedback", feedback, FEEDBACKS)
    if loss == "squared_error":
        return o
    if feedback == "softmax":
        return ops.softmax(o)
    return ops.cast(ops.equal(o, ops.max(o, axis=-1, keepdims=True)), o.dtype)


def chain(name: str, cell: Cell, n_in: int, n_hidden: int, n_out: int, *,
          loss: str = "cross_entropy", outputs: str = "every", inputs: str = "vectors",
          carry: bool = False, dtype: Any = np.float64, **options: Any) -> Recurrence:
    """A chain model: ``x(t) → cell → h(t) → o(t) = c + V h(t) → L(t)`` (Fig. 10.3's shape)."""
    rec = Recurrence(name)
    x = input_sequence(rec, n_in, inputs, dtype)
    h = cell(rec, x, n_hidden, carry=carry, **cell_options(name, cell, options, ("carry",)))
    readout(rec, h, n_out, loss, outputs)
    return rec


MODES = ("train", "free", "scheduled")


def fed_back(rec: Recurrence, k: int, dtype: Any = np.float64, mode: str = "train",
             carry: bool = False) -> tuple[Node, Callable[[Node, Node], None]]:
    """What a step is fed of the previous one in place of ``y(t−1)``, and the function that
    closes the loop once the step has computed the true target's vector and the model's own.

    * ``"train"`` — teacher forcing (Fig. 10.6, left): a state ``y_prev`` holding the true
      previous target;
    * ``"free"`` — free running, the closed loop of test time (Fig. 10.6, right): the state
      ``y_prev`` holds the model's own previous output;
    * ``"scheduled"`` — a random choice per step and example (scheduled sampling): states
      ``y_true`` and ``y_model`` hold both, and a sequence ``z`` of 0/1 picks what step t reads,
      ``y_prev = z(t) y_model(t−1) + (1 − z(t)) y_true(t−1)`` (a ``where``). Draw ``z`` with
      ``scheduled_mask(τ, batch, p)``, ``p`` being the probability of feeding the model's own
      output: ``p = 0`` is teacher forcing, ``p = 1`` free running.

    Every state starts at zeros (or at the inputs ``<state>0`` with ``carry``).
    """
    _check_choice("mode", mode, MODES)
    if mode != "scheduled":
        fed = new_state(rec, "y_prev", k, dtype, carry)
        return fed, lambda truth, model: rec.update(fed, truth if mode == "train" else model)
    true, own = (new_state(rec, name, k, dtype, carry) for name in ("y_true", "y_model"))
    z = rec.sequence("z", (), dtype)
    fed = rec.name_node("y_prev", ops.where(z > 0.5, own, true))

    def close(truth: Node, model: Node) -> None:
        rec.update(true, truth)
        rec.update(own, model)
    return fed, close


@arguments.allocates
def scheduled_mask(steps: int, batch: int | None = None, p: float = 0.5,
                   rng: np.random.Generator | int | None = None) -> np.ndarray:
    """The sequence ``z`` of a scheduled-sampling model: ``z(t) ~ Bernoulli(p)``, 1 meaning "feed
    the model's own output at the next step". Shape (τ,) or (τ, batch)."""
    p = arguments.real("scheduled_mask: p (a probability)", p, low=0.0, high=1.0)
    steps = arguments.positive_int("scheduled_mask: steps", steps)
    batch = None if batch is None else arguments.positive_int("scheduled_mask: batch", batch)
    rng = arguments.generator("scheduled_mask: rng", rng)
    shape = (steps,) if batch is None else (steps, batch)
    return (rng.random(shape) < p).astype(np.float64)
