"""Long-term dependencies (section 10.7): how gradients travel back through time, and the
spectrum of the recurrent weights that decides it.

For ``h(t) = Wᵀ h(t−1)`` (no input, no nonlinearity), ``h(t) = Qᵀ Λᵗ Q h(0)`` when
``W = Q Λ Qᵀ``: components along eigenvalues of modulus < 1 vanish, those > 1 explode, and the
same holds, through the Jacobians ``∂h(t)/∂h(t−1)``, for the gradients ``∇h(t) L`` that
back-propagation sends to early steps."""
from __future__ import annotations

import weakref
from typing import Any, Mapping

import numpy as np

from . import arguments
from .errors import UnfoldTypeError, UnfoldValueError
from .evaluate import compile
from .grad import grad
from .recurrence import Unfolded

_PROGRAMS: "weakref.WeakKeyDictionary[Unfolded, dict]" = weakref.WeakKeyDictionary()


def hidden_gradient_norms(net: Unfolded, feed: Mapping[Any, Any], state: str = "h"
                          ) -> np.ndarray:
    """``‖∇h(t) L‖`` for t = 1 … τ: the norm of the gradient of the total loss with respect to
    each step's state (the full derivative, through every later step). On a batch, the mean over
    examples of the per-example norms. Compiled once per ``net`` and ``state``."""
    if not isinstance(net, Unfolded):
        raise UnfoldTypeError(f"hidden_gradient_norms: expected an unfolded recurrence "
                              f"(rec.unfold(τ)), got {type(net).__name__}")
    programs = _PROGRAMS.setdefault(net, {})
    program = programs.get(state)
    if program is None:
        program = programs[state] = compile(grad(net.loss, net.over_time(state)))
    values = program(feed)
    shape = net.recurrence.states[state].shape
    norms = []
    for g in values:
        g = np.asarray(g)
        per_example = g.reshape((-1, int(np.prod(shape, dtype=np.int64)))) \
            if g.ndim > len(shape) else g.reshape((1, -1))
        norms.append(float(np.linalg.norm(per_example, axis=1).mean()))
    return np.array(norms)


def eigenvalues(W: np.ndarray) -> np.ndarray:
    """The eigenvalues of a square recurrent weight, largest modulus first."""
    W = _square("eigenvalues", W)
    lam = np.linalg.eigvals(W)
    return lam[np.argsort(-np.abs(lam), kind="stable")]


def spectral_radius(W: np.ndarray) -> float:
    """``max |λ|`` over the eigenvalues of ``W``: below 1 the linear recurrence forgets
    (gradients vanish), above 1 it may explode."""
    return float(np.abs(eigenvalues(W)[0]))


def power_norms(W: np.ndarray, steps: int) -> np.ndarray:
    """``‖Wᵗ‖₂`` for t = 1 … steps: how a linear recurrence scales what it carries over t
    steps (the ``Λᵗ`` of eq. 10.39)."""
    W = _square("power_norms", W).astype(np.float64)
    steps = arguments.positive_int("power_norms: steps", steps)
    out, P = [], np.eye(W.shape[0])
    for _ in range(steps):
        P = P @ W
        out.append(float(np.linalg.norm(P, 2)))
    return np.array(out)


def _square(what: str, W: Any) -> np.ndarray:
    """A recurrent weight: a finite, real, square matrix."""
    try:
        W = np.asarray(W)
    except (TypeError, ValueError):
        raise UnfoldTypeError(f"{what}: a recurrent weight is a square array of numbers") from None
    if W.dtype.kind not in "biuf":
        raise UnfoldTypeError(f"{what}: a recurrent weight is an array of real numbers, got "
                              f"{W.dtype}")
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] == 0:
        raise UnfoldValueError(f"{what}: a recurrent weight is square, got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise UnfoldValueError(f"{what}: the weight has NaN or infinite elements")
    return W
