"""Multiple time scales (section 10.9): leaky units, skip connections through time, and removed
length-one connections."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import affine, builder, chain, new_state


def leaky_cell(rec: Recurrence, x: Node, n: int, *, carry: bool = False,
               alpha: float | np.ndarray = 0.9) -> Node:
    """Leaky units (section 10.9.2): each hidden unit is a running average of the RNN update::

        v(t) = tanh(b + W h(t−1) + U x(t))
        h(t) = α h(t−1) + (1 − α) v(t)

    ``alpha`` is a number in [0, 1] or one per unit (a spectrum of time scales); α near 1 remembers
    for long (time constant ≈ 1/(1−α) steps), α = 0 is the ordinary RNN. It is fixed, not
    learned. Returns ``h(t)``."""
    try:
        a = np.asarray(alpha, dtype=x.dtype)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape not in ((), (n,)) or not np.all((a >= 0) & (a <= 1)):
        raise UnfoldValueError(f"leaky units: alpha must be in [0, 1], one number or "
                                         f"one per unit ({n}), got {alpha!r}")
    h = new_state(rec, "h", n, x.dtype, carry)
    v = rec.name_node("v", ops.tanh(affine(rec, n, "b", {"W": h, "U": x})))
    keep = ops.constant(a)
    return rec.update(h, keep * h + (1.0 - keep) * v)


def skip_cell(rec: Recurrence, x: Node, n: int, *, carry: bool = False, delay: int = 2,
              length_one: bool = True) -> Node:
    """Skip connections through time (section 10.9.1): a direct connection from the hidden
    units ``delay`` steps back, so that gradients shrink over τ/d steps rather than τ::

        h(t) = tanh(b + W h(t−1) + W_d h(t−d) + U x(t))

    ``length_one=False`` removes the length-one connections (section 10.9.3), leaving only the
    longer ones: ``h(t) = tanh(b + W_d h(t−d) + U x(t))`` (no ``W``). Before the first step every
    read of the past gives the initial state (zeros, or ``h0`` with carry). Returns ``h(t)``."""
    delay = arguments.positive_int("skip connections: the delay d", delay, minimum=2)
    h = new_state(rec, "h", n, x.dtype, carry)
    weights = {"W": h} if arguments.flag("skip connections: length_one", length_one) else {}
    weights.update({"W_d": rec.past(h, int(delay)), "U": x})
    return rec.update(h, ops.tanh(affine(rec, n, "b", weights)))


@builder
def leaky_rnn(n_in: int, n_hidden: int, n_out: int, *, alpha: float | np.ndarray = 0.9,
              loss: str = "cross_entropy", outputs: str = "every", inputs: str = "vectors",
              carry: bool = False, dtype: Any = np.float64) -> Recurrence:
    """An RNN of leaky units (``leaky_cell``: ``h(t) = α h(t−1) + (1−α) tanh(b + W h(t−1) +
    U x(t))``) read out by ``o(t) = c + V h(t)``. Params ``U, W, b, V, c``."""
    return chain("leaky_rnn", leaky_cell, n_in, n_hidden, n_out, loss=loss, outputs=outputs,
                 inputs=inputs, carry=carry, dtype=dtype, alpha=alpha)


@builder
def skip_rnn(n_in: int, n_hidden: int, n_out: int, *, delay: int = 2, length_one: bool = True,
             loss: str = "cross_entropy", outputs: str = "every", inputs: str = "vectors",
             carry: bool = False, dtype: Any = np.float64) -> Recurrence:
    """An RNN with skip connections of delay ``d`` (``skip_cell``: ``h(t) = tanh(b + W h(t−1) +
    W_d h(t−d) + U x(t))``, without ``W`` when ``length_one=False``) read out by
    ``o(t) = c + V h(t)``. Params ``U, W, W_d, b, V, c``."""
    return chain("skip_rnn", skip_cell, n_in, n_hidden, n_out, loss=loss, outputs=outputs,
                 inputs=inputs, carry=carry, dtype=dtype, delay=delay, length_one=length_one)
