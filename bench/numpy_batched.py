"""The peers' workloads written by hand in numpy, time-batched: the best plain numpy reaches.

Everything off the recurrent path runs once for all steps — ``U x(t)`` for every t in one GEMM,
the output layer and the loss over all steps at once, each ``∇W`` as one GEMM over the stacked
steps ``(τ·B)`` — and only the recurrence itself loops, with every buffer allocated once (when
the workload is built) and written in place (``out=``). One object per workload and shape; calling
it with the data returns ``[L, ∇U, ∇W, ∇b, ∇V, ∇c]`` like the per-step version in ``workloads``.
"""
from __future__ import annotations

import numpy as np


def _softmax_xent(P, y_flat, rows):
    """P holds the logits (τB, k); leaves softmax − 1_y in it and returns the summed loss."""
    m = P.max(axis=1, keepdims=True)
    np.subtract(P, m, out=P)
    np.exp(P, out=P)
    s = P.sum(axis=1, keepdims=True)
    np.divide(P, s, out=P)
    loss = -np.log(P[rows, y_flat]).sum()
    P[rows, y_flat] -= 1
    return loss


def _readout(H, V, c, y, P, G, rows):
    """o(t) = c + V h(t) and the loss for all steps at once: returns (L, ∇V, ∇c) and leaves
    ∂L/∂h(t) from the outputs in G."""
    T, B, n = G.shape
    Hs = H[1:].reshape(T * B, n)
    np.dot(Hs, V.T, out=P)
    P += c
    loss = _softmax_xent(P, y.reshape(T * B), rows)
    dV, dc = P.T @ Hs, P.sum(axis=0)
    np.dot(P, V, out=G.reshape(T * B, n))
    return loss, dV, dc


class BatchedRNN:
    """W1: a(t) = b + W h(t−1) + U x(t), h(t) = tanh a(t), o(t) = c + V h(t), softmax loss."""

    def __init__(self, m, n, k, B, T, dtype) -> None:
        self.T, self.B, self.n = T, B, n
        self.H = np.zeros((T + 1, B, n), dtype)          # H[0] = h(0) = 0
        self.A = np.empty((T, B, n), dtype)              # U x(t) + b, then ∂L/∂a(t)
        self.P = np.empty((T * B, k), dtype)
        self.D = np.empty((T, B, n), dtype)              # 1 − h(t)²
        self.G = np.empty((T, B, n), dtype)              # ∂L/∂h(t) from the outputs
        self.g = np.empty((B, n), dtype)
        self.rows = np.arange(T * B)

    def __call__(self, d):
        U, W, b, V, c, x, y = (d[k] for k in ("U", "W", "b", "V", "c", "x", "y"))
        T, B, n = self.T, self.B, self.n
        H, A, P, D, G, g = self.H, self.A, self.P, self.D, self.G, self.g
        TB = T * B
        np.dot(x.reshape(TB, -1), U.T, out=A.reshape(TB, n))
        A += b
        WT = W.T
        for t in range(T):
            h = H[t + 1]
            np.dot(H[t], WT, out=h)
            np.add(h, A[t], out=h)
            np.tanh(h, out=h)
        loss, dV, dc = _readout(H, V, c, y, P, G, self.rows)
        np.multiply(H[1:], H[1:], out=D)
        np.subtract(1, D, out=D)
        dA = A                                           # U x + b is no longer needed
        np.multiply(G[T - 1], D[T - 1], out=dA[T - 1])
        for t in range(T - 2, -1, -1):
            np.dot(dA[t + 1], W, out=g)
            np.add(g, G[t], out=g)
            np.multiply(g, D[t], out=dA[t])
        dA2 = dA.reshape(TB, n)
        dW = dA2.T @ H[:-1].reshape(TB, n)
        dU = dA2.T @ x.reshape(TB, -1)
        db = dA2.sum(axis=0)
        return [np.asarray(loss), dU, dW, db, dV, dc]


def _sigmoid(z, out):
    np.negative(z, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


class BatchedLSTM:
    """W2: gates i, f, o = σ(·), g = tanh(·) of z(t) = U x(t) + W h(t−1) + b (stacked 4n);
    s(t) = f s(t−1) + i g, h(t) = o tanh s(t); the output and loss of W1."""

    def __init__(self, m, n, k, B, T, dtype) -> None:
        self.T, self.B, self.n = T, B, n
        self.H = np.zeros((T + 1, B, n), dtype)
        self.S = np.zeros((T + 1, B, n), dtype)
        self.Z = np.empty((T, B, 4 * n), dtype)          # U x + b, then the gates, then ∂L/∂z
        self.Y = np.empty((T, B, 4 * n), dtype)          # i, f, o, g
        self.TS = np.empty((T, B, n), dtype)             # tanh s(t)
        self.P = np.empty((T * B, k), dtype)
        self.G = np.empty((T, B, n), dtype)
        self.E = np.empty((T, B, 4 * n), dtype)          # off-path factors of ∂z
        self.DS = np.empty((T, B, n), dtype)             # o (1 − tanh² s)
        self.tmp = np.empty((B, n), dtype)
        self.g = np.empty((B, n), dtype)
        self.ds = np.empty((B, n), dtype)
        self.zb = np.empty((B, 4 * n), dtype)
        self.rows = np.arange(T * B)

    def __call__(self, d):
        U, W, b, V, c, x, y = (d[k] for k in ("U", "W", "b", "V", "c", "x", "y"))
        T, B, n = self.T, self.B, self.n
        H, S, Z, Y, TS, P, G, E, DS = (self.H, self.S, self.Z, self.Y, self.TS, self.P, self.G,
                                       self.E, self.DS)
        tmp, g, ds, zb = self.tmp, self.g, self.ds, self.zb
        TB = T * B
        np.dot(x.reshape(TB, -1), U.T, out=Z.reshape(TB, 4 * n))
        Z += b
        WT = W.T
        for t in range(T):
            z, yt = Z[t], Y[t]
            np.dot(H[t], WT, out=zb)
            np.add(zb, z, out=z)
            _sigmoid(z[:, :3 * n], yt[:, :3 * n])
            np.tanh(z[:, 3 * n:], out=yt[:, 3 * n:])
            i, f, o, gg = yt[:, :n], yt[:, n:2 * n], yt[:, 2 * n:3 * n], yt[:, 3 * n:]
            np.multiply(f, S[t], out=S[t + 1])
            np.multiply(i, gg, out=tmp)
            np.add(S[t + 1], tmp, out=S[t + 1])
            np.tanh(S[t + 1], out=TS[t])
            np.multiply(o, TS[t], out=H[t + 1])
        loss, dV, dc = _readout(H, V, c, y, P, G, self.rows)
        i, f, o, gg = Y[..., :n], Y[..., n:2 * n], Y[..., 2 * n:3 * n], Y[..., 3 * n:]
        # the factors of ∂z that do not depend on the gradient, for all steps at once
        np.multiply(TS, TS, out=DS)
        np.subtract(1, DS, out=DS)
        np.multiply(DS, o, out=DS)                       # ∂h/∂s = o (1 − tanh² s)
        Ei, Ef, Eo, Eg = E[..., :n], E[..., n:2 * n], E[..., 2 * n:3 * n], E[..., 3 * n:]
        np.subtract(1, i, out=Ei)
        Ei *= i
        Ei *= gg                                         # ∂s/∂zi = g i (1 − i)
        np.subtract(1, f, out=Ef)
        Ef *= f
        Ef *= S[:-1]                                     # ∂s/∂zf = s(t−1) f (1 − f)
        np.subtract(1, o, out=Eo)
        Eo *= o
        Eo *= TS                                         # ∂h/∂zo = tanh s · o (1 − o)
        np.multiply(gg, gg, out=Eg)
        np.subtract(1, Eg, out=Eg)
        Eg *= i                                          # ∂s/∂zg = i (1 − g²)
        dZ = Z                                           # z is no longer needed
        ds[...] = 0
        for t in range(T - 1, -1, -1):
            if t == T - 1:
                np.copyto(g, G[t])
            else:
                np.dot(dZ[t + 1], W, out=g)
                np.add(g, G[t], out=g)
                np.multiply(ds, f[t + 1], out=ds)
            np.multiply(g, DS[t], out=tmp)
            np.add(ds, tmp, out=ds)
            dz, e = dZ[t], E[t]
            np.multiply(ds, e[:, :n], out=dz[:, :n])
            np.multiply(ds, e[:, n:2 * n], out=dz[:, n:2 * n])
            np.multiply(g, e[:, 2 * n:3 * n], out=dz[:, 2 * n:3 * n])
            np.multiply(ds, e[:, 3 * n:], out=dz[:, 3 * n:])
        dZ2 = dZ.reshape(TB, 4 * n)
        dW = dZ2.T @ H[:-1].reshape(TB, n)
        dU = dZ2.T @ x.reshape(TB, -1)
        db = dZ2.sum(axis=0)
        return [np.asarray(loss), dU, dW, db, dV, dc]


BATCHED = {"rnn": BatchedRNN, "lstm": BatchedLSTM}
