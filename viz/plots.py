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


W_RANGE, B_RANGE = (-1.0, 3.5), (-1.5, 1.5)      # the plotted window of (w, b)


def _inside(point: np.ndarray) -> bool:
    return bool(W_RANGE[0] <= point[0] <= W_RANGE[1] and B_RANGE[0] <= point[1] <= B_RANGE[1])


def cliff_values(grid: int = 160, start: tuple[float, float] = (2.0, -0.6),
                 lr: float = 0.1, iterations: int = 60, clip: float = 1.0) -> dict[str, Any]:
    """The loss on a grid of (w, b), and gradient-descent paths ``θ ← θ − ε g`` from ``start``
    without and with clipping the gradient's norm to ``clip`` (section 10.11.1).

    From the default start, on the plateau where h(τ) ends near the wrong fixed point, both
    descents creep towards the cliff (a bifurcation of ``h ↦ tanh(w h + b)``); at its face the
    gradient's norm exceeds 10⁴. Unclipped, that one step throws the parameters off the plot
    (the path stops there and records where it was thrown); clipped, the step stays ≤ ε·clip and
    the descent goes on down to the valley ``tanh(0.7 w + b) = 0.7``. Each path records per step
    the gradient's norm ``norms``, the step's length ``steps`` and the loss ``losses``."""
    net, w, b = _cliff_net()
    loss = net.losses("L")[0]
    ws, bs = np.linspace(*W_RANGE, grid), np.linspace(*B_RANGE, grid)
    W, B = np.meshgrid(ws, bs)
    (surface,) = uf.evaluate([loss], {"w": W.ravel(), "b": B.ravel()})
    step = uf.compile([loss] + uf.grad(net.loss, [w, b]))
    paths, runs = {}, {}
    for name, threshold in (("without clipping", None), ("with clipping", clip)):
        point = np.array(start, dtype=np.float64)
        path, norms, steps, losses = [point.copy()], [], [], []
        for _ in range(iterations):
            value, gw, gb = step({"w": point[0], "b": point[1]})
            grads = {"w": np.asarray(gw), "b": np.asarray(gb)}
            norms.append(global_norm(grads))
            losses.append(float(value))
            if threshold is not None:
                grads, _ = clip_by_norm(grads, threshold)
            move = lr * np.array([grads["w"], grads["b"]], dtype=np.float64)
            point = point - move
            steps.append(float(np.hypot(*move)))
            path.append(point.copy())
            if not _inside(point):
                break                                   # thrown off the plot: nothing more to draw
        paths[name] = (np.array(path), norms)
        runs[name] = {"steps": steps, "losses": losses, "thrown": not _inside(point)}
    return {"w": ws, "b": bs, "loss": surface.reshape(W.shape), "paths": paths, "runs": runs,
            "start": start, "lr": lr, "clip": clip}


def _story(name: str, norms: list[float], run: dict[str, Any], path: np.ndarray) -> str:
    """What the panel's descent did, in its own numbers."""
    k = int(np.argmax(norms))
    met = f"{name}: ‖∇‖ = {norms[k]:.3g} met at step {k + 1}"
    if run["thrown"]:
        w, b = path[-1]
        return f"{met}\nthrows θ {run['steps'][-1]:.3g} away, off the plot to (w, b) = ({w:.3g}, {b:.3g})"
    return (f"{met}\nevery step ≤ {max(run['steps']):.3g}; loss {run['losses'][0]:.3g} → "
            f"{run['losses'][-1]:.2g} after {len(run['steps'])} steps")


def cliff(**options: Any) -> Any:
    """Fig. 10.17 as a matplotlib figure: two panels, the loss landscape with the path of
    gradient descent without and with clipping; each panel's title says, with the run's own
    numbers, the largest gradient met and what it did to the parameters."""
    plt = _pyplot()
    v = cliff_values(**options)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True, layout="constrained")
    log = np.log10(v["loss"] + 1e-6)
    for ax, (name, (path, norms)) in zip(axes, v["paths"].items()):
        run = v["runs"][name]
        filled = ax.contourf(v["w"], v["b"], log, levels=30, cmap="viridis")
        shown = path if not run["thrown"] else path[:-1]
        ax.plot(shown[:, 0], shown[:, 1], "-o", color="white", ms=3, lw=1.2)
        ax.plot(*path[0], "o", color="red", ms=6, label="start")
        if run["thrown"]:                               # the last step leaves the window
            direction = (path[-1] - path[-2]) / np.linalg.norm(path[-1] - path[-2])
            ax.annotate("", xy=shown[-1] + 0.9 * direction, xytext=shown[-1],
                        arrowprops={"arrowstyle": "-|>", "color": "red", "lw": 1.6})
        ax.set_xlim(*W_RANGE)
        ax.set_ylim(*B_RANGE)
        clipped = f" to {v['clip']:g}" if name == "with clipping" else ""
        ax.set_title(_story(name + clipped, norms, run, path), fontsize=9)
        ax.set_xticks(np.arange(-1.0, 3.01, 1.0))      # (3.5 would touch the next panel's −1)
        ax.set_xlabel("w")
    axes[0].set_ylabel("b")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.colorbar(filled, ax=axes, label="log₁₀ loss", shrink=0.9)
    fig.suptitle(f"The cliff of h(t) = tanh(w h(t−1) + b), loss (h(τ) − {TARGET})², τ = {TAU}: "
                 f"log10 loss; gradient descent, ε = {v['lr']:g}, clip ‖g‖ to {v['clip']:g}",
                 fontsize=10)
    return fig
