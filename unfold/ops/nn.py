"""Softmax, losses and one-hot targets — the book's output layer (eqs. 10.9–10.11)."""
from __future__ import annotations

import numpy as np

from .. import arguments
from ..errors import DTypeError, FeedError, ShapeError, describe
from ..graph import Node, Op, apply, derived
from .base import check_axis, check_dtype, common_float_dtype, lift
from .elementwise import exp
from .reduce import mean, sum
from .shape import reshape, transpose


class LogSoftmax(Op):
    """``log softmax(x) = x − log Σ exp x`` along ``axis``, computed from ``x − max x``: finite
    for any finite logits. ``∂/∂x: g − softmax(x) Σ g``."""

    name = "log_softmax"

    def infer(self, inputs, attrs):
        return inputs[0].shape, common_float_dtype(self.name, inputs)

    def _compute(self, x, axis):
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def forward(self, node, x):
        return self._compute(x, node.attrs["axis"])

    def batched(self, node, values, flags, batch):
        return self._compute(values[0], node.attrs["axis"] + 1)

    def vjp(self, node, g):
        axis = node.attrs["axis"]
        return (g - exp(node) * sum(g, axis=axis, keepdims=True),)


LOG_SOFTMAX = LogSoftmax()


def _axis(x: Node, axis: int, op: str) -> int:
    if x.ndim == 0:
        raise ShapeError(f"{op}: {describe(x)} is a scalar; it needs an axis of classes")
    return check_axis(op, x, axis)


def log_softmax(x, axis: int = -1) -> Node:
    x = lift(x)
    return apply(LOG_SOFTMAX, x, axis=_axis(x, axis, "log_softmax"))


def softmax(x, axis: int = -1) -> Node:
    """``ŷ = softmax(o)`` (eq. 10.11), as ``exp(log_softmax(o))``: stable, and sums to 1."""
    return exp(log_softmax(x, axis))


def _check_classes(op: str, targets: np.ndarray, k: int, source: Node,
                   what: str = "target value", index: str = "a class index") -> None:
    """Fed targets must be class indices in [0, k): anything else is an error, not a zero row."""
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        bad = targets[(targets < 0) | (targets >= k)].ravel()[0]
        raise FeedError(f"{op}: {what} {bad} in {source.label!r} is not {index} in "
                        f"[0, {k}); check the values fed for it")


class OneHot(Op):
    """``one_hot(y, k)``: 1 at each integer class, 0 elsewhere (the book's 1_y). Integer inputs
    carry no gradient."""

    name = "one_hot"
    differentiable = False

    def infer(self, inputs, attrs):
        (y,) = inputs
        if y.dtype.kind not in "iu":
            raise DTypeError(f"one_hot: targets {describe(y)} must be integers (class indices), "
                             f"e.g. unfold.input('y', shape, dtype='int64')")
        return y.shape + (attrs["classes"],), np.dtype(attrs["dtype"])

    def forward(self, node, y):
        k = node.attrs["classes"]
        _check_classes("one_hot", y, k, node.inputs[0])
        return (y[..., None] == np.arange(k)).astype(node.dtype)

    def batched(self, node, values, flags, batch):
        return self.forward(node, values[0])

    def vjp(self, node, g):
        return (None,)


ONE_HOT = OneHot()


def one_hot(y: Node, classes: int, dtype=np.float64) -> Node:
    """``1_y``: one more axis of ``classes`` entries, 1 at each integer class of ``y``."""
    classes = arguments.positive_int("one_hot: the number of classes", classes)
    return apply(ONE_HOT, lift(y), classes=classes, dtype=check_dtype(dtype, "one_hot"))


_REDUCTIONS = ("sum", "mean", "none")


def _reduce(losses: Node, reduction: str, op: str) -> Node:
    reduction = arguments.choice(f"{op}: reduction", reduction, _REDUCTIONS)
    if losses.ndim == 0:
        return losses                   # one position: its sum and its mean are itself
    if reduction == "sum":
        return sum(losses)
    if reduction == "mean":
        return mean(losses)
    return losses


class CrossEntropy(Op):
    """``L = −log softmax(o)_y`` at each position, for integer targets ``y`` (the per-step term
    of eq. 10.12); ``∂L/∂o = softmax(o) − 1_y`` (eq. 10.18). One primitive: computed from
    ``log_softmax`` (finite for any finite logits), differentiated with ops (so twice, too)."""

    name = "cross_entropy"

    def infer(self, inputs, attrs):
        logits, targets = inputs
        common_float_dtype(self.name, (logits,))
        if targets.dtype.kind not in "iu":
            raise DTypeError(f"cross_entropy: targets {describe(targets)} must be integer class "
                             f"indices, e.g. unfold.input('y', shape, dtype='int64')")
        return targets.shape, logits.dtype

    def _compute(self, node, logits, targets, axis):
        _check_classes("cross_entropy", targets, logits.shape[axis], node.inputs[1])
        logp = LOG_SOFTMAX._compute(logits, axis)
        picked = np.take_along_axis(logp, np.expand_dims(targets, axis), axis)
        return -np.squeeze(picked, axis)

    def forward(self, node, logits, targets):
        return self._compute(node, logits, targets, node.attrs["axis"])

    def batched(self, node, values, flags, batch):
        logits, targets = values
        if not flags[0]:
            logits = np.broadcast_to(logits, (batch,) + logits.shape)
        if not flags[1]:
            targets = np.broadcast_to(targets, (batch,) + targets.shape)
        return self._compute(node, logits, targets, node.attrs["axis"] + 1)

    def vjp(self, node, g):
        logits, targets = node.inputs
        if g.shape is targets.shape and g._meta.dtype is logits._meta.dtype:
            return derived(CROSS_ENTROPY_GRAD, (g, logits, targets), logits, node.attrs), None
        return apply(CROSS_ENTROPY_GRAD, g, logits, targets, axis=node.attrs["axis"]), None


CROSS_ENTROPY = CrossEntropy()


def _one_hot_on(targets: Node, logits: Node, axis: int) -> Node:
    """``1_y`` with its class axis at ``axis`` of the logits."""
    hot = one_hot(targets, logits.shape[axis], logits.dtype)
    if axis != logits.ndim - 1:
        order = list(range(logits.ndim))
        order.insert(axis, order.pop())
        hot = transpose(hot, order)
    return hot


class CrossEntropyGrad(Op):
    """``cross_entropy_grad(g, o, y) = g ⊙ (softmax(o) − 1_y)``, ``g`` spread along the class
    axis: ∂L/∂o of ``L = cross_entropy(o, y)`` from ``g = ∂L/∂L(t)`` (eq. 10.18) — one node of
    the gradient graph per step, computed as ``g · (exp(log_softmax(o)) − one_hot(y))``.
    Differentiated with ops: ``∂/∂g = Σ_classes ḡ ⊙ (p − 1_y)``, ``∂/∂o = p ⊙ (v − Σ p ⊙ v)``
    for ``v = g ⊙ ḡ`` and ``p = softmax(o)``."""

    name = "cross_entropy_grad"

    def infer(self, inputs, attrs):
        return inputs[1].shape, inputs[1].dtype

    def _compute(self, node, g, logits, targets, axis):
        k = logits.shape[axis]
        _check_classes("cross_entropy", targets, k, node.inputs[2])
        p = np.exp(LOG_SOFTMAX._compute(logits, axis))
        hot = np.expand_dims(targets, axis) == np.arange(k).reshape(
            (k,) + (1,) * (logits.ndim - axis - 1))
        return np.expand_dims(g, axis) * (p - hot.astype(logits.dtype))

    def forward(self, node, g, logits, targets):
        return self._compute(node, g, logits, targets, node.attrs["axis"])

    def batched(self, node, values, flags, batch):
        values = [v if f else np.broadcast_to(v, (batch,) + v.shape)
                  for v, f in zip(values, flags)]
        return self._compute(node, *values, node.attrs["axis"] + 1)

    def vjp(self, node, b):
        g, logits, targets = node.inputs
        axis = node.attrs["axis"]
        p = softmax(logits, axis)
        spread = g.shape[:axis] + (1,) + g.shape[axis:]
        v = reshape(g, spread) * b
        return (sum(b * (p - _one_hot_on(targets, logits, axis)), axis=axis),
                p * (v - sum(p * v, axis=axis, keepdims=True)), None)


CROSS_ENTROPY_GRAD = CrossEntropyGrad()


def cross_entropy(logits, targets, axis: int = -1, reduction: str = "sum") -> Node:
    """``L = −log softmax(o)_y`` for integer targets ``y`` (eq. 10.12's per-step term).

    ``logits`` has the class axis ``axis`` (last by default); ``targets`` has the other axes.
    ``reduction`` sums (the book's ``L = Σ_t L(t)``), averages, or keeps the per-position losses.
    The gradient with respect to the logits is ``softmax(o) − 1_y`` (eq. 10.18).
    """
    logits, targets = lift(logits), lift(targets)
    axis = _axis(logits, axis, "cross_entropy")
    expected = logits.shape[:axis] + logits.shape[axis + 1:]
    if targets.shape != expected:
        raise ShapeError(f"cross_entropy: targets {describe(targets)} must have the logits' shape "
                         f"without the class axis {axis}, i.e. {expected}; logits are "
                         f"{describe(logits)}")
    return _reduce(apply(CROSS_ENTROPY, logits, targets, axis=axis), reduction, "cross_entropy")


def mse(prediction, target, reduction: str = "mean") -> Node:
    """Squared error ``(ŷ − y)²``, averaged by default (``reduction='sum'`` for the book's
    Gaussian negative log-likelihood up to constants, section 10.2.3)."""
    prediction, target = lift(prediction), lift(target, (prediction,))
    if prediction.shape != target.shape:
        raise ShapeError(f"mse: {describe(prediction)} and {describe(target)} must have one shape")
    common_float_dtype("mse", (prediction, target))
    diff = prediction - target
    return _reduce(diff * diff, reduction, "mse")


# --- embeddings ---------------------------------------------------------------------------------

class Embedding(Op):
    """``embedding(E, tokens)[..., :] = E[tokens[...]]``: the row of the table ``E`` (V × d) for
    each integer token — what multiplying one-hot vectors by ``E`` computes, without building
    them. ``∂L/∂E`` is the scatter-add of ``g``'s rows onto the tokens' rows."""

    name = "embedding"

    def infer(self, inputs, attrs):
        table, tokens = inputs
        common_float_dtype(self.name, (table,))
        return tokens.shape + table.shape[1:], table.dtype

    def forward(self, node, table, tokens):
        _check_tokens(node, tokens, table.shape[0])
        return table[tokens]

    def batched(self, node, values, flags, batch):
        (table, tokens), (ft, fk) = values, flags
        _check_tokens(node, tokens, node.inputs[0].shape[0])
        if not ft:
            return table[tokens]                            # (B, …) tokens, a shared table
        if not fk:
            return table[:, tokens]                         # one table per example
        rows = np.arange(batch).reshape((batch,) + (1,) * (tokens.ndim - 1))
        return table[rows, tokens]

    def vjp(self, node, g):
        table, tokens = node.inputs
        return apply(SCATTER_ROWS, g, tokens, table), None


def _check_tokens(node: Node, tokens: np.ndarray, rows: int) -> None:
    _check_classes("embedding", tokens, rows, node.inputs[1], "token", "a row of the table")


class ScatterRows(Op):
    """``scatter_rows(g, tokens, E)``: zeros shaped like ``E`` with each row ``g[...]`` added to
    row ``tokens[...]`` (repeated tokens add up) — the adjoint of ``embedding``. Only ``E``'s
    shape and batch flag are read."""

    name = "scatter_rows"
    meta_inputs = (2,)

    def infer(self, inputs, attrs):
        return inputs[2].shape, inputs[0].dtype

    def forward(self, node, g, tokens, table=None):
        out = np.zeros(node.shape, g.dtype)
        np.add.at(out, tokens, g)
        return out

    def batched(self, node, values, flags, batch):
        (g, tokens, _), (fg, fk, _) = values, flags
        g = g if fg else np.broadcast_to(g, (batch,) + g.shape)
        tokens = tokens if fk else np.broadcast_to(tokens, (batch,) + tokens.shape)
        out = np.zeros((batch,) + node.shape, g.dtype)
        rows = np.arange(batch).reshape((batch,) + (1,) * (tokens.ndim - 1))
        np.add.at(out, (np.broadcast_to(rows, tokens.shape), tokens), g)
        return out

    def summed_over_batch(self, node):
        return apply(BATCH_SCATTER_ROWS, *node.inputs)

    def vjp(self, node, g):
        return embedding(g, node.inputs[1]), None, None


class BatchScatterRows(ScatterRows):
    """``Σ_batch scatter_rows(g, tokens, E)``: every example's rows added into one table — the
    gradient of a shared ``E``, without a (batch, V, d) array."""

    name = "batch_scatter_rows"
    unbatches = True

    def batched(self, node, values, flags, batch):
        (g, tokens, _), (fg, fk, _) = values, flags
        if fk and not fg:
            g = np.broadcast_to(g, (batch,) + g.shape)
        elif fg and not fk:
            tokens = np.broadcast_to(tokens, (batch,) + tokens.shape)
        return self.forward(node, g, tokens)


EMBEDDING, SCATTER_ROWS, BATCH_SCATTER_ROWS = Embedding(), ScatterRows(), BatchScatterRows()


def embedding(table, tokens) -> Node:
    """The rows of ``table`` (V × …, usually a param ``E`` of V × d) picked by the integer
    ``tokens`` (any shape): shape ``tokens.shape + table.shape[1:]``. A language model's input
    layer ``E[x(t)]``, equal to ``one_hot(x(t), V) @ E`` without the V-wide one-hot product;
    tokens outside [0, V) are refused when evaluated."""
    table, tokens = lift(table), lift(tokens)
    if table.ndim == 0:
        raise ShapeError(f"embedding: the table {describe(table)} is a scalar; it needs one row "
                         f"per token, e.g. a param of shape (vocabulary, d)")
    if tokens.dtype.kind not in "iu":
        raise DTypeError(f"embedding: tokens {describe(tokens)} must be integers (row indices), "
                         f"e.g. unfold.input('x', shape, dtype='int64')")
    return apply(EMBEDDING, table, tokens)
