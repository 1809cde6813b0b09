"""FINDINGS #2: no activation at all — h(t) = a[0:1] ⊙ h(t−1) + a[0:1] ⊙ a[1:2],
a = W1 x(t) + W2 h(t−1) (2 rows), n = m = 1, τ = 2, o = c + V h(t), mse loss."""
import os, sys; sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz")); sys.path.insert(0, "/work/wt/fuzz/repro")
import numpy as np, unfold as uf
from refcheck import reference_vs_numeric

def run(body, steps=2, batch=None):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (1,)); h = rec.state("h", (1,))
    a = rec.param("W1", (2, 1)) @ x + rec.param("W2", (2, 1)) @ h
    new = rec.update(h, body(a, h))
    o = rec.output("o", rec.param("c", (2,)) + rec.param("V", (2, 1)) @ new)
    rec.loss("L", uf.mse(o, rec.target("y", (2,), np.float64), reduction="sum"))
    g = rec.unfold(steps)
    rng = np.random.default_rng(0)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {k: rng.normal(size=p.shape) for k, p in rec.params.items()}
    feed.update(x=rng.uniform(-1, 1, lead + (1,)), y=rng.uniform(-1, 1, lead + (2,)))
    outs = [g.loss] + uf.grad(g.loss, g.params)
    got, want = uf.evaluate(outs, feed), uf.evaluate(outs, feed, mode="reference")
    errs = ["%.2g" % float(np.abs(u - v).max()) for u, v in zip(got, want)]
    return errs, "%.1g" % reference_vs_numeric(g.loss, g.params, feed)

cases = {
    "a[0:1]*h + a[0:1]*a[1:2]": lambda a, h: a[0:1] * h + a[0:1] * a[1:2],
    "a[0:1]*a[1:2]": lambda a, h: a[0:1] * a[1:2],
    "a[0:1]*h + a[1:2]": lambda a, h: a[0:1] * h + a[1:2],
    "a[0:1]*a[0:1]": lambda a, h: a[0:1] * a[0:1],
    "a[0:1]*h + a[1:2]*a[1:2]": lambda a, h: a[0:1] * h + a[1:2] * a[1:2],
    "a[1:2]*h + a[0:1]*a[1:2]": lambda a, h: a[1:2] * h + a[0:1] * a[1:2],
}
for name, body in cases.items():
    for batch in (None, 3):
        for steps in (1, 2, 3):
            errs, ref = run(body, steps, batch)
            print(f"{name:28s} τ={steps} batch={batch!s:4s} |batched − reference| [L, ∇W1, ∇W2, ∇c, ∇V] = {errs}; reference − central differences {ref}")
