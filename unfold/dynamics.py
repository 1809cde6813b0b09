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

from .evaluate import compile
from .grad import grad
from .recurrence import Unfolded

_PROGRAMS: "weakref.WeakKeyDictionary[Unfolded, dict]" = weakref.WeakKeyDictionary()


def hidden_gradient_norms(net: Unfolded, feed: Mapping[Any, Any], state: str = "h"
                          ) -> np.ndarray:
    """``‖∇h(t) L‖`` for t = 1 … τ: the norm of the gradient of the total loss with respect to
    each step's state (the full derivative, through every later step). On a batch, the mean over
    examples of the per-example norms. Compiled once per ``net`` and ``state``."""
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
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"eigenvalues: a recurrent weight is square, got shape {W.shape}")
    lam = np.linalg.eigvals(W)
    return lam[np.argsort(-np.abs(lam), kind="stable")]


def spectral_radius(W: np.ndarray) -> float:
    """``max |λ|`` over the eigenvalues of ``W``: below 1 the linear recurrence forgets
    (gradients vanish), above 1 it may explode."""
    return float(np.abs(eigenvalues(W)[0]))


def power_norms(W: np.ndarray, steps: int) -> np.ndarray:
    """``‖Wᵗ‖₂`` for t = 1 … steps: how a linear recurrence scales what it carries over t
    steps (the ``Λᵗ`` of eq. 10.39)."""
    W = np.asarray(W, np.float64)
    out, P = [], np.eye(W.shape[0])
    for _ in range(steps):
        P = P @ W
        out.append(float(np.linalg.norm(P, 2)))
    return np.array(out)
