import sys; sys.path.insert(0, "/work/wt/fuzz"); sys.path.insert(0, "/work/wt/fuzz/tests")
import numpy as np, unfold as uf
rec = uf.Recurrence("r")
x = rec.sequence("x", (3,)); h = rec.state("h", (2,))
W = rec.param("W", (4, 2)); U = rec.param("U", (4, 3))
z = uf.sigmoid(W @ h + U @ x)
rec.loss("L", uf.sum(rec.update(h, z[0:2] * z[2:4]) ** 2))
net = rec.unfold(2)
rng = np.random.default_rng(1)
feed = {"x": rng.normal(size=(2, 3)), "W": rng.normal(size=(4, 2)) * 0.5, "U": rng.normal(size=(4, 3)) * 0.5}
for wrt in ([W, U], net.params, [U, W]):
    g = uf.grad(net.loss, wrt)
    a, r = uf.evaluate(g, feed), uf.evaluate(g, feed, mode="reference")
    print([p.label for p in wrt], "max |batched − reference|:", [float(np.abs(u - v).max()) for u, v in zip(a, r)])
g = [net.loss] + uf.grad(net.loss, [W, U])
a, r = uf.evaluate(g, feed), uf.evaluate(g, feed, mode="reference")
print("with loss first", [float(np.abs(u - v).max()) for u, v in zip(a, r)])
g = uf.grad(net.loss, [W, U]) + [net.final("h")]
a, r = uf.evaluate(g, feed), uf.evaluate(g, feed, mode="reference")
print("with final", [float(np.abs(u - v).max()) for u, v in zip(a, r)])
