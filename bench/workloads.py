"""The peers' workloads (shared/PEERS.md): forward, loss and all parameter gradients in one call.

W1 ``rnn`` (Fig. 10.3) and W2 ``lstm`` (common LSTM, gates stacked in U, W, b), each written
twice: with unfold, and as the plain-numpy per-step BPTT a person would write by hand.
"""
from __future__ import annotations

import numpy as np

import unfold as uf

SIZES = {  # m, n, k, B, τ
    "tiny": (8, 32, 8, 1, 50),
    "small": (32, 64, 32, 16, 100),
    "medium": (64, 128, 64, 32, 100),
    "large": (256, 512, 256, 64, 100),
    "long": (8, 32, 8, 8, 2000),
}
PARAMS = {"rnn": ("U", "W", "b", "V", "c"), "lstm": ("U", "W", "b", "V", "c")}


def data(workload: str, size: str, dtype, seed: int = 0) -> dict[str, np.ndarray]:
    m, n, k, B, T = SIZES[size]
    rng = np.random.default_rng(seed)
    g = 4 if workload == "lstm" else 1
    return {"U": (rng.standard_normal((g * n, m)) / np.sqrt(m)).astype(dtype),
            "W": (rng.standard_normal((g * n, n)) / np.sqrt(n)).astype(dtype),
            "b": (0.1 * rng.standard_normal(g * n)).astype(dtype),
            "V": (rng.standard_normal((k, n)) / np.sqrt(n)).astype(dtype),
            "c": (0.1 * rng.standard_normal(k)).astype(dtype),
            "x": rng.standard_normal((T, B, m)).astype(dtype),
            "y": rng.integers(0, k, size=(T, B))}


# --- with unfold ---------------------------------------------------------------------------------

def unfold_program(workload: str, size: str, dtype) -> uf.Program:
    m, n, k, B, T = SIZES[size]
    rec = uf.Recurrence(workload)
    x, y = rec.sequence("x", (m,), dtype), rec.target("y", ())
    g = 4 if workload == "lstm" else 1
    U, W, b = rec.param("U", (g * n, m), dtype), rec.param("W", (g * n, n), dtype), \
        rec.param("b", (g * n,), dtype)
    V, c = rec.param("V", (k, n), dtype), rec.param("c", (k,), dtype)
    h = rec.state("h", (n,), dtype=dtype)
    if workload == "rnn":
        h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    else:
        s = rec.state("s", (n,), dtype=dtype)
        z = U @ x + W @ h + b
        i, f, o = (uf.sigmoid(z[j * n:(j + 1) * n]) for j in range(3))
        s_t = rec.update(s, f * s + i * uf.tanh(z[3 * n:]))
        h_t = rec.update(h, o * uf.tanh(s_t))
    rec.loss("L", uf.cross_entropy(c + V @ h_t, y))
    un = rec.unfold(T)
    params = [rec.params[p] for p in PARAMS[workload]]
    return uf.compile([un.loss] + uf.grad(un.loss, params))


# --- by hand -------------------------------------------------------------------------------------

def _softmax_xent(o, y):
    z = o - o.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = -np.log(p[rows, y]).sum()
    p[rows, y] -= 1
    return loss, p


def numpy_rnn(d):
    U, W, b, V, c, x, y = (d[k] for k in ("U", "W", "b", "V", "c", "x", "y"))
    T, B, _ = x.shape
    hs = [np.zeros((B, W.shape[0]), x.dtype)]
    loss, dos = 0.0, []
    for t in range(T):
        hs.append(np.tanh(b + hs[-1] @ W.T + x[t] @ U.T))
        l, do = _softmax_xent(c + hs[-1] @ V.T, y[t])
        loss += l
        dos.append(do)
    dU, dW, db = np.zeros_like(U), np.zeros_like(W), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dh = np.zeros_like(hs[0])
    for t in range(T - 1, -1, -1):
        dV += dos[t].T @ hs[t + 1]
        dc += dos[t].sum(axis=0)
        dh = dh + dos[t] @ V
        da = dh * (1 - hs[t + 1] ** 2)
        db += da.sum(axis=0)
        dW += da.T @ hs[t]
        dU += da.T @ x[t]
        dh = da @ W
    return [np.asarray(loss), dU, dW, db, dV, dc]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_lstm(d):
    U, W, b, V, c, x, y = (d[k] for k in ("U", "W", "b", "V", "c", "x", "y"))
    T, B, _ = x.shape
    n = W.shape[1]
    hs, ss, cache = [np.zeros((B, n), x.dtype)], [np.zeros((B, n), x.dtype)], []
    loss, dos = 0.0, []
    for t in range(T):
        z = x[t] @ U.T + hs[-1] @ W.T + b
        i, f, o = _sigmoid(z[:, :n]), _sigmoid(z[:, n:2 * n]), _sigmoid(z[:, 2 * n:3 * n])
        gg = np.tanh(z[:, 3 * n:])
        ss.append(f * ss[-1] + i * gg)
        ts = np.tanh(ss[-1])
        hs.append(o * ts)
        cache.append((i, f, o, gg, ts))
        l, do = _softmax_xent(c + hs[-1] @ V.T, y[t])
        loss += l
        dos.append(do)
    dU, dW, db = np.zeros_like(U), np.zeros_like(W), np.zeros_like(b)
    dV, dc = np.zeros_like(V), np.zeros_like(c)
    dh, ds = np.zeros_like(hs[0]), np.zeros_like(ss[0])
    for t in range(T - 1, -1, -1):
        i, f, o, gg, ts = cache[t]
        dV += dos[t].T @ hs[t + 1]
        dc += dos[t].sum(axis=0)
        dh = dh + dos[t] @ V
        ds = ds + dh * o * (1 - ts ** 2)
        dz = np.concatenate([ds * gg * i * (1 - i), ds * ss[t] * f * (1 - f),
                             dh * ts * o * (1 - o), ds * i * (1 - gg ** 2)], axis=1)
        db += dz.sum(axis=0)
        dW += dz.T @ hs[t]
        dU += dz.T @ x[t]
        dh = dz @ W
        ds = ds * f
    return [np.asarray(loss), dU, dW, db, dV, dc]


BY_HAND = {"rnn": numpy_rnn, "lstm": numpy_lstm}
