"""Synthetic tasks for the structured models of chapter 10, generated on the spot (no downloads):

* ``logic_expressions`` — random Boolean expression trees to evaluate (recursive nets, 10.6);
* ``copy_sequences`` — a sequence of symbols to reproduce after a delimiter (explicit memory,
  10.12);
* ``mackey_glass`` and ``sine_mixture`` — time series to predict one step ahead (echo state
  networks, 10.8).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import arguments
from ..errors import UnfoldTypeError, UnfoldValueError

#: the tokens of ``logic_expressions``
FALSE, TRUE, AND, OR, XOR = range(5)
LOGIC_TOKENS = ("F", "T", "and", "or", "xor")


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return arguments.generator("seed", seed)


@arguments.allocates
def logic_expressions(n_ops: int, batch: int, seed: int | np.random.Generator | None = 0,
                      shape: Any = None) -> tuple[Any, np.ndarray, np.ndarray]:
    """``batch`` random Boolean expressions of ``n_ops`` operators (``and``, ``or``, ``xor``) over
    ``T``/``F``, all of one random bracketing (``shape``: a ``Tree`` over the ``n_ops + 1``
    values, random by default), so that they share one unfolding along the batch axis.

    An expression ``(l op r)`` is the binary tree ``((l, op), r)`` over its tokens in reading
    order, so a recursive net sees every token as a leaf. Returns ``(tree, tokens, truth)``: the
    tree (``unfold.models.Tree``) over the ``2·n_ops + 1`` tokens, ``tokens`` (2·n_ops + 1,
    batch) int64 ids of ``LOGIC_TOKENS``, and ``truth`` (batch,) int64 — 1 where the expression
    is true."""
    from ..models.recursive import Tree

    n_ops = arguments.positive_int("logic_expressions: n_ops", n_ops, minimum=0)
    batch = arguments.positive_int("logic_expressions: batch", batch)
    if shape is not None and not isinstance(shape, Tree):
        raise UnfoldTypeError(f"logic_expressions: shape must be a Tree, got "
                              f"{type(shape).__name__}")
    rng = _rng(seed)
    values_tree = Tree.random(n_ops + 1, rng) if shape is None else shape
    if values_tree.n_leaves != n_ops + 1:
        raise UnfoldValueError(f"logic_expressions: a shape over {values_tree.n_leaves} values "
                               f"has {values_tree.n_leaves - 1} operators, not {n_ops}")
    values = rng.integers(FALSE, TRUE + 1, (n_ops + 1, batch))
    operators = rng.integers(AND, XOR + 1, (n_ops, batch))
    # leaves of the nested form: value i as i, operator j as −(j + 1) (ints, not pairs)
    nested: list[Any] = list(range(n_ops + 1))
    truth = list(values.astype(bool))
    for j, (a, b) in enumerate(values_tree.children):
        nested.append(((nested[a], -(j + 1)), nested[b]))
        op = operators[j]
        truth.append(np.where(op == AND, truth[a] & truth[b],
                              np.where(op == OR, truth[a] | truth[b], truth[a] ^ truth[b])))
    tree, leaves = Tree.from_nested(nested[-1])
    tokens = np.stack([values[i] if i >= 0 else operators[-i - 1] for i in leaves])
    return tree, tokens.astype(np.int64), truth[-1].astype(np.int64)


@arguments.allocates
def copy_sequences(length: int, symbols: int, batch: int,
                   seed: int | np.random.Generator | None = 0) -> dict[str, np.ndarray]:
    """The copy task: read ``length`` random symbols, then a delimiter, then reproduce them.

    Symbols are ``0 … symbols−1``; the delimiter is ``symbols`` and the blank ``symbols + 1``
    (``symbols + 2`` input classes). Over τ = 2·length + 1 steps the input is ``s₁ … s_L,
    delimiter, blank × L`` and the target ``s₁ … s_L`` at the last ``length`` steps (blank before;
    those steps are not scored). Returns ``x`` (τ, batch) int64, ``y`` (τ, batch) int64 and
    ``scored`` (τ,) float: 1 on the steps whose loss counts."""
    length = arguments.positive_int("copy_sequences: length", length)
    symbols = arguments.positive_int("copy_sequences: symbols", symbols, minimum=2)
    batch = arguments.positive_int("copy_sequences: batch", batch)
    rng = _rng(seed)
    s = rng.integers(0, symbols, (length, batch))
    delimiter, blank = symbols, symbols + 1
    x = np.concatenate([s, np.full((1, batch), delimiter), np.full((length, batch), blank)])
    y = np.concatenate([np.full((length + 1, batch), blank), s])
    scored = np.concatenate([np.zeros(length + 1), np.ones(length)])
    return {"x": x.astype(np.int64), "y": y.astype(np.int64), "scored": scored}


@arguments.allocates
def mackey_glass(steps: int, *, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                 n: float = 10.0, dt: float = 0.1, sample: float = 1.0, x0: float = 1.2,
                 washout: int = 500) -> np.ndarray:
    """The Mackey–Glass series, chaotic for the classic delay τ = 17::

        dx/dt = β x(t − τ) / (1 + x(t − τ)ⁿ) − γ x(t)

    integrated with 4th-order Runge–Kutta at step ``dt`` (the delayed value held constant over a
    step, taken from the stored history) from a constant history ``x0``, sampled every
    ``sample`` time units; the first ``washout`` samples (the transient) are dropped. Returns
    ``steps`` samples."""
    steps = arguments.positive_int("mackey_glass: steps", steps, minimum=0)
    washout = arguments.positive_int("mackey_glass: washout", washout, minimum=0)
    tau = arguments.positive("mackey_glass: tau", tau)
    dt = arguments.positive("mackey_glass: dt", dt)
    sample = arguments.real("mackey_glass: sample", sample, low=dt)
    for what, value in (("beta", beta), ("gamma", gamma), ("n", n), ("x0", x0)):
        arguments.real(f"mackey_glass: {what}", value)
    per = int(round(sample / dt))
    lag = int(round(tau / dt))
    total = (steps + washout) * per
    history = np.full(lag + total + 1, x0)

    def f(x, delayed):
        return beta * delayed / (1.0 + delayed ** n) - gamma * x

    for i in range(lag, lag + total):
        x, d = history[i], history[i - lag]
        k1 = f(x, d)
        k2 = f(x + 0.5 * dt * k1, d)
        k3 = f(x + 0.5 * dt * k2, d)
        k4 = f(x + dt * k3, d)
        history[i + 1] = x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return history[lag::per][washout:washout + steps].copy()


@arguments.allocates
def sine_mixture(steps: int, periods: tuple[float, ...] = (7.0, 13.3, 29.1),
                 phases: tuple[float, ...] | None = None) -> np.ndarray:
    """``Σ_j sin(2π t / P_j + φ_j) / J`` for t = 0 … steps−1: a quasi-periodic series."""
    steps = arguments.positive_int("sine_mixture: steps", steps, minimum=0)
    if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence) or not periods:
        raise UnfoldValueError(f"sine_mixture: periods must be a non-empty list of periods, got "
                               f"{periods!r}")
    periods = tuple(arguments.positive("sine_mixture: a period", p) for p in periods)
    phases = phases if phases is not None else tuple(0.7 * j for j in range(len(periods)))
    if isinstance(phases, (str, bytes)) or not isinstance(phases, Sequence) or \
            len(phases) != len(periods):
        raise UnfoldValueError(f"sine_mixture: give one phase per period ({len(periods)}), got "
                               f"{phases!r}")
    phases = tuple(arguments.real("sine_mixture: a phase", p) for p in phases)
    t = np.arange(steps, dtype=np.float64)
    return sum(np.sin(2 * np.pi * t / p + ph) for p, ph in zip(periods, phases)) / len(periods)
