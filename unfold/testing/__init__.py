"""Gradient checks for users' own graphs: reverse mode against central finite differences.

    from unfold.testing import gradcheck
    gradcheck(loss, [W, U, x], feed)       # raises GradcheckError naming the worst element

Hypothesis strategies for shapes, arrays, random expression graphs and random recurrences are in
``unfold.testing.strategies``; ``gradcheck_recurrence`` checks a drawn recurrence::

    @given(unfold.testing.strategies.recurrences())
    def test_bptt(drawn):
        unfold.testing.gradcheck_recurrence(drawn)

``unfold.testing.recurrences.cells()`` draws cells the way people write them (stacked matrices
over ``concat([x, h])``, slices of one pre-activation, σ before or after slicing, gate products,
several states, delays); it gives the same ``RandomRecurrence``, e.g. to compare
``evaluate(…)`` with ``evaluate(…, mode="reference")`` on each drawn cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .. import arguments
from ..errors import (GradcheckError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError,
                      describe)
from ..evaluate import compile, evaluate
from ..grad import grad
from ..graph import Node
from ..ops import batch_sum, constant, sum
from ..ops.base import is_placeholder

__all__ = ["gradcheck", "gradgradcheck", "gradcheck_recurrence", "GradcheckReport",
           "numeric_grad"]


@dataclass(frozen=True)
class GradcheckReport:
    """The outcome of a check: the worst element over all checked leaves."""

    node: str
    index: tuple
    analytic: float
    numeric: float
    error: float
    checked: int

    def __str__(self) -> str:
        return (f"worst element: {self.node}{list(self.index)} analytic {self.analytic:.10g}, "
                f"numeric {self.numeric:.10g} (|diff| {self.error:.3g}); "
                f"{self.checked} elements checked")


def _scalarize(y: Node, seed: int) -> Node:
    """``y`` itself if it is a scalar, else ``Σ r ⊙ y`` for a fixed random ``r``; summed over the
    batch either way."""
    y = batch_sum(y)
    if y.shape == ():
        return y
    r = np.random.default_rng(seed).uniform(0.5, 1.5, size=y.shape) * \
        np.random.default_rng(seed + 1).choice([-1.0, 1.0], size=y.shape)
    return sum(y * constant(r.astype(y.dtype)))


def _checked(y: Any, wrt: Any, feed: Any, eps: Any, atol: Any, rtol: Any, seed: Any,
             what: str = "gradcheck") -> list[Node]:
    """The arguments of a check, refused with a message when they cannot make a check."""
    if not isinstance(y, Node):
        raise UnfoldTypeError(f"{what}: y must be a node, got {type(y).__name__} {y!r}")
    if not isinstance(feed, Mapping):
        raise UnfoldTypeError(f"{what}: the feed must be a mapping (node or name → array), got "
                              f"{type(feed).__name__}")
    wrt = [wrt] if isinstance(wrt, Node) else wrt
    if isinstance(wrt, (str, bytes)) or not hasattr(wrt, "__iter__"):
        raise UnfoldTypeError(f"{what}: wrt must be a node or a list of nodes, got {wrt!r}")
    wrt = list(wrt)
    if not wrt:
        raise UnfoldValueError(f"{what}: wrt is empty, so nothing would be checked; give the "
                               f"inputs and params to check")
    arguments.positive(f"{what}: eps (the finite-difference step)", eps)
    arguments.real(f"{what}: atol", atol, low=0.0)
    arguments.real(f"{what}: rtol", rtol, low=0.0)
    arguments.positive_int(f"{what}: seed", seed, minimum=0)
    return wrt


def _perturbable(wrt: Sequence[Node], feed: Mapping[Any, Any]) -> tuple[dict, dict]:
    """A float64 copy of the feed, and for each leaf of ``wrt`` a view into it to perturb — for
    a step copy ``x(t)`` of a sequence fed whole, slice ``t`` of the sequence's array."""
    values, views, copied = dict(feed), {}, set()
    for x in wrt:
        if not isinstance(x, Node) or not is_placeholder(x):
            raise UnfoldTypeError(f"gradcheck perturbs fed values: {x!r} must be an input or "
                                  f"param (to check ∂y/∂h for an inner h, make h an input of a "
                                  f"subgraph)")
        if x.dtype != np.float64:
            raise UnfoldTypeError(f"gradcheck needs float64 for finite differences; "
                                  f"{describe(x)} is {x.dtype} — build the graph with "
                                  f"dtype=np.float64 for the check")
        owner = x.source if x.step is not None and x.source is not None else x
        qualified = f"{owner.attrs['recurrence']}.{owner.name}" \
            if "recurrence" in owner.attrs else None        # a joined graph's encoder.W
        key = next((k for k in (x, owner, qualified, owner.name) if k in values), None)
        if key is None:
            raise UnfoldKeyError(f"gradcheck: {describe(x)} is not in the feed; feed it by node "
                                 f"or by name")
        if key not in copied:
            values[key] = np.array(values[key], dtype=np.float64)
            copied.add(key)
        views[x] = values[key] if owner is x or key is x else values[key][x.step - 1]
    return values, views


def numeric_grad(y: Node, wrt: Sequence[Node], feed: Mapping[Any, Any], eps: float = 1e-6,
                 seed: int = 0) -> list[np.ndarray]:
    """Central finite differences ``(f(x + ε) − f(x − ε)) / 2ε`` of the scalarized ``y``, element
    by element, for each fed leaf in ``wrt`` (a sequence's step copy ``x(t)`` included)."""
    wrt = _checked(y, wrt, feed, eps, 0.0, 0.0, seed, "numeric_grad")
    program = compile([_scalarize(y, seed)])
    values, views = _perturbable(wrt, feed)
    out = []
    for x in wrt:
        array = views[x]
        g = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            old = array[index]
            array[index] = old + eps
            plus = float(program(values)[0])
            array[index] = old - eps
            minus = float(program(values)[0])
            array[index] = old
            g[index] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


def gradcheck(y: Node, wrt: Sequence[Node] | Node, feed: Mapping[Any, Any], *,
              eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5,
              seed: int = 0) -> GradcheckReport:
    """Check ``unfold.grad`` of ``y`` with respect to the fed leaves ``wrt`` against central
    finite differences, in float64.

    A non-scalar ``y`` is reduced to ``Σ r ⊙ y`` with fixed random weights ``r`` (from ``seed``),
    and a batched one is summed over the batch. Passes when every element satisfies
    ``|analytic − numeric| ≤ atol + rtol·|numeric|``; otherwise raises ``GradcheckError`` naming
    the worst element (which leaf, which index, both values). Returns the report either way.
    """
    wrt = _checked(y, wrt, feed, eps, atol, rtol, seed)
    f = _scalarize(y, seed)
    analytic = evaluate(grad(f, wrt), feed)
    numeric = numeric_grad(y, wrt, feed, eps=eps, seed=seed)
    worst, worst_excess, checked = None, -np.inf, 0
    for x, a, n in zip(wrt, analytic, numeric):
        if a.shape != n.shape:
            raise GradcheckError(f"gradient of {x.label!r} has shape {a.shape}, but its fed value "
                                 f"has shape {n.shape}")
        checked += n.size
        if n.size == 0:
            continue
        excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        excess = np.where(np.isfinite(a) & np.isfinite(n), excess, np.inf)
        i = np.unravel_index(int(np.argmax(excess)), n.shape)
        if excess[i] > worst_excess:
            worst_excess = float(excess[i])
            worst = GradcheckReport(x.label, tuple(int(k) for k in i), float(a[i]), float(n[i]),
                                    float(abs(a[i] - n[i])), 0)
    if worst is None:
        return GradcheckReport("", (), 0.0, 0.0, 0.0, checked)
    report = GradcheckReport(worst.node, worst.index, worst.analytic, worst.numeric, worst.error,
                             checked)
    if worst_excess > 0:
        raise GradcheckError(f"reverse mode disagrees with finite differences (atol {atol}, "
                             f"rtol {rtol}, eps {eps}); {report}")
    return report


def gradgradcheck(y: Node, wrt: Sequence[Node] | Node, feed: Mapping[Any, Any], *,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
                  seed: int = 0) -> GradcheckReport:
    """Second order: check the Hessian-vector products ``∇ₓ (vᵀ ∇ₓ y)`` that ``grad(grad(…))``
    builds, for a fixed random ``v``, against finite differences of the first gradient."""
    wrt = _checked(y, wrt, feed, eps, atol, rtol, seed, "gradgradcheck")
    f = _scalarize(y, seed)
    first = grad(f, wrt)
    rng = np.random.default_rng(seed + 2)
    projected = [sum(batch_sum(g) * constant(rng.uniform(-1, 1, g.shape))) for g in first]
    total = projected[0]
    for p in projected[1:]:
        total = total + p
    return gradcheck(total, wrt, feed, eps=eps, atol=atol, rtol=rtol, seed=seed)


def gradcheck_recurrence(drawn, inputs: bool = True, **tolerances: Any) -> GradcheckReport:
    """Gradcheck a recurrence drawn by ``strategies.recurrences()``: its total loss with respect
    to every parameter and (with ``inputs``) every step copy ``x(t)`` of its input sequence."""
    from .recurrences import check_gradients
    return check_gradients(drawn, inputs, **tolerances)
