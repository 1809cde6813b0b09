import sys; sys.path.insert(0, "/work/wt/fuzz")
import numpy as np, unfold as uf
def run(h_param_first, h_term_first, state_loss=True, wrt_all=False):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (3,)); h = rec.state("h", (2,))
    if h_param_first:
        W = rec.param("W", (4, 2)); U = rec.param("U", (4, 3))
    else:
        U = rec.param("U", (4, 3)); W = rec.param("W", (4, 2))
    a = W @ h + U @ x if h_term_first else U @ x + W @ h
    z = uf.sigmoid(a)
    new = rec.update(h, z[0:2] * z[2:4]); rec.loss("L", uf.sum(new ** 2) if state_loss else uf.sum(new * new))
    net = rec.unfold(2)
    rng = np.random.default_rng(1)
    feed = {"x": rng.normal(size=(2, 3)), "W": rng.normal(size=(4, 2)) * 0.5, "U": rng.normal(size=(4, 3)) * 0.5}
    g = uf.grad(net.loss, [W, U])
    a, r = uf.evaluate(g, feed), uf.evaluate(g, feed, mode="reference")
    return ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(a, r)]
for hp in (True, False):
    for ht in (True, False):
        print(hp, ht, "**2", run(hp, ht), "h*h", run(hp, ht, False))
