"""Optimisers and gradient clipping (section 10.11.1), on parameters held as numpy arrays.

Parameters and gradients are dicts ``name → array``; ``update`` changes the parameters in place
(the arrays a compiled program is fed with)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

Arrays = Mapping[str, np.ndarray]


class Optimizer:
    """``update(params, grads)`` takes one step, in place."""

    def __init__(self, lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr!r}")
        self.lr = float(lr)
        self.t = 0

    def update(self, params: dict[str, np.ndarray], grads: Arrays) -> None:
        missing = set(params) - set(grads)
        if missing:
            raise KeyError(f"{type(self).__name__}.update: no gradient for {sorted(missing)}")
        self.t += 1
        for name, p in params.items():
            p -= self._delta(name, np.asarray(grads[name], p.dtype)).astype(p.dtype, copy=False)

    def _delta(self, name: str, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: ``θ ← θ − ε g``."""

    def _delta(self, name, g):
        return self.lr * g


class Momentum(Optimizer):
    """SGD with momentum (the book's Algorithm 8.2)::

        v ← α v − ε g,    θ ← θ + v
    """

    def __init__(self, lr: float, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = float(momentum)
        self.v: dict[str, np.ndarray] = {}

    def _delta(self, name, g):
        v = self.v.get(name)
        v = -self.lr * g if v is None else self.momentum * v - self.lr * g
        self.v[name] = v
        return -v


class Adam(Optimizer):
    """Adam (the book's Algorithm 8.7)::

        s ← ρ₁ s + (1 − ρ₁) g,          r ← ρ₂ r + (1 − ρ₂) g ⊙ g
        ŝ = s / (1 − ρ₁ᵗ),               r̂ = r / (1 − ρ₂ᵗ)
        θ ← θ − ε ŝ / (√r̂ + δ)
    """

    def __init__(self, lr: float = 1e-3, rho1: float = 0.9, rho2: float = 0.999,
                 delta: float = 1e-8) -> None:
        super().__init__(lr)
        self.rho1, self.rho2, self.delta = float(rho1), float(rho2), float(delta)
        self.s: dict[str, np.ndarray] = {}
        self.r: dict[str, np.ndarray] = {}

    def _delta(self, name, g):
        s = self.s[name] = self.rho1 * self.s.get(name, 0.0) + (1 - self.rho1) * g
        r = self.r[name] = self.rho2 * self.r.get(name, 0.0) + (1 - self.rho2) * g * g
        s_hat = s / (1 - self.rho1 ** self.t)
        r_hat = r / (1 - self.rho2 ** self.t)
        return self.lr * s_hat / (np.sqrt(r_hat) + self.delta)


def global_norm(grads: Arrays) -> float:
    """``‖g‖``: the Euclidean norm of all gradients taken together."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_by_norm(grads: Arrays, threshold: float) -> tuple[dict[str, np.ndarray], float]:
    """Clip the norm of the whole gradient (section 10.11.1, Pascanu et al. 2013)::

        if ‖g‖ > v:  g ← g v / ‖g‖

    The direction is kept; the step is bounded. Returns the clipped gradients and ``‖g‖`` before
    clipping."""
    if not threshold > 0:
        raise ValueError(f"clip threshold must be positive, got {threshold!r}")
    norm = global_norm(grads)
    if norm <= threshold or not np.isfinite(norm):
        return dict(grads), norm
    scale = threshold / norm
    return {k: g * scale for k, g in grads.items()}, norm


def clip_elementwise(grads: Arrays, threshold: float) -> dict[str, np.ndarray]:
    """Clip every element of the gradient to ``[−v, v]`` (section 10.11.1, Mikolov 2012). The
    direction may change."""
    if not threshold > 0:
        raise ValueError(f"clip threshold must be positive, got {threshold!r}")
    return {k: np.clip(g, -threshold, threshold) for k, g in grads.items()}
