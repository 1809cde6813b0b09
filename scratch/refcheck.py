"""Reference-mode gradient vs central differences (helper for repros)."""
import numpy as np, unfold as uf
from unfold.testing import numeric_grad, _scalarize

def reference_vs_numeric(y, wrt, feed):
    f = _scalarize(y, 0)
    analytic = uf.evaluate(uf.grad(f, wrt), feed, mode="reference")
    numeric = numeric_grad(y, wrt, feed)
    return max(float(np.abs(a - n).max()) for a, n in zip(analytic, numeric))
