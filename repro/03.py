"""FINDINGS #3: the time-batched path CRASHES (ValueError from numpy) — h(t) = a[0:1],
a = W h(t−1) + U x(t) + S h(t−2) (1 row), batch = 1, τ = 3, o = c + V h(t), mse loss."""
import os, sys; sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz")); sys.path.insert(0, "/work/wt/fuzz/repro")
import itertools
import numpy as np, unfold as uf
from unfold import timebatch
timebatch.STRICT = "--strict" in sys.argv      # (without it a compiler failure falls back to the reference)
from refcheck import reference_vs_numeric

def run(order, batch=1, steps=3, sliced=True, delay=2):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (1,)); h = rec.state("h", (1,))
    terms = {"Wh": rec.param("W", (1, 1)) @ h, "Ux": rec.param("U", (1, 1)) @ x,
             "Sh(t-d)": rec.param("S", (1, 1)) @ rec.past(h, delay)}
    a = terms[order[0]] + terms[order[1]] + terms[order[2]]
    new = rec.update(h, a[0:1] if sliced else a)
    o = rec.output("o", rec.param("c", (2,)) + rec.param("V", (2, 1)) @ new)
    rec.loss("L", uf.mse(o, rec.target("y", (2,), np.float64), reduction="sum"))
    g = rec.unfold(steps)
    rng = np.random.default_rng(0)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {k: rng.normal(size=p.shape) for k, p in rec.params.items()}
    feed.update(x=rng.uniform(-1, 1, lead + (1,)), y=rng.uniform(-1, 1, lead + (2,)))
    outs = [g.loss] + uf.grad(g.loss, g.params)
    want = uf.evaluate(outs, feed, mode="reference")
    ref = "%.1g" % reference_vs_numeric(g.loss, g.params, feed)
    try:
        got = uf.evaluate(outs, feed)
    except Exception as e:
        return f"CRASH {type(e).__name__}: {e}", ref
    return ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(got, want)], ref

for order in itertools.permutations(["Wh", "Ux", "Sh(t-d)"]):
    for batch in (None, 1, 2):
        for sliced in (True, False):
            r, ref = run(order, batch, sliced=sliced)
            print(f"a = {' + '.join(order):20s} batch={batch!s:4s} h = {'a[0:1]' if sliced else 'a':6s}: {r}  (reference − central differences {ref})")
