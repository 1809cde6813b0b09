"""Hypothesis strategies: shapes, broadcastable shapes, well-conditioned arrays, and random
expression graphs over the ops of unfold (random recurrences live in ``recurrences``).

Arrays are drawn as a seed plus a distribution, not element by element: values are then well
spread (no accidental ties at a ``max`` or kinks at 0 from shrinking to all-zeros), the examples
stay small to print, and a failure names the seed that reproduces it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import arguments, ops
from ..errors import UnfoldValueError
from ..graph import Node
from ..ops.base import _check_shape

__all__ = ["shapes", "broadcastable_shapes", "arrays", "Expression", "expressions",
           "recurrences"]


def _bounds(what: str, low: Any, high: Any, minimum: int = 0) -> tuple[int, int]:
    """Two integer bounds ``minimum ≤ low ≤ high`` of a strategy (checked when it is made, not
    when hypothesis first draws from it)."""
    low = arguments.positive_int(f"{what}: min", low, minimum=minimum)
    high = arguments.positive_int(f"{what}: max", high, minimum=minimum)
    if low > high:
        raise UnfoldValueError(f"{what}: the minimum {low} is above the maximum {high}")
    return low, high


def _values(low: Any, high: Any, dtype: Any, away_from_zero: Any) -> np.dtype:
    """The arguments of ``array``/``arrays``: finite bounds low < high, a float dtype, a margin
    around zero ≥ 0."""
    low = arguments.real("arrays: low", low)
    high = arguments.real("arrays: high", high)
    if not low < high:
        raise UnfoldValueError(f"arrays: low ({low}) must be below high ({high})")
    arguments.real("arrays: away_from_zero", away_from_zero, low=0.0)
    return arguments.float_dtype("arrays: dtype", dtype)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
           ) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes, e.g. ``()``, ``(3,)``, ``(2, 1, 4)``."""
    _bounds("shapes: min_dims/max_dims", min_dims, max_dims)
    _bounds("shapes: min_side/max_side", min_side, max_side)
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         max_side: int = 4) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """Tuples of shapes that broadcast together under numpy's rule."""
    arguments.positive_int("broadcastable_shapes: num_shapes", num_shapes)
    _bounds("broadcastable_shapes: min_dims/max_dims", min_dims, max_dims)
    arguments.positive_int("broadcastable_shapes: max_side", max_side)
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims,
                                             max_dims=max_dims, max_side=max_side
                                             ).map(lambda r: r.input_shapes)


def array(shape: tuple[int, ...], seed: int, dtype: Any = np.float64, low: float = -2.0,
          high: float = 2.0, away_from_zero: float = 0.0) -> np.ndarray:
    """The array ``arrays`` draws, made from an explicit seed (to reproduce a failure)."""
    dtype = _values(low, high, dtype, away_from_zero)
    shape = _check_shape(shape, "array")
    rng = arguments.generator("array: seed", seed)
    values = rng.uniform(low, high, size=shape)
    if away_from_zero:
        small = np.abs(values) < away_from_zero
        values = np.where(small, np.copysign(away_from_zero, values) + values, values)
    return values.astype(dtype)


def arrays(shape: tuple[int, ...] | st.SearchStrategy, dtype: Any = np.float64,
           low: float = -2.0, high: float = 2.0, away_from_zero: float = 0.0
           ) -> st.SearchStrategy[np.ndarray]:
    """Finite, well-conditioned arrays: uniform in [low, high], optionally pushed at least
    ``away_from_zero`` from 0 (for kinks such as relu and abs, or denominators)."""
    _values(low, high, dtype, away_from_zero)
    if not isinstance(shape, st.SearchStrategy):
        shape = _check_shape(shape, "arrays")
    shape_st = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
    return st.builds(lambda s, seed: array(s, seed, dtype, low, high, away_from_zero),
                     shape_st, st.integers(0, 2**32 - 1))


# --- random expression graphs -------------------------------------------------------------------

@dataclass(eq=False)          # holds nodes: == between them is element-wise
class Expression:
    """A random graph: its output, its input leaves and a feed for them."""

    output: Node
    leaves: list[Node]
    feed: dict[Node, np.ndarray]
    description: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return "Expression(" + "; ".join(self.description) + ")"


# smooth, domain-safe building blocks: (name, arity, builder)
def _safe_unary() -> dict[str, Callable[[Node], Node]]:
    return {
        "tanh": ops.tanh,
        "sigmoid": ops.sigmoid,
        "exp∘tanh": lambda x: ops.exp(ops.tanh(x)),
        "log(1+x²)": lambda x: ops.log(1 + x * x),
        "sqrt(1+x²)": lambda x: ops.sqrt(1 + x * x),
        "neg": ops.neg,
        "square": lambda x: x ** 2,
        "softmax": lambda x: ops.softmax(x) if x.ndim else ops.tanh(x),
        "log_softmax": lambda x: ops.log_softmax(x) if x.ndim else ops.sigmoid(x),
        "transpose": lambda x: ops.transpose(x),
        "sum(-1)": lambda x: ops.sum(x, axis=-1) if x.ndim else x,
        "mean(0,keep)": lambda x: ops.mean(x, axis=0, keepdims=True) if x.ndim else x,
        "max(-1)": lambda x: ops.max(x, axis=-1) if x.ndim else x,
        "first": lambda x: x[:1] if x.ndim else x,
        "flatten": lambda x: ops.reshape(x, (-1,)),
    }


def _safe_binary() -> dict[str, Callable[[Node, Node], Node]]:
    return {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div(1+b²)": lambda a, b: a / (1 + b * b),
        "maximum": ops.maximum,
        "where(a>b)": lambda a, b: ops.where(a > b, a, b * 2.0),
    }


def _compatible(a: Node, b: Node) -> bool:
    try:
        np.broadcast_shapes(a.shape, b.shape)
        return True
    except ValueError:
        return False


def expressions(max_leaves: int = 3, max_ops: int = 6, max_dims: int = 2, max_side: int = 3,
                dtype: Any = np.float64) -> st.SearchStrategy[Expression]:
    """Random DAGs of unfold's ops over random input leaves (broadcasting, reductions, reshapes,
    matmul, concat, softmax …), each paired with a feed of well-conditioned values. The output is
    a scalar (the sum of the last node)."""
    return _expressions(arguments.positive_int("expressions: max_leaves", max_leaves),
                        arguments.positive_int("expressions: max_ops", max_ops),
                        arguments.positive_int("expressions: max_dims", max_dims, minimum=0),
                        arguments.positive_int("expressions: max_side", max_side),
                        arguments.float_dtype("expressions: dtype", dtype))


@st.composite
def _expressions(draw, max_leaves: int, max_ops: int, max_dims: int, max_side: int,
                 dtype: np.dtype) -> Expression:
    n_leaves = draw(st.integers(1, max_leaves))
    shapes_ = draw(broadcastable_shapes(n_leaves, min_dims=0, max_dims=max_dims,
                                        max_side=max_side))
    leaves = [ops.input(f"x{i}", s, dtype=dtype) for i, s in enumerate(shapes_)]
    # one distinct seed per leaf: hypothesis likes to repeat integers, and two leaves drawn from
    # one seed share their leading values — ties at a maximum or a where, where finite
    # differences and any derivative rule disagree
    seeds = draw(st.lists(st.integers(0, 2**32 - 1), min_size=n_leaves, max_size=n_leaves,
                          unique=True))
    feed = {leaf: array(leaf.shape, seed, dtype) for leaf, seed in zip(leaves, seeds)}
    pool, desc = list(leaves), [f"x{i}: {s}" for i, s in enumerate(shapes_)]
    unary, binary = _safe_unary(), _safe_binary()
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "matmul", "concat"]))
        a = draw(st.sampled_from(pool))
        if kind == "unary":
            name = draw(st.sampled_from(sorted(unary)))
            node = unary[name](a)
        elif kind == "binary":
            partners = [b for b in pool if _compatible(a, b)]
            b = draw(st.sampled_from(partners))
            name = draw(st.sampled_from(sorted(binary)))
            node = binary[name](a, b)
        elif kind == "matmul":
            partners = [b for b in pool if a.ndim >= 1 and b.ndim >= 1 and
                        (b.shape[-2] if b.ndim >= 2 else b.shape[0]) == a.shape[-1] and
                        (a.ndim <= 2 and b.ndim <= 2)]
            if not partners:
                continue
            b = draw(st.sampled_from(partners))
            name, node = "matmul", ops.matmul(a, b)
        else:
            partners = [b for b in pool if b.ndim == a.ndim and a.ndim >= 1 and
                        b.shape[1:] == a.shape[1:]]
            if not partners:
                continue
            b = draw(st.sampled_from(partners))
            name, node = "concat", ops.concat([a, b], axis=0)
        pool.append(node)
        desc.append(f"{name} → {node.shape}")
    out = ops.sum(pool[-1])
    return Expression(out, leaves, feed, desc)


def recurrences(*args, **kwargs):
    """Random valid recurrences (see ``unfold.testing.recurrence_strategies``)."""
    from .recurrences import recurrences as _recurrences
    return _recurrences(*args, **kwargs)
