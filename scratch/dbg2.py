import sys; sys.path.insert(0, "/work/wt/fuzz"); sys.path.insert(0, "/work/wt/fuzz/tests")
import numpy as np, unfold as uf
from unfold import timebatch
import test_differential as td
d = td._one_state(lambda a, h: uf.sigmoid(a)[0:2] * uf.sigmoid(a)[2:4], 2, None, width=4, n=2, m=3, seed=1, state_loss=True)
g = d.unfold()
for outs in (uf.grad(g.loss, g.params), td._outputs(g, d)):
    a = uf.evaluate(outs, d.feed); r = uf.evaluate(outs, d.feed, mode="reference")
    print([float(np.abs(u - v).max()) for u, v in zip(a, r)])
timebatch.STRICT = True
a = uf.evaluate(outs, d.feed); print([float(np.abs(u - v).max()) for u, v in zip(a, r)])
