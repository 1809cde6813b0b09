"""Kernels that write into a preallocated output (``out=``): one numpy call per node where numpy
has one, and otherwise the op's own forward (or batching rule) copied into the output.

``kernel(node, flags, values, out)`` returns ``(function, arguments)``: calling
``function(*arguments)`` computes ``node`` for these batch flags from the input arrays ``values``
(``None`` for inputs whose value is never read) into ``out``. Arguments are fixed arrays — views
of the program's buffers — so a step loop only makes calls.
"""
from __future__ import annotations

import numpy as np

from ..ops.base import BROADCAST_LIKE, SUM_LIKE, Elementwise, align
from ..ops.elementwise import ADD_N, RELU, SIGMOID, SIGMOID_DERIV, TANH_DERIV, Binary, Unary
from ..ops.linalg import BATCH_OUTER, MATMUL, OUTER
from ..ops.nn import LOG_SOFTMAX
from ..ops.reduce import BATCH_SUM, SUM
from ..ops.shape import GETITEM, RESHAPE, TRANSPOSE


def compute(op, node, flags, batch, out, *values):
    """The op's own numpy code, copied into ``out``: the kernel of every op without one."""
    if True in flags:
        value = op.batched(node, list(values), flags, batch)
    else:
        value = op.forward(node, *values)
    np.copyto(out, value)


def sigmoid(x, out):
    """σ(x) = 1 / (1 + e⁻ˣ) in place (e⁻ˣ overflows to ∞ only where σ(x) < 1e-308, giving 0);
    −x as ``x · (−1)`` (``negate``)."""
    np.multiply(x, -1.0, out)
    np.exp(out, out)
    np.add(out, 1.0, out)
    np.reciprocal(out, out)


def sigmoid_of_negated(m, out):
    """σ(x) from ``m = −x`` (``signs``: the producers of ``x`` stored it negated): ``sigmoid``
    without its first call, the same numbers."""
    np.exp(m, out)
    np.add(out, 1.0, out)
    np.reciprocal(out, out)


def negate(x, out):
    """``out = −x`` as ``x · (−1)`` (unsigned: ``0 − x``), exactly the same numbers: numpy
    2.4.6's ``np.negative`` reads an input strided 64 bytes apart (float32: 16) as if it were
    contiguous when the output is strided too — e.g. a width-one column ``z[:, 2:3]`` of an
    (N, 8) float64 array into a column of another (tests/test_timebatch_kernels.py)."""
    kind = out.dtype.kind
    if kind == "f":
        np.multiply(x, -1.0, out)
    elif kind == "i":
        np.multiply(x, -1, out)
    elif kind == "u":
        np.subtract(0, x, out)
    else:
        np.negative(x, out)


def tanh_deriv(y, out):
    """tanh′ = ``1 − y²`` into ``out``, in the order ``TANH_DERIV`` computes it."""
    np.multiply(y, y, out=out)
    np.subtract(1, out, out=out)


def sigmoid_deriv(y, out):
    """σ′ = ``y(1 − y)`` into ``out``, in the order ``SIGMOID_DERIV`` computes it."""
    np.subtract(1, y, out=out)
    np.multiply(y, out, out=out)


def add_n(*terms_and_out):
    """``out = ((x₁ + x₂) + x₃) + …``, the order ``AddN`` sums in, two operands a call: the
    arguments are the terms, then ``out`` (each term broadcasts to ``out``)."""
    out = terms_and_out[-1]
    np.add(terms_and_out[0], terms_and_out[1], out)
    for x in terms_and_out[2:-1]:
        np.add(out, x, out)


def relu(x, out):
    np.maximum(x, 0, out=out)


def maximum(a, b, out):
    np.maximum(a, b, out=out)


def minimum(a, b, out):
    np.minimum(a, b, out=out)


#: columns of a transposed matrix copied at a time (``transposed_copy``)
BLOCK = 64


def transposed_copy(out, a):
    """``out = a`` for a transposed (Fortran-ordered) matrix ``a``, BLOCK columns at a time: a
    block's source rows stay in cache while they are written across ``out`` (one
    ``copyto`` of a 2048 × 512 float32 ``Wᵀ`` takes 7.5 ms, by blocks 0.9 ms)."""
    n = a.shape[1]
    if n <= BLOCK:
        np.copyto(out, a)
        return
    for j in range(0, n, BLOCK):
        np.copyto(out[:, j:j + BLOCK], a[:, j:j + BLOCK])


#: the kernels above of one operand, by the op they compute: ``fn(x, out)``
_UNARY = {SIGMOID: sigmoid, RELU: relu, TANH_DERIV: tanh_deriv, SIGMOID_DERIV: sigmoid_deriv}
#: … and ``negate``, the kernel of ``np.negative`` (see there), and σ of a negated input
_ONE_OPERAND = tuple(_UNARY.values()) + (negate, sigmoid_of_negated)

#: kernels element for element whose calls on slices side by side may join into one
JOINABLE = _ONE_OPERAND + (maximum, minimum)

#: what the kernels of this module read and write: function → (positions of the arguments
#: read, positions written); ``memory`` lets a call write over an input only when it knows
EFFECTS = {**{fn: ((0,), (1,)) for fn in _ONE_OPERAND}, maximum: ((0, 1), (2,)),
           minimum: ((0, 1), (2,)), np.copyto: ((1,), (0,)), transposed_copy: ((1,), (0,))}


def ufunc(op, node):
    """The numpy ufunc an element-wise op is, if it is one."""
    if isinstance(op, (Unary, Binary)):
        fn = op.kernel(node, (False,) * len(node.inputs))
        if isinstance(fn, np.ufunc):
            return fn
    return None


def _view(cache: dict, a: np.ndarray, how: str, make) -> np.ndarray:
    """A view of ``a`` made once: the same object for every member that uses it (a step loop
    then passes it as a constant)."""
    key = (id(a), how)
    v = cache.get(key)
    if v is None:
        v = cache[key] = (make(a), a)
    return v[0]


def log_softmax(x, out, axis):
    """log softmax along ``axis``, as ``LogSoftmax`` computes it, into ``out``."""
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    s = np.exp(out).sum(axis=axis, keepdims=True)
    np.log(s, out=s)
    np.subtract(out, s, out=out)


#: rows at most this long find their maximum column by column (numpy's reduction along a short
#: last axis pays its overhead once per row: 10× slower at 32 columns)
BY_COLUMN = 64


def row_max(x, out, scratch) -> None:
    """``out`` (N, 1) = the maximum of each row of ``x`` (N, k); ``scratch`` holds N·k."""
    n, k = x.shape
    if k > BY_COLUMN or n < 4 * k:
        np.maximum.reduce(x, 1, None, out, True)
        return
    columns = scratch.reshape(-1)[:n * k].reshape(k, n)
    np.copyto(columns, x.T)
    np.maximum.reduce(columns, 0, None, out.reshape(n))


def softmax_cross_entropy(x, targets, loss, p, flat, scratch, row, picked, offsets, at, ones):
    """Cross-entropy and its gradient from logits ``x`` (N, k) and class indices ``targets``
    (N,), in the few passes a hand-written kernel makes — computed as the graph computes them,
    from the log-probabilities (``LogSoftmax``, then ``exp``, then ``− 1_y``):

        loss = −log softmax(x)_y        p = softmax(x) − 1_y

    ``flat`` is ``p`` as one axis, ``scratch`` (N, k) and ``row`` (N, 1) are workspace (``picked``
    is ``row`` as (N,)), ``offsets`` the start of each row in ``flat``, ``at`` (N,) room for
    ``offsets + y`` and ``ones`` (k,) ones: each row's sum of exponentials is one GEMV."""
    if targets.size and (targets.min() < 0 or targets.max() >= x.shape[1]):
        raise ValueError("a target is not a class index")  # the per-node run names it
    row_max(x, row, scratch)
    np.subtract(x, row, out=p)
    np.exp(p, out=scratch)
    np.dot(scratch, ones, out=picked)
    np.log(row, out=row)
    np.subtract(p, row, out=p)                       # log softmax(x)
    np.add(offsets, targets, out=at)
    np.take(flat, at, out=loss, mode="clip")         # (the targets are checked above)
    np.negative(loss, out=loss)
    np.exp(p, out=p)                                 # softmax(x)
    np.take(flat, at, out=picked, mode="clip")
    np.subtract(picked, 1, out=picked)
    np.put(flat, at, picked)


def nll(logp, targets, out, axis):
    """``−log p_y`` from log-probabilities: the cross-entropy of the logits ``logp`` came from."""
    k = logp.shape[axis]
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        raise ValueError("a target is not a class index")  # the per-node run names it
    picked = np.take_along_axis(logp, np.expand_dims(targets, axis), axis)
    negate(np.squeeze(picked, axis), out)


VIEW_OPS = (GETITEM, TRANSPOSE, RESHAPE)


def minus_one_hot(p, targets, out):
    """``out = p − one_hot(targets)`` (classes on the last axis, ``targets`` the other axes):
    ``p`` copied, 1 taken off at each target."""
    k = p.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        raise ValueError("a target is not a class index")  # the per-node run names it
    np.copyto(out, p)
    at = targets[..., None]
    np.put_along_axis(out, at, np.take_along_axis(out, at, -1) - 1, -1)


def view_op(node, value: np.ndarray, lead: int) -> np.ndarray | None:
    """``node`` as a view of its input's array ``value`` (with ``lead`` leading batch or time
    axes), for the ops that move no data: basic indexing, transpose, reshape. None otherwise."""
    op = node.op
    if op is GETITEM:
        key = node.attrs["key"]
        if any(isinstance(k, np.ndarray) for k in key):
            return None
        v = value[(slice(None),) * lead + key + (Ellipsis,)]
    elif op is TRANSPOSE:
        v = value.transpose(tuple(range(lead)) + tuple(a + lead for a in node.attrs["axes"]))
    elif op is RESHAPE:
        v = value.reshape(value.shape[:lead] + node.shape)
    else:
        return None
    return v if isinstance(v, np.ndarray) and np.may_share_memory(v, value) else None


def sum_kernel(node, flags, values, out):
    """The call writing a summing op (``batch_outer``, ``batch_sum``, ``sum_like`` of a batched
    gradient) over stacked steps — its sum over steps and batch — straight into ``out``; None
    when there is none (the op's own batching rule then computes it)."""
    op = node.op
    same = all(v is None or v.dtype == out.dtype for v in values)
    if not same or not out.flags.c_contiguous:
        return None
    if op is BATCH_OUTER and flags == (True, True):
        a, b = values
        if a.ndim == b.ndim == 2 and out.shape == (a.shape[1], b.shape[1]):
            return np.dot, (a.T, b, out)
    elif (op is BATCH_SUM and flags[0]) or (op is SUM_LIKE and flags == (True, False)):
        g = values[0]
        if g.shape[1:] == out.shape:
            return np.add.reduce, (g, 0, None, out)
    return None


def _apart(terms, out) -> bool:
    """``add_n`` computes these terms into ``out``: all of its dtype, and the terms read after
    ``out`` is first written (the third on) elsewhere in memory."""
    return all(v.dtype == out.dtype for v in terms) and \
        not any(np.may_share_memory(v, out) for v in terms[2:])


def kernel(node, flags, values, out, batch, cache):
    op = node.op
    batched = True in flags
    if isinstance(op, Elementwise):
        fn = _UNARY.get(op) or ufunc(op, node)
        if op is ADD_N:
            fn = add_n if _apart(values, out) else None
        elif fn is np.negative:
            fn = negate
        if fn is not None:
            nd = node.ndim
            args = [_view(cache, v, f"align{nd}", lambda v: align(v, True, nd)) if f else v
                    for v, f in zip(values, flags)]
            if fn in _ONE_OPERAND:
                return fn, (args[0], out)
            if fn is add_n and not all(np.broadcast_shapes(a.shape, out.shape) == out.shape
                                       for a in args):
                return compute, (op, node, flags, batch, out, *values)
            if fn is np.maximum or fn is np.minimum:
                fn = maximum if fn is np.maximum else minimum
            return fn, (*args, out)
    elif op is MATMUL:
        a, b = values
        fa, fb = flags
        na, nb = node.inputs[0].ndim, node.inputs[1].ndim
        if not batched:
            dot = na <= 2 and nb <= 2 and max(na, nb) == 2 and out.flags.c_contiguous
            return (np.dot if dot else np.matmul), (a, b, out)
        dot = np.dot if out.flags.c_contiguous else np.matmul
        if nb == 1 and fb and not fa and na == 2:       # W @ h(t) for every example
            return dot, (b, _view(cache, a, "T", np.transpose), out)
        if na == 1 and fa and not fb and nb == 2:       # hᵀ W for every example
            return dot, (a, b, out)
    elif op is BATCH_OUTER or op is OUTER:
        a, b = values
        fa, fb = flags
        if op is BATCH_OUTER and fa and fb and out.flags.c_contiguous:
            return np.dot, (_view(cache, a, "T", np.transpose), b, out)
        if not batched:
            return np.multiply, (_view(cache, a, "col", lambda a: a[:, None]),
                                 _view(cache, b, "row", lambda b: b[None, :]), out)
        if op is OUTER:                                 # (the batch axes broadcast)
            return np.multiply, (_view(cache, a, "bcol", lambda a: a[..., :, None]),
                                 _view(cache, b, "brow", lambda b: b[..., None, :]), out)
    elif op is SUM_LIKE:
        g = values[0]
        gb, xb = flags
        if gb and not xb and g.shape[1:] == node.shape:
            return np.add.reduce, (g, 0, None, out)
    elif op is BATCH_SUM:
        if flags[0]:
            return np.add.reduce, (values[0], 0, None, out)
    elif op is BROADCAST_LIKE:
        g = values[0]
        return np.copyto, (out, _view(cache, g, f"align{node.ndim}",
                                      lambda g: align(g, True, node.ndim)) if flags[0] else g)
    elif op is LOG_SOFTMAX:
        return log_softmax, (values[0], out, node.attrs["axis"] + batched)
    elif op is SUM:
        axes = tuple(a + batched for a in node.attrs["axes"])
        return np.add.reduce, (values[0], axes, None, out, node.attrs["keepdims"])
    return compute, (op, node, flags, batch, out, *values)
