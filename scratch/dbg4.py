import sys; sys.path.insert(0, "/work/wt/fuzz")
import numpy as np, unfold as uf
rec = uf.Recurrence(sys.argv[3])
x = rec.sequence("x", (3,)); h = rec.state("h", (2,))
W = rec.param(sys.argv[1], (4, 2)); U = rec.param(sys.argv[2], (4, 3))
z = uf.sigmoid(W @ h + U @ x)
rec.loss("L", uf.sum(rec.update(h, z[0:2] * z[2:4]) ** 2))
net = rec.unfold(2)
g = uf.grad(net.loss, [W, U])
for seed in range(4):
  for scale in (0.5, 1.0):
    rng = np.random.default_rng(seed)
    feed = {"x": rng.normal(size=(2, 3)), sys.argv[1]: rng.normal(size=(4, 2)) * scale, sys.argv[2]: rng.normal(size=(4, 3)) * scale}
    a, r = uf.evaluate(g, feed), uf.evaluate(g, feed, mode="reference")
    print(seed, scale, ["%.1g" % float(np.abs(u - v).max()) for u, v in zip(a, r)])
