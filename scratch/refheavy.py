"""Reference path vs central differences on many drawn cells (no relu)."""
import sys; sys.path.insert(0, "/work/wt/fuzz")
import numpy as np
from hypothesis import given, settings, HealthCheck, Phase
import unfold as uf
from unfold.testing import numeric_grad
from unfold.testing.recurrences import cells
N = int(sys.argv[1]); bad = []; ran = [0]
@settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), database=None, phases=[Phase.generate])
@given(drawn=cells(max_states=2, max_size=3, max_steps=4, activations=("identity", "tanh", "sigmoid", "softsign", "hand sigmoid")))
def run(drawn):
    g = drawn.unfold()
    if not np.all(np.abs(uf.evaluate([g.loss], drawn.feed, mode="reference")[0]) < 1e6):
        return
    ran[0] += 1
    analytic = uf.evaluate(uf.grad(g.loss, g.params), drawn.feed, mode="reference")
    numeric = numeric_grad(g.loss, g.params, drawn.feed)
    for p, a, n in zip(g.params, analytic, numeric):
        if not np.allclose(a, n, rtol=1e-5, atol=1e-6):
            bad.append((drawn.description, p.label, float(np.abs(a - n).max())))
run()
print(f"{ran[0]} checked, {len(bad)} disagree")
for b in bad[:10]: print(b)
