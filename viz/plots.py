"""The chapter's two plots, computed by unfold and drawn with matplotlib (the ``plot`` extra).

* ``composition`` (Fig. 10.15): repeated composition of one tanh layer, ``h(t) = tanh(W h(t−1))``
  from initial states along a line through a 100-dimensional space, each ``h(t)`` projected on
  one direction: the more compositions, the more nonlinear the cross-section (section 10.7).
* ``cliff`` (Fig. 10.17): a recurrent network with two parameters ``w``, ``b``,
  ``h(t) = tanh(w h(t−1) + b)``, whose loss after τ steps has a cliff; gradient descent without
  clipping is thrown far by the cliff's gradient, with norm clipping (section 10.11.1) it is not.

Both are live unfold recurrences, evaluated and differentiated by unfold; matplotlib only draws.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import unfold as uf
from unfold.errors import UnfoldError
from unfold.train import clip_by_norm, global_norm


class PlotUnavailableError(UnfoldError, ImportError):
    """The plots need matplotlib, which is not installed."""


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailableError("the chapter's plots need matplotlib: pip install "
                                   "'unfold[plot]' (or pip install matplotlib)") from e
    return plt


# --- Fig. 10.15 ----------------------------------------------------------------------------------

def composition_values(n: int = 100, steps: int = 5, points: int = 400, gain: float = 2.0,
                       seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """The curves of Fig. 10.15: the coordinate of the initial state along a random direction
    (x axis), and for t = 0 … steps the projection of ``h(t)`` on another random direction."""
    rng = np.random.default_rng(seed)
    rec = uf.Recurrence("repeated tanh layer")
    h = rec.state("h", (n,), init=rec.context("h0", (n,)))
    W = rec.param("W", (n, n))
    rec.update(h, uf.tanh(W @ h))
    net = rec.unfold(steps)
    direction = rng.standard_normal(n)
    direction /= np.linalg.norm(direction)
    projection = rng.standard_normal(n)
    projection /= np.linalg.norm(projection)
    x = np.linspace(-1.0, 1.0, points)
    h0 = x[:, None] * direction * np.sqrt(n)
    weights = rng.standard_normal((n, n)) * gain / np.sqrt(n)
    states = uf.evaluate(net.over_time("h"), {"h0": h0, W: weights})
    return x, [h0 @ projection] + [s @ projection for s in states]


def composition(steps: int = 5, seed: int = 0) -> Any:
    """Fig. 10.15 as a matplotlib figure."""
    plt = _pyplot()
    x, curves = composition_values(steps=steps, seed=seed)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(curves)))
    for t, (y, c) in enumerate(zip(curves, colours)):
        ax.plot(x, y, color=c, lw=1.6, label=f"{t}")
    ax.set_xlabel("input coordinate (initial state along a random direction)")
    ax.set_ylabel("projection of output")
    ax.set_title("Repeated composition of a tanh layer, h(t) = tanh(W h(t−1))", fontsize=10)
    ax.legend(title="compositions", fontsize=8, title_fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --- Fig. 10.17 ----------------------------------------------------------------------------------

TAU = 30                # steps of the two-parameter network
TARGET = 0.7            # what h(τ) should be


def _cliff_net():
    """``h(t) = tanh(w h(t−1) + b)``, ``h(0) = 0.5``, loss ``(h(τ) − 0.7)²``; ``w`` and ``b``
    are inputs, so that one evaluation gives the loss on a whole grid of them."""
    rec = uf.Recurrence("two-parameter recurrence")
    w, b = rec.context("w", ()), rec.context("b", ())
    h = rec.state("h", (), init=uf.constant(np.array(0.5)))
    h_t = rec.update(h, uf.tanh(w * h + b))
    rec.loss("L", (h_t - TARGET) ** 2, steps="last")
    net = rec.unfold(TAU)
    return net, w, b


def cliff_values(grid: int = 160, start: tuple[float, float] = (2.5, 0.3),
                 lr: float = 2.0, iterations: int = 40, clip: float = 0.2) -> dict[str, Any]:
    """The loss on a grid of (w, b), and gradient-descent paths from ``start`` without and with
    clipping the gradient's norm to ``clip``."""
    net, w, b = _cliff_net()
    loss = net.losses("L")[0]
    ws, bs = np.linspace(-1.0, 3.5, grid), np.linspace(-1.5, 1.5, grid)
    W, B = np.meshgrid(ws, bs)
    (surface,) = uf.evaluate([loss], {"w": W.ravel(), "b": B.ravel()})
    step = uf.compile([loss] + uf.grad(net.loss, [w, b]))
    paths = {}
    for name, threshold in (("without clipping", None), ("with clipping", clip)):
        point = np.array(start, dtype=np.float64)
        path = [point.copy()]
        norms = []
        for _ in range(iterations):
            _, gw, gb = step({"w": point[0], "b": point[1]})
            grads = {"w": np.asarray(gw), "b": np.asarray(gb)}
            norms.append(global_norm(grads))
            if threshold is not None:
                grads, _ = clip_by_norm(grads, threshold)
            point = point - lr * np.array([grads["w"], grads["b"]], dtype=np.float64)
            path.append(point.copy())
        paths[name] = (np.array(path), norms)
    return {"w": ws, "b": bs, "loss": surface.reshape(W.shape), "paths": paths,
            "start": start, "lr": lr, "clip": clip}


def cliff(**options: Any) -> Any:
    """Fig. 10.17 as a matplotlib figure: two panels, the loss landscape with the path of
    gradient descent without and with clipping."""
    plt = _pyplot()
    v = cliff_values(**options)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    log = np.log10(v["loss"] + 1e-6)
    for ax, (name, (path, norms)) in zip(axes, v["paths"].items()):
        ax.contourf(v["w"], v["b"], log, levels=30, cmap="viridis")
        ax.plot(path[:, 0], path[:, 1], "-o", color="white", ms=3, lw=1.2)
        ax.plot(*path[0], "o", color="red", ms=6, label="start")
        ax.set_xlim(v["w"][0], v["w"][-1])
        ax.set_ylim(v["b"][0], v["b"][-1])
        clipped = f" to {v['clip']}" if name == "with clipping" else ""
        ax.set_title(f"{name}{clipped}: the largest ‖∇‖ met is {max(norms):.3g}", fontsize=10)
        ax.set_xticks(np.arange(-1.0, 3.01, 1.0))      # (3.5 would touch the next panel's −1)
        ax.set_xlabel("w")
    axes[0].set_ylabel("b")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"The cliff of h(t) = tanh(w h(t−1) + b), loss (h(τ) − {TARGET})², τ = {TAU}: "
                 f"log10 loss; gradient descent, ε = {v['lr']}, clip ‖g‖ to {v['clip']}",
                 fontsize=10)
    fig.tight_layout()
    return fig
