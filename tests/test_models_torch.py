"""An extra oracle, optional: PyTorch's ``nn.LSTM`` and ``nn.GRU`` against ``unfold.models.lstm``
(``variant="common"``) and ``gru`` (``variant="reset_after"``), their weights mapped as the cells'
docstrings say. Collected only when torch is installed (`make test-oracles`); the numpy references of
tests/test_models_reference.py cover the same models without it."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf
from unfold import models as M

import torch  # noqa: E402  (collected only when installed: tests/conftest.py)


def blocks(a, n):
    return [a[i * n:(i + 1) * n] for i in range(len(a) // n)]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("m,n,T,B", [(2, 3, 4, 2), (1, 2, 1, 1), (3, 1, 3, 3)])
def test_torch_recurrent_layers_are_the_documented_variants(cell, m, n, T, B):
    torch.manual_seed(m + 10 * n + 100 * T)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(m, n).double()
    w_ih, w_hh = module.weight_ih_l0.detach().numpy(), module.weight_hh_l0.detach().numpy()
    b_ih, b_hh = module.bias_ih_l0.detach().numpy(), module.bias_hh_l0.detach().numpy()
    if cell == "lstm":
        rec = M.lstm(m, n, n, variant="common", loss="squared_error")
        feed = {}
        for part, (U, W, bi, bh) in zip(["g", "f", "", "o"], zip(
                blocks(w_ih, n), blocks(w_hh, n), blocks(b_ih, n), blocks(b_hh, n))):
            s = f"_{part}" if part else ""
            feed.update({f"U{s}": U, f"W{s}": W, f"b{s}": bi + bh})
    else:
        rec = M.gru(m, n, n, variant="reset_after", loss="squared_error")
        (Ur, Uz, Un), (Wr, Wz, Wn) = blocks(w_ih, n), blocks(w_hh, n)
        (bir, biz, bin_), (bhr, bhz, bhn) = blocks(b_ih, n), blocks(b_hh, n)
        feed = {"U_r": Ur, "W_r": Wr, "b_r": bir + bhr, "U_u": Uz, "W_u": Wz, "b_u": biz + bhz,
                "U": Un, "W": Wn, "b": bin_, "b_W": bhn}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, m))
    target = rng.standard_normal((T, B, n))
    # read out through the identity: o(t) = h(t), L = Σ_t ‖h(t) − target(t)‖²
    feed.update(V=np.eye(n), c=np.zeros(n), x=x, y=target)
    net = rec.unfold(T)
    xt = torch.tensor(x, requires_grad=True)
    out, _ = module(xt)
    loss = ((out - torch.tensor(target)) ** 2).sum()
    loss.backward()
    names = sorted(rec.params)
    L, *grads = uf.evaluate([net.loss, *uf.grad(net.loss, [rec.params[k] for k in names]
                                                 + net.over_time("x"))], feed)
    np.testing.assert_allclose(np.stack(uf.evaluate(net.over_time("h"), feed)),
                               out.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert L == pytest.approx(loss.item(), rel=1e-12)
    ours = dict(zip(names, grads))
    np.testing.assert_allclose(np.stack(grads[len(names):]), xt.grad.numpy(), rtol=1e-10,
                               atol=1e-13)
    g_ih, g_hh = module.weight_ih_l0.grad.numpy(), module.weight_hh_l0.grad.numpy()
    g_bh = module.bias_hh_l0.grad.numpy()
    parts = ["g", "f", "", "o"] if cell == "lstm" else ["r", "u", ""]
    for part, gu, gw, gb in zip(parts, blocks(g_ih, n), blocks(g_hh, n), blocks(g_bh, n)):
        s = f"_{part}" if part else ""
        np.testing.assert_allclose(ours[f"U{s}"], gu, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(ours[f"W{s}"], gw, rtol=1e-10, atol=1e-13)
        if not (cell == "gru" and part == ""):
            np.testing.assert_allclose(ours[f"b{s}"], gb, rtol=1e-10, atol=1e-13)
    if cell == "gru":
        np.testing.assert_allclose(ours["b_W"], blocks(g_bh, n)[2], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(ours["b"], blocks(module.bias_ih_l0.grad.numpy(), n)[2],
                                   rtol=1e-10, atol=1e-13)
