"""Long-term dependencies (section 10.7): how gradients travel back through time, and the
spectrum of the recurrent weights that decides it.

For ``h(t) = Wᵀ h(t−1)`` (no input, no nonlinearity), ``h(t) = Qᵀ Λᵗ Q h(0)`` when
``W = Q Λ Qᵀ``: components along eigenvalues of modulus < 1 vanish, those > 1 explode, and the
same holds, through the Jacobians ``∂h(t)/∂h(t−1)``, for the gradients ``∇h(t) L`` that
back-propagation sends to early steps. ``omega`` is the regulariser of section 10.11.2 that asks
those Jacobians to keep the gradient's norm."""
from __future__ import annotations

import math
import weakref
from typing import Any, Mapping, Sequence

import numpy as np

from . import arguments, ops
from .errors import RecurrenceError, UnfoldTypeError, UnfoldValueError
from .evaluate import compile
from .grad import grad
from .graph import Node, gc_paused, substitute, topological
from .ops.base import CONSTANT, named, unmasked
from .recurrence import STATE, Unfolded

_PROGRAMS: "weakref.WeakKeyDictionary[Unfolded, dict]" = weakref.WeakKeyDictionary()


def hidden_gradient_norms(net: Unfolded, feed: Mapping[Any, Any], state: str = "h"
                          ) -> np.ndarray:
    """``‖∇h(t) L‖`` for t = 1 … τ: the norm of the gradient of the total loss with respect to
    each step's state (the full derivative, through every later step). On a batch, the mean over
    examples of the per-example norms. Compiled once per ``net`` and ``state``."""
    if not isinstance(net, Unfolded):
        raise UnfoldTypeError(f"hidden_gradient_norms: expected an unfolded recurrence "
                              f"(rec.unfold(τ)), got {type(net).__name__}")
    if state not in net.recurrence.states:
        raise RecurrenceError(f"hidden_gradient_norms: recurrence {net.recurrence.name!r} has no "
                              f"state {state!r}; its states are {sorted(net.recurrence.states)}")
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


@arguments.allocates
def power_norms(W: np.ndarray, steps: int) -> np.ndarray:
    """``‖Wᵗ‖₂`` for t = 1 … steps: how a linear recurrence scales what it carries over t
    steps (the ``Λᵗ`` of eq. 10.39)."""
    W = _square("power_norms", W).astype(np.float64)
    steps = arguments.positive_int("power_norms: steps", steps)
    out, P = np.empty(steps), np.eye(W.shape[0])
    for t in range(steps):
        with np.errstate(over="ignore", invalid="ignore"):
            Q = P @ W
        finite = np.isfinite(Q).all()
        out[t] = float(np.linalg.norm(Q, 2)) if finite else \
            math.nan if np.isnan(Q).any() else math.inf
        if not finite or not Q.any() or np.array_equal(Q, P):
            out[t:] = out[t]        # overflowed, vanished or a fixed point: so are later powers
            break
        P = Q
    return out


# --- regularising the information flow (section 10.11.2) -----------------------------------------

def omega(net: Unfolded, states: str | Sequence[str] | None = None, *,
          approximate: bool = False, hold_states: bool = False) -> Node:
    """Pascanu et al.'s (2013) regulariser (eq. 10.50), a scalar node summed over the batch::

        Ω = Σ_t ( ‖(∇h(t) L) ∂h(t)/∂h(t−1)‖ / ‖∇h(t) L‖ − 1 )²,     t = 1 … τ

    ``∇h(t) L`` is the gradient of ``net.loss`` with respect to the state at step ``t`` (the
    full derivative, as back-propagation through time sends it); ``∂h(t)/∂h(t−1)`` is the one-step
    Jacobian of the update through the state's delay-1 read (``h(0)`` is the initial state; a
    backward state's read is ``h(t+1)``). The norms are Euclidean, per example. ``states`` picks
    the state(s) — several are taken jointly, as one vector (an LSTM's ``s`` and ``h``); by
    default every forward state (or, if there are none, every backward one). On an unfolding with
    a ``mask`` a padded step carries its state, ``∂h(t)/∂h(t−1) = I``, and adds nothing.

    States taken jointly are one state vector ``z(t) = (s(t), h(t))``: ``∇z(t) L`` is the
    gradient with respect to its coordinates as independent variables (with ``h(t)`` held
    fixed, ``∇s(t) L`` is what flows into ``s(t)`` from later steps, not also through ``h(t) =
    tanh(s(t)) q(t)`` of the same step), and ``∂z(t)/∂z(t−1)`` the full one-step Jacobian; so
    ``(∇z(t) L) ∂z(t)/∂z(t−1)`` is exactly the part of ``∇z(t−1) L`` that comes through step
    ``t``, as the ratio intends.

    Ω is built from gradient nodes, so ``unfold.grad(Ω, params)`` differentiates it exactly
    (through ``∇h(t) L`` as well: second derivatives). ``approximate=True`` holds the
    back-propagated vectors ``∇h(t) L`` constant (``stop_gradient``), as the paper does to keep
    the cost first-order; ``hold_states=True`` also holds every data-dependent value of the
    Jacobian constant — every per-example value of the step: the states ``h(t−1)``, ``h(t)``,
    and for gated cells the gates and pre-activations — leaving only its direct dependence on
    the weights (for Fig. 10.3, ``diag(1 − h(t)²) W`` with ``h(t)`` fixed): the paper's
    "immediate derivative" with both held fixed. The value of Ω is the same in every
    case; only its gradient changes. Add it to the loss as a penalty: ``net.loss + λ Ω``.
    """
    if not isinstance(net, Unfolded):
        raise UnfoldTypeError(f"omega: expected an unfolded recurrence (rec.unfold(τ)), got "
                              f"{type(net).__name__}")
    approximate = arguments.flag("omega: approximate", approximate)
    hold_states = arguments.flag("omega: hold_states", hold_states)
    rec = net.recurrence
    chosen = _omega_states(rec, states)
    body = set(rec.body())
    with gc_paused():
        # the one-step vector-Jacobian product in the folded graph, for seeds G (one per state):
        # v = Gᵀ ∂(h(t))/∂(h(t−1)), as gradient nodes to be copied into every step
        seeds = [ops.input(f"∇{st.name}", st.shape, st.dtype) for st in chosen]
        reads = [st.reads.get(1) for st in chosen]
        present = [r for r in reads if r is not None]
        pairing = ops.add_n([ops.sum(g * st.value) for g, st in zip(seeds, chosen)]) \
            if len(chosen) > 1 else ops.sum(seeds[0] * chosen[0].value)
        folded = grad(pairing, present) if present else []
        # states taken jointly: Gᵀ ∂(values)/∂(each value) within one step — the adjoints of
        # the values when G seeds them, from which the partial gradients are recovered
        within = grad(pairing, [st.value for st in chosen]) if len(chosen) > 1 else []
        forward = [n for n in topological(folded + within) if n in body and
                   n.op is not CONSTANT]
        times = range(1, net.steps + 1)
        flat = grad(net.loss, [net.at(st.value, t) for t in times for st in chosen])
        total: Node | None = None
        for i, t in enumerate(times):
            gs = flat[i * len(chosen):(i + 1) * len(chosen)]
            step: dict[Node, Node] = {}
            for n in forward:
                copy = net.at(n, t)
                if n.op is STATE and not copy.may_batch:
                    # the read is an initial state shared by the batch (zeros, a learned h(0)):
                    # carry the batch through it, so that the folded product stays per example
                    copy = copy + 0.0 * ops.sum(gs[0])
                step[n] = copy
            gs = _partial(gs, seeds, within, step)
            if approximate:
                gs = [ops.stop_gradient(g) for g in gs]
            mapping: dict[Node, Node] = dict(zip(seeds, gs))
            for n, copy in step.items():
                mapping[n] = ops.stop_gradient(copy) if hold_states and copy.may_batch else copy
            products = iter(substitute(folded, mapping))
            vs = [next(products) if r is not None else ops.constant(np.zeros(st.shape, st.dtype))
                  for r, st in zip(reads, chosen)]
            padding = None
            if net.mask is not None:
                m = net.at("mask", t)   # a boolean: select, never multiply
                vs = [ops.where(m, v, g) for v, g in zip(vs, gs)]
                padding = 1.0 - ops.cast(m, gs[0].dtype)   # a padded step's ratio is 1: both
                #                                             norms made √(s + 1)
            ratio = _norm(vs, padding) / _norm(gs, padding) - 1.0
            term = ratio * ratio
            total = term if total is None else total + term
        return named(ops.batch_sum(total), "Ω")


def _partial(totals: list[Node], seeds: list[Node], within: list[Node],
             step: dict[Node, Node]) -> list[Node]:
    """The gradients ``p`` with respect to jointly taken states as independent coordinates, from
    the total ones ``g`` (what back-propagation gives each value node): ``g = p + Nᵀ p``, with
    ``N`` the within-step dependence of the values on one another (an LSTM's ``h(t)`` on
    ``s(t)``) — nilpotent, so ``p = g − Nᵀ p`` is exact after as many rounds as states.
    ``within`` is ``Gᵀ ∂(values)/∂(value_i)`` (``= G + Nᵀ G``) in the folded graph; ``step`` maps
    its folded nodes to this step's copies."""
    p = totals
    for _ in range(len(totals) - 1):
        adjoints = substitute(within, {**step, **dict(zip(seeds, p))})
        p = [g - (a - q) for g, a, q in zip(totals, adjoints, p)]
    return p


def _omega_states(rec, states) -> list:
    table = rec.states
    if states is None:
        forward = [st for st in table.values() if not st.backward]
        chosen = forward or list(table.values())
    else:
        names = [states] if isinstance(states, str) else \
            list(states) if isinstance(states, (list, tuple)) else None
        if names is None or not all(isinstance(n, str) for n in names):
            raise UnfoldTypeError(f"omega: states are given by name (a string or a list of "
                                  f"them), got {states!r}; the states of {rec.name!r} are "
                                  f"{sorted(table)}")
        unknown = [n for n in names if n not in table]
        if unknown or not names:
            raise RecurrenceError(f"omega: recurrence {rec.name!r} has no state(s) {unknown}; "
                                  f"its states are {sorted(table)}")
        chosen = [table[n] for n in names]
    if not chosen:
        raise RecurrenceError(f"omega: recurrence {rec.name!r} has no state")
    if len({st.backward for st in chosen}) > 1:
        raise RecurrenceError(f"omega: states {[st.name for st in chosen]} run in both "
                              f"directions of time; their one-step Jacobians are not one "
                              f"transition — take the forward and the backward ones apart")
    return chosen


def _norm(vectors: list[Node], padding: Node | None = None) -> Node:
    """``‖(v₁, v₂, …)‖``: the Euclidean norm of the vectors taken together, per example (of
    ``√(‖v‖² + padding)`` on a padded step, where ∇h(t) L may be 0: finite, derivative too)."""
    squares = [ops.sum(v * v) for v in vectors] + ([padding] if padding is not None else [])
    return ops.sqrt(squares[0] if len(squares) == 1 else ops.add_n(squares))


def _square(what: str, W: Any) -> np.ndarray:
    """A recurrent weight: a finite, real, square matrix."""
    W = unmasked(W, f"{what}: the weight")
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
