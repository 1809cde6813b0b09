"""FINDINGS #3: the time-batched plan CRASHES at run time (numpy ValueError "non-broadcastable
output operand with shape (P,) doesn't match the broadcast shape (B,P)") for
h(t) = a[0:1], a = W1 x(t) + W2 h(t−1) + W3 h(t−2) + b (1 row), batched feed (B = 1 or 2), τ = 3,
o = c + V h(t), mse loss. Without timebatch.STRICT evaluate falls back to the per-node schedule
(right values, every call pays a failed plan run + the slow path); with it (as the tests run),
the error is raised."""
import os, sys; sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz")); sys.path.insert(0, "/work/wt/fuzz/repro")
import numpy as np, unfold as uf
from unfold import timebatch
from refcheck import reference_vs_numeric

def run(batch=1, steps=3, sliced=True, bias=True, delay=2, strict=True):
    timebatch.STRICT = strict
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (1,)); h = rec.state("h", (1,))
    a = rec.param("W1", (1, 1)) @ x + rec.param("W2", (1, 1)) @ h
    if delay:
        a = a + rec.param("W3", (1, 1)) @ rec.past(h, delay)
    if bias:
        a = a + rec.param("b", (1,))
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
    try:
        loss_only = uf.evaluate([g.loss], feed)
        loss_only = "loss alone ok"
    except Exception as e:
        loss_only = f"loss alone CRASH too"
    try:
        got = uf.evaluate(outs, feed)
    except Exception as e:
        timebatch.STRICT = False
        ref = "%.1g" % reference_vs_numeric(g.loss, g.params, feed)
        return f"CRASH {type(e).__name__}: {e}; {loss_only}", ref
    timebatch.STRICT = False
    ref = "%.1g" % reference_vs_numeric(g.loss, g.params, feed)
    return ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(got, want)], ref

for kw in [{}, {"batch": 2}, {"batch": None}, {"sliced": False}, {"bias": False}, {"delay": 0},
           {"delay": 3, "steps": 4}, {"steps": 2}, {"steps": 6}, {"strict": False}]:
    r, ref = run(**kw)
    print(f"{kw!s:28s}: {r}  (reference − central differences {ref})")
