"""FINDINGS #1: h(t) = tanh(a)[0:1], a = W1 x(t) + W2 h(t−1) (2 rows); output o = c + V h(t) with
mse; a second loss on tanh(a)[1:2]; mask=True; step loops (LOOP_STEPS = 2); τ = 2."""
import os, sys; sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz"))
import numpy as np, unfold as uf
from unfold.timebatch import lower
sys.path.insert(0, "/work/wt/fuzz/repro")
from refcheck import reference_vs_numeric

def build(inner, mask=True, loops=True, steps=2):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (1,)); h = rec.state("h", (1,))
    a = rec.param("W1", (2, 1)) @ x + rec.param("W2", (2, 1)) @ h
    z = uf.tanh(a)
    new = rec.update(h, z[0:1])
    o = rec.output("o", rec.param("c", (2,)) + rec.param("V", (2, 1)) @ new)
    rec.loss("L", uf.mse(o, rec.target("y", (2,), np.float64), reduction="sum"))
    if inner is not None:
        v = inner(a, z, new)
        rec.loss("L2", uf.mse(v, uf.constant(np.zeros(v.shape)), reduction="sum"))
    g = rec.unfold(steps, mask=mask)
    rng = np.random.default_rng(0)
    feed = {k: rng.normal(size=p.shape) for k, p in rec.params.items()}
    feed.update(x=rng.uniform(-1, 1, (steps, 1)), y=rng.uniform(-1, 1, (steps, 2)))
    if mask:
        feed["mask"] = np.ones(steps)
    outs = [g.loss] + uf.grad(g.loss, g.params)
    build.ref_err = reference_vs_numeric(g.loss, g.params, feed)
    lower.LOOP_STEPS = 2 if loops else 10**9
    got = uf.evaluate(outs, feed)
    want = uf.evaluate(outs, feed, mode="reference")
    return [float(np.abs(u - v).max()) for u, v in zip(got, want)]

for what, inner in [("tanh(a)[1:2]", lambda a, z, n: z[1:2]), ("a[1:2]", lambda a, z, n: a[1:2]),
                    ("tanh(a)[0:1]", lambda a, z, n: z[0:1]), ("a[0:1]", lambda a, z, n: a[0:1]),
                    ("none", None)]:
    for mask in (True, False):
        for loops in (True, False):
            print(f"inner loss on {what:14s} mask={mask!s:5} loops={loops!s:5}",
                  "max |batched − reference| per [L, ∇W1, ∇W2, ∇c, ∇V]:",
                  ["%.2g" % e for e in build(inner, mask, loops)],
                  "| reference − central differences: %.1g" % build.ref_err)
