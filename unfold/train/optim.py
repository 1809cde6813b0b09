"""Optimisers and gradient clipping (section 10.11.1), on parameters held as numpy arrays.

Parameters and gradients are dicts ``name → array``; ``update`` changes the parameters in place
(the arrays a compiled program is fed with). An update is all or nothing: every new value is
computed and checked first, and only then written. A non-finite gradient, or a step that would
make a parameter non-finite, raises ``NonFiniteError`` and leaves the parameters and the
optimiser's state (its moments and step count) bit-identical."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import arguments
from ..errors import UnfoldError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError
from ..ops.base import unmasked

Arrays = Mapping[str, np.ndarray]


class NonFiniteError(UnfoldError, FloatingPointError):
    """A loss, a gradient or an update is NaN or infinite; nothing was changed."""


def check_params(params: Any, what: str) -> dict[str, np.ndarray]:
    """``params`` as a dict of the writable floating-point arrays that updates change in place."""
    if not isinstance(params, Mapping):
        raise UnfoldTypeError(f"{what}: parameters must be a dict name → array, got "
                              f"{type(params).__name__}")
    for name, p in params.items():
        if not isinstance(name, str):
            raise UnfoldTypeError(f"{what}: parameter names must be strings, got "
                                  f"{type(name).__name__} {name!r}")
        unmasked(p, f"{what}: parameter {name!r}")
        if not isinstance(p, np.ndarray):
            raise UnfoldTypeError(f"{what}: parameter {name!r} is a {type(p).__name__}, not a "
                                  f"numpy array; updates change parameters in place: pass "
                                  f"np.array(value, dtype=float)")
        if p.dtype.kind != "f":
            raise UnfoldTypeError(f"{what}: parameter {name!r} is an array of {p.dtype}; a "
                                  f"gradient step needs floating-point parameters: pass "
                                  f"value.astype(np.float64)")
        if not p.flags.writeable:
            raise UnfoldValueError(f"{what}: parameter {name!r} is a read-only array; updates "
                                   f"change parameters in place: pass a writable copy, "
                                   f"np.array(value)")
    names = list(params)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if np.may_share_memory(params[a], params[b]):
                raise UnfoldValueError(f"{what}: parameters {a!r} and {b!r} share memory (one "
                                       f"array, or views of one); an in-place update of one "
                                       f"would change the other: give each its own copy")
    return dict(params)


def real_arrays(grads: Any, what: str) -> dict[str, np.ndarray]:
    """``grads`` (name → array of real numbers) as arrays."""
    if not isinstance(grads, Mapping):
        raise UnfoldTypeError(f"{what}: gradients must be a dict name → array, got "
                              f"{type(grads).__name__}")
    out = {}
    for name, g in grads.items():
        g = unmasked(g, f"{what}: the gradient of {name!r}")
        try:
            out[name] = np.asarray(g)
        except (TypeError, ValueError):
            out[name] = np.asarray(None)
        if out[name].dtype.kind not in "biuf":
            raise UnfoldTypeError(f"{what}: the gradient of {name!r} is not an array of real "
                                  f"numbers ({type(g).__name__})")
    return out


def check_finite(grads: Arrays, what: str) -> None:
    """Raise ``NonFiniteError`` naming the first gradient with a NaN or infinite element."""
    for name, g in real_arrays(grads, what).items():
        if not np.all(np.isfinite(g)):
            bad = int(np.size(g) - np.count_nonzero(np.isfinite(g)))
            raise NonFiniteError(f"{what}: the gradient of {name!r} has {bad} non-finite "
                                 f"element(s) (NaN or ±inf); nothing was changed")


class Optimizer:
    """``update(params, grads)`` takes one step, in place.

    Subclasses name their hyper-parameters (``hyper``, the constructor's arguments) and their
    per-parameter moments (``slots``), and define ``_delta(g, t, moments) -> (step, moments)``:
    the change ``θ ← θ − step`` at update ``t`` and the new moments, computed without side
    effects (``update`` commits them once every parameter's new value is known to be finite).
    """

    hyper: tuple[str, ...] = ("lr",)
    slots: tuple[str, ...] = ()

    def __init__(self, lr: float) -> None:
        self.lr = arguments.positive("learning rate", lr)
        self.t = 0
        self.moments: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slots}

    def update(self, params: dict[str, np.ndarray], grads: Arrays) -> None:
        what = f"{type(self).__name__}.update"
        params = check_params(params, what)
        grads = real_arrays(grads, what)
        missing, extra = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
        if missing or extra:
            raise UnfoldKeyError(f"{what}: no gradient for {missing}" if missing else
                                 f"{what}: gradients for unknown parameters {extra}")
        check_finite(grads, what)
        t = self.t + 1
        new_values, new_moments = {}, {s: {} for s in self.slots}
        for name, p in params.items():
            g = np.asarray(grads[name])
            if g.shape != p.shape:
                raise UnfoldValueError(f"{what}: the gradient of {name!r} has shape {g.shape} "
                                       f"but the parameter {p.shape}")
            moments = {s: self.moments[s].get(name) for s in self.slots}
            with np.errstate(over="ignore", invalid="ignore"):    # an overflow is refused below
                step, moments = self._delta(g.astype(p.dtype, copy=False), t, moments)
                value = p - np.asarray(step).astype(p.dtype, copy=False)
            if not np.all(np.isfinite(value)):
                raise NonFiniteError(f"{what}: the step would make {name!r} non-finite (a "
                                     f"learning rate of {self.lr:g} is too large for these "
                                     f"gradients); nothing was changed")
            new_values[name] = value
            for s in self.slots:
                new_moments[s][name] = moments[s]
        for name, p in params.items():
            p[...] = new_values[name]
        for s in self.slots:
            self.moments[s].update(new_moments[s])
        self.t = t

    def _delta(self, g: np.ndarray, t: int, moments: dict[str, Any]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    # --- training state: what resuming needs --------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The optimiser's kind and hyper-parameters."""
        return {"type": type(self).__name__, **{k: getattr(self, k) for k in self.hyper}}

    def state(self) -> dict[str, Any]:
        """The step count and per-parameter moments (copies): with ``load_state`` on an optimiser
        built alike, the next updates are bit-identical to this one's."""
        return {"type": type(self).__name__, "t": self.t,
                "moments": {s: {k: v.copy() for k, v in self.moments[s].items()}
                            for s in self.slots}}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state`` returned (checked whole before anything changes)."""
        kind = type(self).__name__
        if not isinstance(state, Mapping) or state.get("type") != kind:
            got = state.get("type") if isinstance(state, Mapping) else type(state).__name__
            raise UnfoldValueError(f"{kind}.load_state: the state is of a {got!r} optimiser; "
                                   f"restore it into the same kind of optimiser")
        t = state.get("t")
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 0:
            raise UnfoldValueError(f"{kind}.load_state: the step count must be an integer "
                                   f"≥ 0, got {t!r}")
        moments = state.get("moments", {})
        if not isinstance(moments, Mapping) or set(moments) != set(self.slots):
            raise UnfoldValueError(f"{kind}.load_state: expected the moments {list(self.slots)}"
                                   f", got {sorted(moments) if isinstance(moments, Mapping) else moments!r}")
        restored = {}
        for s in self.slots:
            if not isinstance(moments[s], Mapping):
                raise UnfoldValueError(f"{kind}.load_state: moment {s!r} is not a dict")
            restored[s] = {}
            for name, v in moments[s].items():
                v = np.asarray(v)
                if v.dtype.kind != "f":
                    raise UnfoldValueError(f"{kind}.load_state: moment {s!r} of {name!r} is "
                                           f"{v.dtype}, not floating-point")
                restored[s][str(name)] = v.copy()
        self.t, self.moments = int(t), restored


class SGD(Optimizer):
    """Stochastic gradient descent: ``θ ← θ − ε g``."""

    def _delta(self, g, t, moments):
        return self.lr * g, moments


class Momentum(Optimizer):
    """SGD with momentum (the book's Algorithm 8.2)::

        v ← α v − ε g,    θ ← θ + v

    ``α`` (``momentum``) is in [0, 1)."""

    hyper = ("lr", "momentum")
    slots = ("v",)

    def __init__(self, lr: float, momentum: float = 0.9) -> None:
        self.momentum = arguments.fraction("momentum", momentum)
        super().__init__(lr)

    def _delta(self, g, t, moments):
        v = moments["v"]
        v = -self.lr * g if v is None else self.momentum * v - self.lr * g
        return -v, {"v": v}


class Adam(Optimizer):
    """Adam (the book's Algorithm 8.7)::

        s ← ρ₁ s + (1 − ρ₁) g,          r ← ρ₂ r + (1 − ρ₂) g ⊙ g
        ŝ = s / (1 − ρ₁ᵗ),               r̂ = r / (1 − ρ₂ᵗ)
        θ ← θ − ε ŝ / (√r̂ + δ)

    ``ρ₁``, ``ρ₂`` are in [0, 1), ``δ > 0``."""

    hyper = ("lr", "rho1", "rho2", "delta")
    slots = ("s", "r")

    def __init__(self, lr: float = 1e-3, rho1: float = 0.9, rho2: float = 0.999,
                 delta: float = 1e-8) -> None:
        self.rho1 = arguments.fraction("Adam's rho1 (first-moment decay)", rho1)
        self.rho2 = arguments.fraction("Adam's rho2 (second-moment decay)", rho2)
        self.delta = arguments.positive("Adam's delta (the stabilising constant)", delta)
        super().__init__(lr)

    def _delta(self, g, t, moments):
        s = self.rho1 * (0.0 if moments["s"] is None else moments["s"]) + (1 - self.rho1) * g
        r = self.rho2 * (0.0 if moments["r"] is None else moments["r"]) + (1 - self.rho2) * g * g
        s_hat = s / (1 - self.rho1 ** t)
        r_hat = r / (1 - self.rho2 ** t)
        return self.lr * s_hat / (np.sqrt(r_hat) + self.delta), {"s": s, "r": r}


def global_norm(grads: Arrays) -> float:
    """``‖g‖``: the Euclidean norm of all gradients taken together (NaN or inf when an element
    is; finite gradients whose squares overflow are rescaled first, so their norm stays exact)."""
    arrays = list(real_arrays(grads, "global_norm").values())
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in arrays)))
    if norm == np.inf and all(np.all(np.isfinite(g)) for g in arrays):
        biggest = max(float(np.max(np.abs(g))) for g in arrays if g.size)
        norm = biggest * float(np.sqrt(sum(float(np.vdot(g / biggest, g / biggest))
                                           for g in arrays)))
    return norm


def clip_by_norm(grads: Arrays, threshold: float) -> tuple[dict[str, np.ndarray], float]:
    """Clip the norm of the whole gradient (section 10.11.1, Pascanu et al. 2013)::

        if ‖g‖ > v:  g ← g v / ‖g‖

    The direction is kept; the step is bounded. Returns the clipped gradients and ``‖g‖`` before
    clipping. A non-finite gradient has no direction to keep: ``NonFiniteError``."""
    threshold = arguments.positive("clip threshold", threshold)
    check_finite(grads, "clip_by_norm")
    norm = global_norm(grads)
    if norm <= threshold:
        return dict(grads), norm
    scale = threshold / norm
    return {k: g * scale for k, g in grads.items()}, norm


def clip_elementwise(grads: Arrays, threshold: float) -> dict[str, np.ndarray]:
    """Clip every element of the gradient to ``[−v, v]`` (section 10.11.1, Mikolov 2012). The
    direction may change. A non-finite gradient is refused (``NonFiniteError``): clipping an
    infinite element to ±v would turn an overflow into a plausible-looking step."""
    threshold = arguments.positive("clip threshold", threshold)
    check_finite(grads, "clip_elementwise")
    return {k: np.clip(g, -threshold, threshold) for k, g in grads.items()}
