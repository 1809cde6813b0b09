"""Echo state networks (section 10.8): a fixed random reservoir, a learned readout."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import arguments, ops
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import chain, new_state


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


def echo_state(n_in: int, n_hidden: int, n_out: int, *, spectral_radius: float = 0.95,
               input_scale: float = 1.0, seed: int = 0, loss: str = "squared_error",
               outputs: str = "every", inputs: str = "vectors", carry: bool = False,
               dtype: Any = np.float64) -> Recurrence:
    """An echo state network (section 10.8)::

        h(t) = tanh(W h(t−1) + U x(t))      W, U fixed; ρ(W) = spectral_radius
        o(t) = c + V h(t)                   V, c learned

    Only the output weights are parameters (``V``, ``c``), so training is a convex problem for
    the squared-error loss (the default). Same sequences and options as ``unfold.models.rnn``.
    """
    return chain("echo_state", echo_state_cell, n_in, n_hidden, n_out, loss=loss,
                 outputs=outputs, inputs=inputs, carry=carry, dtype=dtype,
                 spectral_radius=spectral_radius, input_scale=input_scale, seed=seed)
