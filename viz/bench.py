"""How long drawings take: ``python -m viz.bench [--tau 1000] [--quick]``.

Times, for an LSTM (``unfold.models.lstm``) unfolded over τ steps with the gradient of every
parameter: building the graph and its gradient (unfold's cost, for scale), ``viz.graph`` with
``backward=`` (the op view, whose middle steps collapse above its node budget), and ``dot``
laying it out as SVG; then the book views (unfolded with cells, and with a gradient overlay).
The op view at τ = 1 000 must finish, ``viz.graph`` plus ``dot``, in under ``LIMIT`` seconds.
A benchmark, not a test: run it by hand (or ``make bench-viz``), never in the test suite.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

import unfold as uf
from unfold import models

from . import graph, gradient_norms, svg, unfolded
from .ops_view import CollapsedStepsWarning
from .views import ElidedStepsWarning

LIMIT = 10.0       # seconds, viz.graph + dot, LSTM at τ = 1 000 with backward=


def _timed(what: str, call, rows: list) -> object:
    start = time.perf_counter()
    out = call()
    rows.append((what, time.perf_counter() - start))
    return out


def run(tau: int = 1000) -> list[tuple[str, float]]:
    """The timings (label, seconds) for an LSTM unfolded over ``tau`` steps."""
    rows: list[tuple[str, float]] = []
    rec = models.lstm(n_in=4, n_hidden=8, n_out=4)
    params = list(rec.params.values())
    net = _timed(f"unfold LSTM τ={tau} + grad of {len(params)} params (unfold, for scale)",
                 lambda: (lambda u: (u, uf.grad(u.loss, params)))(rec.unfold(tau)), rows)
    u, grads = net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapsedStepsWarning)
        ops = _timed("viz.graph(loss, backward={W: ∇W})", lambda: graph(
            u.loss, backward=dict(zip(params, grads))), rows)
        _timed("dot -Tsvg of that op view", lambda: svg(ops), rows)
        alone = _timed("viz.graph(…, forward=False) (the backward panel)", lambda: graph(
            u.loss, backward=dict(zip(params, grads)), forward=False), rows)
        _timed("dot -Tsvg of that panel", lambda: svg(alone), rows)
        every = _timed("viz.graph(…, backward_ops=True)", lambda: graph(
            u.loss, backward=dict(zip(params, grads)), backward_ops=True), rows)
        _timed("dot -Tsvg of that op view", lambda: svg(every), rows)
    rng = np.random.default_rng(0)
    feed = {p: rng.standard_normal(p.shape) * 0.3 for p in params}
    feed.update(x=rng.standard_normal((tau, 4)), y=rng.integers(0, 4, tau))
    norms = _timed("viz.gradient_norms (BPTT, evaluated)", lambda: gradient_norms(u, feed), rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ElidedStepsWarning)
        book = _timed("viz.unfolded(steps=τ, gradients=…) (middle elided)", lambda: unfolded(
            rec, steps=tau, gradients=norms), rows)
    _timed("dot -Tsvg of that book view", lambda: svg(book), rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viz.bench", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--tau", type=int, default=1000, help="sequence length (default 1000)")
    parser.add_argument("--quick", action="store_true", help="τ = 50: a smoke run")
    args = parser.parse_args(argv)
    tau = 50 if args.quick else args.tau
    rows = run(tau)
    width = max(len(w) for w, _ in rows)
    for what, seconds in rows:
        print(f"{what:<{width}}  {seconds:7.2f} s")
    op_view = rows[1][1] + rows[2][1]
    verdict = "ok" if op_view < LIMIT else "TOO SLOW"
    print(f"op view with backward= at τ = {tau}: viz.graph + dot = {op_view:.2f} s "
          f"(limit {LIMIT:g} s at τ = 1000): {verdict}")
    return 0 if op_view < LIMIT or tau != 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
