import sys; sys.path.insert(0, "/work/wt/fuzz")
import numpy as np, unfold as uf
def run(body, n=2, m=2, P=7, steps=4, batch=None, concat=True, seed=0, loss_on_state=False, mask=False):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (m,)); h = rec.state("h", (n,))
    if concat:
        a = rec.param("M", (P, m + n)) @ uf.concat([x, h])
    else:
        a = rec.param("W", (P, n)) @ h + rec.param("U", (P, m)) @ x
    new = rec.update(h, body(a, h))
    if loss_on_state:
        rec.loss("L", uf.sum(new ** 2))
    else:
        rec.loss("L", uf.mse(rec.output("o", rec.param("V", (2, n)) @ new), rec.target("y", (2,), np.float64), reduction="sum"))
    g = rec.unfold(steps, mask=mask)
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {k: rng.normal(size=p.shape) * 0.5 for k, p in rec.params.items()}
    feed.update(x=rng.normal(size=lead + (m,)))
    if not loss_on_state: feed["y"] = rng.normal(size=lead + (2,))
    if mask: feed["mask"] = np.ones(lead)
    outs = [g.loss] + uf.grad(g.loss, g.params)
    a_, r_ = uf.evaluate(outs, feed), uf.evaluate(outs, feed, mode="reference")
    return ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(a_, r_)]
S = uf.sigmoid
for los in (False, True):
    print(los, "S(a)[0:2]*S(a)[2:4] sep", run(lambda a, h: S(a)[0:2] * S(a)[2:4], concat=False, P=4, loss_on_state=los, steps=2))
    print(los, "S(a)[0:2]*S(a)[2:4] concat", run(lambda a, h: S(a)[0:2] * S(a)[2:4], P=4, loss_on_state=los, steps=2))
    print(los, "S(a)[2:4]*S(a)[0:2]", run(lambda a, h: S(a)[2:4] * S(a)[0:2], P=4, loss_on_state=los, steps=2))
    print(los, "S(a)[0:2]*h", run(lambda a, h: S(a)[0:2] * h, P=4, loss_on_state=los, steps=2))
    print(los, "S(a)[0:2]", run(lambda a, h: S(a)[0:2], P=4, loss_on_state=los, steps=2))
