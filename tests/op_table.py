"""The table of op cases shared by ``test_ops`` (gradients, forward agreement with numpy) and
``test_batching`` (a batch is the stack of its examples).

Each ``OpCase`` says how to draw one example — the operands' shapes and value domains (``Arg``)
and static keyword arguments such as an axis — how to build the node with unfold, and how to
compute the same thing with plain numpy. Operand values are generated from integer seeds that
hypothesis draws (and prints with a falsifying example), through the same generator as
``unfold.testing.strategies.arrays``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import unfold as uf
from unfold.graph import apply
from unfold.ops.elementwise import sigmoid_deriv, tanh_deriv
from unfold.ops.nn import CROSS_ENTROPY_GRAD
from unfold.testing import strategies as ufst

SEEDS = st.integers(0, 2**32 - 1)
MAX_SIDE = 3


@dataclass(frozen=True)
class Arg:
    """One operand: its per-example shape and the domain its values are drawn from."""

    shape: tuple[int, ...]
    kind: str = "float"             # "float" (float64), "int" (class indices) or "bool"
    low: float = -2.0
    high: float = 2.0
    away: float = 0.0               # keep |value| ≥ away (kinks, denominators)
    grid: float | None = None       # snap to multiples of 0.5, plus this offset (no ties)
    classes: int = 0                # for kind "int": values in [0, classes)

    def make(self, seed: int, lead: tuple[int, ...] = ()) -> np.ndarray:
        shape = tuple(lead) + self.shape
        if self.kind == "int":
            return np.random.default_rng(seed).integers(0, self.classes, size=shape)
        if self.kind == "bool":
            return np.random.default_rng(seed).random(shape) < 0.5
        values = ufst.array(shape, seed, np.float64, self.low, self.high, self.away)
        if self.grid is not None:
            values = np.round(values * 2) / 2 + self.grid
        return values

    def node(self, name: str) -> uf.Node:
        dtype = {"float": np.float64, "int": np.int64, "bool": np.bool_}[self.kind]
        return uf.input(name, self.shape, dtype=dtype)


@dataclass(frozen=True)
class OpCase:
    name: str
    draw: Callable[[Any], tuple[list[Arg], dict]]     # data -> (operands, static kwargs)
    build: Callable[..., uf.Node]                     # (*nodes, **kwargs) -> node
    ref: Callable[..., np.ndarray]                    # (*arrays, **kwargs) -> array
    wrt: tuple[int, ...] | None = None                # operands to check (None: every float one)
    second_order: bool = True
    tol: dict = field(default_factory=dict)           # gradcheck tolerances, when not default
    rtol: float = 1e-10                               # forward agreement with numpy

    def float_operands(self, args: list[Arg]) -> list[int]:
        picked = range(len(args)) if self.wrt is None else self.wrt
        return [i for i in picked if args[i].kind == "float"]


def draw_arrays(data, args: list[Arg], lead: tuple[int, ...] = (), label: str = "seeds"
                ) -> list[np.ndarray]:
    """One array per operand, each from its own drawn (and printed) seed."""
    seeds = data.draw(st.lists(SEEDS, min_size=len(args), max_size=len(args), unique=True),
                      label=label)
    return [a.make(s, lead) for a, s in zip(args, seeds)]


def leaves(args: list[Arg]) -> list[uf.Node]:
    return [a.node(f"x{i}") for i, a in enumerate(args)]


# --- drawing helpers ----------------------------------------------------------------------------

def _shape(data, min_dims=0, max_dims=3, label="shape"):
    return data.draw(ufst.shapes(min_dims, max_dims, max_side=MAX_SIDE), label=label)


def _broadcast(data, n=2, min_dims=0, max_dims=3):
    return data.draw(ufst.broadcastable_shapes(n, min_dims=min_dims, max_dims=max_dims,
                                               max_side=MAX_SIDE), label="shapes")


def _axis(data, ndim, label="axis"):
    """One axis of a rank-``ndim`` array, negative half of the time."""
    a = data.draw(st.integers(0, ndim - 1), label=label)
    return a - ndim if data.draw(st.booleans(), label="negative") else a


def _axes(data, ndim):
    """``axis=`` of a reduction: None, an int, or a tuple (any order, some negative)."""
    kind = data.draw(st.sampled_from(["none", "int", "tuple"] if ndim else ["none", "tuple"]),
                     label="axis kind")
    if kind == "none":
        return None
    if kind == "int":
        return _axis(data, ndim)
    chosen = data.draw(st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim),
                       label="axes") if ndim else []
    negate = data.draw(st.lists(st.booleans(), min_size=len(chosen), max_size=len(chosen)),
                       label="negate")
    return tuple(a - ndim if n else a for a, n in zip(chosen, negate))


def _factorizations(size: int, parts: int) -> list[tuple[int, ...]]:
    if parts == 0:
        return [()] if size == 1 else []
    out = []
    for d in range(1, size + 1):
        if size % d == 0:
            out += [(d,) + rest for rest in _factorizations(size // d, parts - 1)]
    return out


# --- numpy references ---------------------------------------------------------------------------

def np_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_reduce(losses, reduction):
    return {"sum": np.sum, "mean": np.mean, "none": np.asarray}[reduction](losses)


def np_cross_entropy(logits, targets, axis, reduction):
    axis %= logits.ndim
    picked = np.take_along_axis(np_log_softmax(logits, axis), np.expand_dims(targets, axis),
                                axis=axis)
    return np_reduce(-picked.squeeze(axis), reduction)


# --- the cases ----------------------------------------------------------------------------------

def _unary(name, fn, ref, low=-2.0, high=2.0, away=0.0):
    return OpCase(name, lambda d: ([Arg(_shape(d), low=low, high=high, away=away)], {}),
                  lambda x: fn(x), ref)


def _binary(name, fn, ref, a=None, b=None):
    def draw(d):
        sa, sb = _broadcast(d)
        return [Arg(sa, **(a or {})), Arg(sb, **(b or {}))], {}
    return OpCase(name, draw, fn, ref)


def _draw_matmul(d):
    kind_a = d.draw(st.sampled_from(["vector", "matrix", "stack"]), label="a is")
    kind_b = d.draw(st.sampled_from(["vector", "matrix", "stack"]), label="b is")
    n, k, m = (d.draw(st.integers(1, MAX_SIDE), label=s) for s in "nkm")
    lead_a, lead_b = _broadcast(d, 2, min_dims=1, max_dims=2)
    sa = {"vector": (k,), "matrix": (n, k), "stack": lead_a + (n, k)}[kind_a]
    sb = {"vector": (k,), "matrix": (k, m), "stack": lead_b + (k, m)}[kind_b]
    return [Arg(sa), Arg(sb)], {}


def _draw_getitem(d):
    shape = _shape(d)
    key = d.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="key")
    return [Arg(shape)], {"key": key}


def _draw_reduce(d):
    shape = _shape(d)
    return [Arg(shape)], {"axis": _axes(d, len(shape)),
                          "keepdims": d.draw(st.booleans(), label="keepdims")}


def _draw_reshape(d):
    shape = _shape(d)
    size = math.prod(shape)
    target = d.draw(st.sampled_from([f for p in range(4) for f in _factorizations(size, p)]),
                    label="new shape")
    if target and d.draw(st.booleans(), label="use -1"):
        i = d.draw(st.integers(0, len(target) - 1), label="-1 at")
        target = target[:i] + (-1,) + target[i + 1:]
    return [Arg(shape)], {"shape": target}


def _draw_transpose(d):
    shape = _shape(d)
    if d.draw(st.booleans(), label="default axes"):
        return [Arg(shape)], {"axes": None}
    perm = d.draw(st.permutations(range(len(shape))), label="axes")
    negate = d.draw(st.lists(st.booleans(), min_size=len(perm), max_size=len(perm)))
    return [Arg(shape)], {"axes": tuple(a - len(shape) if n else a for a, n in zip(perm, negate))}


def _draw_concat(d):
    base = _shape(d, min_dims=1)
    axis = _axis(d, len(base))
    sizes = d.draw(st.lists(st.integers(1, MAX_SIDE), min_size=1, max_size=3), label="sizes")
    a = axis % len(base)
    return [Arg(base[:a] + (s,) + base[a + 1:]) for s in sizes], {"axis": axis}


def _draw_stack(d):
    base = _shape(d)
    n = d.draw(st.integers(1, 3), label="n")
    axis = d.draw(st.integers(-len(base) - 1, len(base)), label="axis")
    return [Arg(base) for _ in range(n)], {"axis": axis}


def _draw_softmax(d):
    shape = _shape(d, min_dims=1)
    return [Arg(shape, low=-4, high=4)], {"axis": _axis(d, len(shape))}


def _draw_cross_entropy(d):
    shape = _shape(d, min_dims=1)
    axis = _axis(d, len(shape))
    a = axis % len(shape)
    reduction = d.draw(st.sampled_from(["sum", "mean", "none"]), label="reduction")
    return ([Arg(shape, low=-4, high=4), Arg(shape[:a] + shape[a + 1:], "int", classes=shape[a])],
            {"axis": axis, "reduction": reduction})


def _draw_cross_entropy_grad(d):
    """The derivative op of cross-entropy on its own: g (the targets' shape), logits, targets."""
    (logits, targets), kwargs = _draw_cross_entropy(d)
    return [Arg(targets.shape), logits, targets], {"axis": kwargs["axis"]}


def np_cross_entropy_grad(g, logits, targets, axis):
    axis %= logits.ndim
    hot = np.moveaxis(np.eye(logits.shape[axis])[targets], -1, axis)
    return np.expand_dims(g, axis) * (np_softmax(logits, axis) - hot)


def _draw_mse(d):
    shape = _shape(d)
    return [Arg(shape), Arg(shape)], {"reduction": d.draw(st.sampled_from(["mean", "sum", "none"]),
                                                          label="reduction")}


def _draw_where(d):
    sc, sa, sb = _broadcast(d, 3)
    return [Arg(sc, "bool"), Arg(sa), Arg(sb)], {}


def _draw_add_n(d):
    n = d.draw(st.integers(1, 4), label="n")
    return [Arg(s) for s in _broadcast(d, n)], {}


def _draw_one_hot(d):
    shape = _shape(d, max_dims=2)
    k = d.draw(st.integers(1, 4), label="classes")
    return [Arg(shape, "int", classes=k), Arg(shape + (k,))], {"k": k}


def _draw_array_operands(d):
    sx, sc = _broadcast(d)
    c = ufst.array(sc, d.draw(SEEDS, label="constant seed"))
    return [Arg(sx)], {"c": c}


def _draw_pow_scalar(d):
    return [Arg(_shape(d), low=0.5, high=2.0)], {
        "p": d.draw(st.sampled_from([2, 3, 1, 0.5, -1.5, 2.5]), label="exponent")}


def _draw_compare(d):
    sa, sb = _broadcast(d)
    op = d.draw(st.sampled_from(["greater", "greater_equal", "less", "less_equal", "equal",
                                 "not_equal"]), label="comparison")
    return [Arg(sa, grid=0.0), Arg(sb, grid=0.0)], {"op": op}   # on a grid: ties happen


def _draw_methods(d):
    n, m = d.draw(st.integers(1, MAX_SIDE), label="n"), d.draw(st.integers(1, MAX_SIDE), label="m")
    return [Arg((n, m), away=0.1)], {}


def _draw_clip(d):
    shape = _shape(d)
    lower = d.draw(st.sampled_from([None, -1.0, -0.5, 0.0]), label="lower")
    upper = d.draw(st.sampled_from([None, 0.5, 1.0] if lower is not None else [0.5, 1.0]),
                   label="upper")
    return [Arg(shape, grid=0.25)], {"lower": lower, "upper": upper}   # never at a bound


def _draw_clip_nodes(d):
    sx, sl, su = _broadcast(d, 3)
    return [Arg(sx, grid=0.25), Arg(sl, low=-2.0, high=-0.5, grid=0.0),
            Arg(su, low=0.5, high=2.0, grid=0.0)], {}


def _draw_variance(d):
    [arg], kwargs = _draw_reduce(d)
    axes = range(len(arg.shape)) if kwargs["axis"] is None else \
        [kwargs["axis"]] if isinstance(kwargs["axis"], int) else kwargs["axis"]
    count = math.prod(arg.shape[a] for a in axes)
    kwargs["ddof"] = d.draw(st.integers(0, min(1, count - 1)), label="ddof")
    return [arg], kwargs


def _draw_argmax(d):
    shape = _shape(d)
    axis = None if not shape or d.draw(st.booleans(), label="flat") else _axis(d, len(shape))
    return [Arg(shape)], {"axis": axis, "keepdims": d.draw(st.booleans(), label="keepdims")}


# subscripts users write: products, attention, outer products, transposes, diagonals, traces,
# implicit outputs, '...' and size-1 broadcasting
EINSUMS = ["ij,jk->ik", "ij,j->i", "i,ij->j", "i,i->", "i,j->ij", "qd,kd->qk", "bqd,bkd->bqk",
           "bqk,bkd->bqd", "ij->ji", "ij->", "ii->i", "ii", "ij,jk", "ij,jk,kl->il",
           "...i,...j->...ij", "...ij,...jk->...ik", "ijk->kij", "i,i->i"]


def _draw_einsum(d):
    spec = d.draw(st.sampled_from(EINSUMS), label="subscripts")
    lhs = spec.split("->")[0].split(",")
    size = {c: d.draw(st.integers(1, MAX_SIDE), label=f"size of {c}")
            for c in dict.fromkeys("".join(lhs).replace(".", ""))}
    dots = list(_broadcast(d, len(lhs), max_dims=2))
    shapes = []
    for term, lead in zip(lhs, dots):
        dims = tuple(size[c] for c in term.replace("...", ""))
        if spec == "i,i->i" and d.draw(st.booleans(), label="broadcast a 1"):
            dims = (1,) if not shapes else dims
        shapes.append((lead if "..." in term else ()) + dims)
    return [Arg(s) for s in shapes], {"subscripts": spec}


def _draw_embedding(d):
    vocabulary = d.draw(st.integers(1, 4), label="vocabulary")
    row = _shape(d, max_dims=2, label="row shape")
    tokens = _shape(d, max_dims=2, label="tokens shape")
    return [Arg((vocabulary,) + row), Arg(tokens, "int", classes=vocabulary)], {}


def np_logsumexp(x, axis, keepdims):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def np_softplus(x):
    return np.log1p(np.exp(x))


_OPERATOR = {"greater": "__gt__", "greater_equal": "__ge__", "less": "__lt__",
             "less_equal": "__le__", "equal": "__eq__", "not_equal": "__ne__"}


def _compare(a, b, op):
    if op in _OPERATOR and a.shape == b.shape:      # the Python operator form too
        return getattr(a, _OPERATOR[op])(b)
    return getattr(uf, op)(a, b)


CASES: list[OpCase] = [
    # arithmetic, with broadcasting
    _binary("add", lambda a, b: a + b, np.add),
    _binary("sub", lambda a, b: a - b, np.subtract),
    _binary("mul", lambda a, b: a * b, np.multiply),
    _binary("div", lambda a, b: a / b, np.divide, b={"away": 0.5}),
    _binary("pow", lambda a, b: a ** b, np.power, a={"low": 0.5, "high": 2.0}),
    _binary("maximum", uf.maximum, np.maximum, a={"grid": 0.25}, b={"grid": 0.0}),
    _binary("minimum", uf.minimum, np.minimum, a={"grid": 0.25}, b={"grid": 0.0}),
    OpCase("clip", _draw_clip, uf.clip, lambda x, lower, upper: np.clip(x, lower, upper)),
    OpCase("clip_nodes", _draw_clip_nodes, uf.clip, np.clip),
    _binary("functions", lambda a, b: uf.subtract(uf.multiply(uf.add(a, b), b),
                                                  uf.divide(a, uf.add(b * b, 1.0))),
            lambda a, b: (a + b) * b - a / (b * b + 1.0)),
    OpCase("pow_scalar", _draw_pow_scalar, lambda x, p: x ** p, lambda x, p: x ** p),
    OpCase("pow_negative_base", lambda d: ([Arg(_shape(d), away=0.1)], {
        "p": d.draw(st.sampled_from([2, 3]), label="exponent")}),
        lambda x, p: uf.power(x, p), lambda x, p: np.power(x, p)),
    OpCase("rpow", lambda d: ([Arg(_shape(d))], {}), lambda x: 2.0 ** x, lambda x: 2.0 ** x),
    OpCase("array_operands", _draw_array_operands,
           lambda x, c: c * x - c / (x * x + 1) + 2 * x - 1,
           lambda x, c: c * x - c / (x * x + 1) + 2 * x - 1),
    OpCase("add_n", _draw_add_n, lambda *xs: uf.add_n(list(xs)),
           lambda *xs: functools.reduce(np.add, xs)),
    _unary("neg", lambda x: -x, np.negative),
    _unary("neg_function", uf.neg, np.negative),
    _unary("exp", uf.exp, np.exp),
    _unary("log", uf.log, np.log, low=0.2, high=3.0),
    _unary("tanh", uf.tanh, np.tanh),
    _unary("sigmoid", uf.sigmoid, lambda x: 1 / (1 + np.exp(-x)), low=-6, high=6),
    _unary("tanh_deriv", tanh_deriv, lambda y: 1 - y * y, low=-0.99, high=0.99),
    _unary("sigmoid_deriv", sigmoid_deriv, lambda y: y * (1 - y), low=0.01, high=0.99),
    _unary("relu", uf.relu, lambda x: np.maximum(x, 0), away=0.1),
    _unary("abs", uf.abs, np.abs, away=0.1),
    _unary("sqrt", uf.sqrt, np.sqrt, low=0.2, high=3.0),
    _unary("sign", uf.sign, np.sign, away=0.1),
    _unary("softplus", uf.softplus, np_softplus, low=-6, high=6),
    _unary("log1p", uf.log1p, np.log1p, low=-0.8, high=3.0),
    _unary("expm1", uf.expm1, np.expm1),
    _unary("sin", uf.sin, np.sin, low=-3.0, high=3.0),
    _unary("cos", uf.cos, np.cos, low=-3.0, high=3.0),
    # linear algebra and indexing
    OpCase("matmul", _draw_matmul, lambda a, b: a @ b, np.matmul),
    OpCase("outer", lambda d: ([Arg((d.draw(st.integers(1, MAX_SIDE), label="n"),)),
                                Arg((d.draw(st.integers(1, MAX_SIDE), label="m"),))], {}),
           uf.outer, np.multiply.outer),
    OpCase("getitem", _draw_getitem, lambda x, key: x[key], lambda x, key: x[key]),
    OpCase("einsum", _draw_einsum, lambda *xs, subscripts: uf.einsum(subscripts, *xs),
           lambda *xs, subscripts: np.einsum(subscripts, *xs)),
    OpCase("embedding", _draw_embedding, uf.embedding, lambda table, tokens: table[tokens]),
    # reductions
    OpCase("sum", _draw_reduce, uf.sum, np.sum),
    OpCase("mean", _draw_reduce, uf.mean, np.mean),
    OpCase("max", _draw_reduce, uf.max, np.max),
    OpCase("min", _draw_reduce, uf.min, np.min),
    OpCase("prod", _draw_reduce, uf.prod, np.prod),
    OpCase("logsumexp", _draw_reduce, uf.logsumexp, np_logsumexp),
    OpCase("var", _draw_variance, uf.var, np.var),
    OpCase("std", _draw_variance, uf.std, np.std),
    OpCase("argmax", _draw_argmax, uf.argmax, np.argmax, wrt=()),
    # shape
    OpCase("reshape", _draw_reshape, uf.reshape, np.reshape),
    OpCase("transpose", _draw_transpose, uf.transpose, np.transpose),
    OpCase("concat", _draw_concat, lambda *xs, axis: uf.concat(list(xs), axis=axis),
           lambda *xs, axis: np.concatenate(xs, axis=axis)),
    OpCase("stack", _draw_stack, lambda *xs, axis: uf.stack(list(xs), axis=axis),
           lambda *xs, axis: np.stack(xs, axis=axis)),
    OpCase("methods", _draw_methods,
           lambda x: abs(-x.T).reshape(-1).max() + x.sum(axis=0).mean(keepdims=True) + (+x)[0, 0]
           + x.min(axis=1),
           lambda x: np.abs(-x.T).reshape(-1).max() + x.sum(axis=0).mean(keepdims=True) + x[0, 0]
           + x.min(axis=1)),
    # selection
    OpCase("where", _draw_where, uf.where, np.where),
    OpCase("compare", _draw_compare, _compare, lambda a, b, op: getattr(np, op)(a, b), wrt=()),
    # output layer
    OpCase("softmax", _draw_softmax, uf.softmax, np_softmax),
    OpCase("log_softmax", _draw_softmax, uf.log_softmax, np_log_softmax),
    OpCase("cross_entropy", _draw_cross_entropy, uf.cross_entropy, np_cross_entropy),
    OpCase("cross_entropy_grad", _draw_cross_entropy_grad,
           lambda g, o, y, axis: apply(CROSS_ENTROPY_GRAD, g, o, y, axis=axis % o.ndim),
           np_cross_entropy_grad),
    OpCase("mse", _draw_mse, uf.mse, lambda p, t, reduction: np_reduce((p - t) ** 2, reduction)),
    OpCase("one_hot", _draw_one_hot, lambda t, x, k: uf.one_hot(t, k) * x,
           lambda t, x, k: np.eye(k)[t] * x),
    # dtype
    OpCase("cast_float32", lambda d: ([Arg(_shape(d))], {}),
           lambda x: uf.cast(uf.tanh(uf.cast(x, "float32")), np.float64),
           lambda x: np.tanh(x.astype(np.float32)).astype(np.float64),
           second_order=False, tol=dict(eps=1e-3, atol=1e-4, rtol=1e-3), rtol=1e-6),
    OpCase("cast_int", lambda d: ([Arg(s := _shape(d), "int", classes=5), Arg(s)], {}),
           lambda t, x: uf.cast(t, "float64") * x, lambda t, x: t.astype(np.float64) * x),
    OpCase("named", lambda d: ([Arg(_shape(d))], {}), lambda x: uf.named(uf.tanh(x), "h") * x,
           lambda x: np.tanh(x) * x),
    OpCase("stop_gradient", lambda d: ([Arg(s := _shape(d)), Arg(s)], {}),
           lambda x, y: x * uf.stop_gradient(y), lambda x, y: x * y, wrt=(0,)),
]

CASE_IDS = [c.name for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)

# every public op of unfold appears in some case (the table is the checklist)
COVERED = {"add", "subtract", "multiply", "divide", "power", "neg", "matmul", "getitem", "exp",
           "log", "tanh", "sigmoid", "relu", "abs", "sqrt", "sign", "sum", "mean", "max",
           "reshape", "transpose", "concat", "stack", "maximum", "where", "softmax",
           "log_softmax", "cross_entropy", "mse", "cast", "stop_gradient", "one_hot", "add_n",
           "greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "named",
           "outer", "minimum", "min", "clip", "logsumexp", "softplus", "log1p", "expm1", "sin",
           "cos", "argmax", "prod", "var", "std", "einsum", "embedding"}
