import sys; sys.path.insert(0, "/work/wt/fuzz")
import numpy as np, unfold as uf
from unfold import timebatch
def run(body, n=3, m=2, P=13, steps=3, batch=1, concat=True, bias=True, strict=True, reset=True):
    timebatch.STRICT = strict
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (m,)); h = rec.state("h", (n,))
    hh = h
    if reset:
        r = uf.sigmoid(rec.param("R", (n, n)) @ h + rec.param("Q", (n, m)) @ x)
        hh = r * h
    a = rec.param("M", (P, m + n)) @ uf.concat([x, hh]) if concat else rec.param("W", (P, n)) @ hh + rec.param("U", (P, m)) @ x
    if bias: a = a + rec.param("b", (P,))
    new = rec.update(h, body(a, h))
    rec.loss("L", uf.sum(new * new))
    g = rec.unfold(steps)
    rng = np.random.default_rng(0)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {k: rng.normal(size=p.shape) * 0.5 for k, p in rec.params.items()}
    feed.update(x=rng.normal(size=lead + (m,)))
    outs = [g.loss] + uf.grad(g.loss, g.params)
    try:
        a_ = uf.evaluate(outs, feed)
    except Exception as e:
        return repr(e)[:150]
    r_ = uf.evaluate(outs, feed, mode="reference")
    return ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(a_, r_)]
body = lambda a, h: a[1:4] * uf.concat([a[0:2], a[1:2]])
print("full", run(body))
print("no reset", run(body, reset=False))
print("no bias", run(body, bias=False))
print("sep", run(body, concat=False))
print("batch None", run(body, batch=None))
print("batch 2", run(body, batch=2))
print("a[1:4] only", run(lambda a, h: a[1:4]))
print("concat only", run(lambda a, h: uf.concat([a[0:2], a[1:2]])))
print("concat only, no reset", run(lambda a, h: uf.concat([a[0:2], a[1:2]]), reset=False))
print("concat only, no reset non-strict", run(lambda a, h: uf.concat([a[0:2], a[1:2]]), reset=False, strict=False))
