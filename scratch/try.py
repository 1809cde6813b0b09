import sys; sys.path.insert(0, "/work/wt/fuzz")
import numpy as np, unfold as uf
def run(body, n=2, m=2, P=7, steps=4, batch=None, concat=True, seed=0):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (m,)); h = rec.state("h", (n,))
    if concat:
        M = rec.param("M", (P, m + n)); a = M @ uf.concat([x, h])
    else:
        a = rec.param("W", (P, n)) @ h + rec.param("U", (P, m)) @ x
    new = rec.update(h, body(a, h))
    rec.loss("L", uf.mse(rec.output("o", rec.param("V", (2, n)) @ new), rec.target("y", (2,), np.float64), reduction="sum"))
    g = rec.unfold(steps)
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {k: rng.normal(size=p.shape) * 0.5 for k, p in rec.params.items()}
    feed.update(x=rng.normal(size=lead + (m,)), y=rng.normal(size=lead + (2,)))
    outs = [g.loss] + uf.grad(g.loss, g.params)
    a_, r_ = uf.evaluate(outs, feed), uf.evaluate(outs, feed, mode="reference")
    return [float(np.abs(u - v).max()) for u, v in zip(a_, r_)]
R = uf.relu
S = uf.sigmoid
print("relu(a)[5:7]", run(lambda a, h: R(a)[5:7]))
print("relu(a)[5:7]*relu(a)[4:5]", run(lambda a, h: R(a)[5:7] * R(a)[4:5]))
print("z[5:7]*z[4:5] (id)", run(lambda a, h: a[5:7] * a[4:5]))
print("z[0:2]+z[2:3]", run(lambda a, h: a[0:2] + a[2:3]))
print("z[0:2]*z[2:3]", run(lambda a, h: a[0:2] * a[2:3]))
print("z[0:2]*z[2:4]", run(lambda a, h: a[0:2] * a[2:4]))
print("tanh z[0:2]*z[2:3]", run(lambda a, h: uf.tanh(a)[0:2] * uf.tanh(a)[2:3]))
print("S(a)[0:2]*S(a)[2:4] sep", run(lambda a, h: S(a)[0:2] * S(a)[2:4], concat=False, P=4))
print("S(a)[0:2]*S(a)[2:4] concat", run(lambda a, h: S(a)[0:2] * S(a)[2:4], P=4))
print("S(a[0:2])*S(a[2:4])", run(lambda a, h: S(a[0:2]) * S(a[2:4]), P=4))
print("S(a)[0:2]*h", run(lambda a, h: S(a)[0:2] * h, P=4))
print("S(a)[0:2]+S(a)[2:4]", run(lambda a, h: S(a)[0:2] + S(a)[2:4], P=4))
print("S(a)[0:3:2]", run(lambda a, h: S(a)[0:3:2], P=4))
print("S(a)[2:4] only, P=4", run(lambda a, h: S(a)[2:4], P=4))
print("S(a)[0:2] only, P=4", run(lambda a, h: S(a)[0:2], P=4))
print("concat(S(a)[3:4], S(a)[0:1])", run(lambda a, h: uf.concat([S(a)[3:4], S(a)[0:1]]), P=4))
print("tanh(a[1:3])", run(lambda a, h: uf.tanh(a[1:3]), P=4))
print("tanh(a[1:3]) sep", run(lambda a, h: uf.tanh(a[1:3]), P=4, concat=False))
