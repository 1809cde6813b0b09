import os, sys; sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz"))
import numpy as np, unfold as uf
from unfold import timebatch
timebatch.STRICT = True
def run(body, n=4, m=1, P=18, steps=4, batch=2, delay=2, bias=False, act=uf.tanh, learned=True, loss="state"):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (m,))
    h = rec.state("h", (n,), init=rec.param("h0", (n,)) if learned else None)
    a = rec.param("W", (P, n)) @ h + rec.param("U", (P, m)) @ x
    if delay: a = a + rec.param("S", (P, n)) @ rec.past(h, delay)
    if bias: a = a + rec.param("b", (P,))
    z = act(a)
    new = rec.update(h, body(z, h))
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
        return repr(e)[:120]
    r_ = uf.evaluate(outs, feed, mode="reference")
    return ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(a_, r_)]
print(run(lambda z, h: z[0:4] + z[4:11:2]))
print("no delay", run(lambda z, h: z[0:4] + z[4:11:2], delay=0))
print("z[0:4]", run(lambda z, h: z[0:4]))
print("z[0:4] P=4", run(lambda z, h: z[0:4], P=4))
print("z[0:4] P=4 no learned", run(lambda z, h: z[0:4], P=4, learned=False))
print("z[0:4] P=4 batch None", run(lambda z, h: z[0:4], P=4, batch=None))
print("z[0:4] P=4 id", run(lambda z, h: z[0:4], P=4, act=lambda a: a))
print("z P=4 n=4", run(lambda z, h: z, P=4))
print("z n=1", run(lambda z, h: z, P=1, n=1))
print("z n=1 delay 3", run(lambda z, h: z, P=1, n=1, delay=3))
print("z n=1 steps 3", run(lambda z, h: z, P=1, n=1, steps=3))
