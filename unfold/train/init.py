"""Parameter initialisation: scaled Gaussian weights, orthogonal recurrent weights, zero biases."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from .. import arguments
from ..errors import UnfoldTypeError
from ..graph import Node
from ..ops.base import _check_shape

#: gate biases that start open: the LSTM forget gate and the GRU update gate keep the state at
#: first (σ(1) ≈ 0.73), so gradients flow through time from the first step of training
GATE_BIASES = {"b_f": 1.0, "b_u": 1.0}


@arguments.allocates
def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian one, signs fixed so it is uniform): all its
    eigenvalues have modulus 1, so ``Wᵗ`` neither explodes nor vanishes (section 10.7)."""
    n = arguments.positive_int("orthogonal: n", n)
    rng = arguments.generator("orthogonal: rng", rng)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _own_name(name: str) -> str:
    """The name within its scope: ``encoder.W`` → ``W``, ``g.b_f`` → ``b_f``."""
    return name.rpartition(".")[2]


def _is_bias(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) <= 1 and _own_name(name)[:1] in ("b", "c")


@arguments.allocates
def init_params(params: Any, *,
                seed: int | np.random.Generator = 0, recurrent: str = "orthogonal",
                gain: float = 1.0, biases: Mapping[str, float] | None = None,
                dtype=None) -> dict[str, np.ndarray]:
    """Initial values for the parameters of a recurrence or joined model (by its ``params``
    names: ``encoder.W`` …), of nodes, or of ``name → shape``; a name's last dotted part
    (``W`` of ``encoder.W``) decides its kind:

    * biases (``b…``, ``c…`` vectors and scalars): zeros, except ``biases`` (default
      ``GATE_BIASES``: forget and update gates open);
    * square weights named ``W…`` (recurrent): ``recurrent="orthogonal"`` (default),
      ``"gaussian"`` (scaled as below) or ``"identity"``, times ``gain``;
    * every other weight: scaled Gaussian ``N(0, gain² / fan_in)``, fan_in = last dimension.
    """
    arguments.choice("init_params: recurrent", recurrent, ("orthogonal", "gaussian", "identity"))
    gain = arguments.real("init_params: gain", gain)
    rng = arguments.generator("init_params: seed", seed)
    if dtype is not None:
        dtype = arguments.float_dtype("init_params: dtype", dtype)
    if isinstance(params, Iterable) and not isinstance(params, (Mapping, str)):
        params = list(params)
    if isinstance(getattr(params, "params", None), Mapping):   # a recurrence, or a joined model
        specs = [(k, p.shape, dtype or p.dtype) for k, p in params.params.items()]
    elif isinstance(params, Mapping):
        specs = [(k, _check_shape(s, f"init_params: {k!r}"), dtype or np.dtype(np.float64))
                 for k, s in params.items()]
    elif isinstance(params, list) and all(isinstance(p, Node) for p in params):
        specs = [(p.name, p.shape, dtype or p.dtype) for p in params]
    else:
        raise UnfoldTypeError(f"init_params: give a recurrence, its param nodes, or a dict "
                              f"name → shape; got {type(params).__name__}")
    biases = GATE_BIASES if biases is None else biases
    if not isinstance(biases, Mapping):
        raise UnfoldTypeError(f"init_params: biases must be a dict name → value, got "
                              f"{type(biases).__name__}")
    biases = {k: arguments.real(f"init_params: the bias {k!r}", v) for k, v in biases.items()}
    out = {}
    for name, shape, dt in specs:
        if _is_bias(name, shape):
            value = np.full(shape, biases.get(name, biases.get(_own_name(name), 0.0)))
        elif _own_name(name).startswith("W") and len(shape) == 2 and shape[0] == shape[1] \
                and recurrent != "gaussian":
            value = gain * (orthogonal(shape[0], rng) if recurrent == "orthogonal"
                            else np.eye(shape[0]))
        else:
            fan_in = shape[-1] if shape else 1
            value = rng.standard_normal(shape) * gain / np.sqrt(fan_in)
        out[name] = np.asarray(value, dt)
    return out
