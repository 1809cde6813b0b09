"""Echo state networks (section 10.8): a fixed random reservoir, a learned readout — learned by
gradient descent like any model, or in closed form by ridge regression (``ridge_readout``)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import arguments, ops
from ..errors import FeedError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError
from ..feed import _as_array
from ..evaluate import evaluate
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import builder, chain, new_state


@arguments.allocates
def reservoir(n: int, m: int, *, spectral_radius: float = 0.95, input_scale: float = 1.0,
              seed: int | np.random.Generator = 0, dtype: Any = np.float64
              ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed weights ``(W, U)``: ``W`` (n×n) Gaussian, rescaled so that its spectral radius — the
    largest |eigenvalue|, which decides whether the state's memory of its past fades or
    explodes — is ``spectral_radius`` (just below 1: the edge of stability); ``U`` (n×m)
    uniform in ``[−input_scale, input_scale]``."""
    n = arguments.positive_int("reservoir: n (its units)", n)
    m = arguments.positive_int("reservoir: m (the input size)", m)
    spectral_radius = arguments.positive("reservoir: spectral_radius", spectral_radius)
    input_scale = arguments.real("reservoir: input_scale", input_scale, low=0.0)
    dtype = arguments.float_dtype("reservoir: dtype", dtype)
    rng = arguments.generator("reservoir: seed", seed)
    W = rng.standard_normal((n, n))
    W *= spectral_radius / np.max(np.abs(np.linalg.eigvals(W)))
    U = rng.uniform(-input_scale, input_scale, (n, m))
    return W.astype(dtype), U.astype(dtype)


def echo_state_cell(rec: Recurrence, x: Node, n: int, *, carry: bool = False,
                    spectral_radius: float = 0.95, input_scale: float = 1.0,
                    seed: int = 0) -> Node:
    """The reservoir of an echo state network::

        h(t) = tanh(W h(t−1) + U x(t))

    with ``W`` and ``U`` fixed random constants (``reservoir``), not parameters: nothing is
    learned inside the recurrence, so no gradient has to travel through time. Returns ``h(t)``."""
    W, U = reservoir(n, x.shape[0], spectral_radius=spectral_radius, input_scale=input_scale,
                     seed=seed, dtype=x.dtype)
    h = new_state(rec, "h", n, x.dtype, carry)
    return rec.update(h, ops.tanh(ops.constant(W, name="W") @ h + ops.constant(U, name="U") @ x))


@builder
def echo_state(n_in: int, n_hidden: int, n_out: int, *, spectral_radius: float = 0.95,
               input_scale: float = 1.0, seed: int = 0, loss: str = "squared_error",
               outputs: str = "every", inputs: str = "vectors", carry: bool = False,
               dtype: Any = np.float64) -> Recurrence:
    """An echo state network (section 10.8)::

        h(t) = tanh(W h(t−1) + U x(t))      W, U fixed; ρ(W) = spectral_radius
        o(t) = c + V h(t)                   V, c learned

    Only the output weights are parameters (``V``, ``c``), so training is a convex problem for
    the squared-error loss (the default). Same sequences and options as ``unfold.models.rnn``.
    The fixed weights are exactly ``W, U = reservoir(n_hidden, n_in, spectral_radius=…,
    input_scale=…, seed=seed)`` (the same arrays every time for the same arguments), held in the
    graph as the constants named ``W`` and ``U``.
    """
    return chain("echo_state", echo_state_cell, n_in, n_hidden, n_out, loss=loss,
                 outputs=outputs, inputs=inputs, carry=carry, dtype=dtype,
                 spectral_radius=spectral_radius, input_scale=input_scale, seed=seed)


def ridge_readout(rec: Recurrence, feed: Mapping[str, Any], *, ridge: float = 0.0,
                  washout: int = 0, state: str = "h") -> dict[str, np.ndarray]:
    """The readout of an echo state network in closed form: the ``V``, ``c`` minimising

        Σ_{t > washout} Σ_examples ‖c + V h(t) − y(t)‖²  +  ridge · ‖V‖²_F

    over the reservoir states ``h(t)`` that ``rec`` runs through on ``feed["x"]`` (τ, [batch,]
    n_in), against ``feed["y"]`` (τ, [batch,] n_out). With ``washout = 0`` this is the model's own
    squared-error loss ``L`` plus the ridge penalty, so it is where gradient training of ``V`` and
    ``c`` converges (the problem is convex: the reservoir is fixed). Solved as the least-squares
    problem ``‖[Z; √ridge P] w − [Y; 0]‖²`` with ``Z = [h(t)ᵀ 1]`` (numpy's ``lstsq``: stable, and
    the minimum-norm solution if the states are degenerate); the bias is not penalised. Returns
    ``{"V": (n_out, n), "c": (n_out,)}``, ready to feed."""
    ridge = arguments.real("ridge_readout: ridge", ridge, low=0.0)
    washout = arguments.positive_int("ridge_readout: washout", washout, minimum=0)
    if not isinstance(rec, Recurrence):
        raise UnfoldTypeError(f"ridge_readout: expected a Recurrence (unfold.models.echo_state),"
                              f" got {type(rec).__name__} {rec!r:.60}")
    if not isinstance(feed, Mapping) or "x" not in feed or "y" not in feed:
        raise UnfoldTypeError(f"ridge_readout: the feed must be a dict with the sequences 'x' and "
                              f"'y', got {type(feed).__name__}")
    if state not in rec.states:
        raise UnfoldKeyError(f"ridge_readout: {rec.name!r} has no state {state!r}; its states "
                             f"are {sorted(rec.states)}")
    if "V" not in rec.params or "c" not in rec.params:
        raise UnfoldValueError(f"ridge_readout: {rec.name!r} has no linear readout o = c + V h "
                               f"(params V and c); build it with unfold.models.echo_state")
    x, y = _as_array("ridge_readout: x", feed["x"]), _as_array("ridge_readout: y", feed["y"])
    if x.ndim == 0:
        raise FeedError(f"ridge_readout: x must be a sequence (τ, [batch,] n_in), got a scalar")
    steps = x.shape[0]
    if not 0 <= washout < steps:
        raise UnfoldValueError(f"ridge_readout: washout must be in 0 … {steps - 1}, got "
                               f"{washout!r}")
    n = rec.states[state].shape[0]
    k = rec.params["c"].shape[0]
    inputs = {name: v for name, v in feed.items() if name != "y"}
    states = np.stack(evaluate(rec.unfold(steps).over_time(state), inputs))
    if y.shape != states.shape[:-1] + (k,) or y.dtype.kind not in "biuf":
        raise FeedError(f"ridge_readout: y must be the targets (τ, [batch,] n_out) = "
                        f"{states.shape[:-1] + (k,)} of real numbers, like x's steps and batch, "
                        f"got {y.dtype} of shape {y.shape}")
    for what, values in (("the reservoir states h(t) (from x and the parameters)", states),
                         ("y", y)):
        if not np.all(np.isfinite(values)):
            raise FeedError(f"ridge_readout: {what} hold NaN or infinite values; the "
                            f"least-squares readout needs finite ones")
    H = states[washout:].reshape(-1, n)
    Y = y[washout:].reshape(-1, k)
    Z = np.hstack([H, np.ones((len(H), 1), H.dtype)])
    penalty = np.sqrt(ridge) * np.eye(n + 1, dtype=H.dtype)[:n]
    w = np.linalg.lstsq(np.vstack([Z, penalty]), np.vstack([Y, np.zeros((n, k))]),
                        rcond=None)[0]
    dtype = rec.params["V"].dtype
    return {"V": w[:n].T.astype(dtype), "c": w[n].astype(dtype)}
