"""Optional peers on the same workloads (shared/PEERS.md): torch eager, torch.nn's fused kernels,
jax ``lax.scan`` + ``jit`` and HIPS autograd. Each is imported only when asked for; a peer that
is not installed is reported as missing, never an error. Every peer returns the workload's
``[L, ∇U, ∇W, ∇b, ∇V, ∇c]`` as numpy arrays, like the hand-written contenders.
"""
from __future__ import annotations

import numpy as np

NAMES = ("torch eager", "torch.nn fused", "jax scan+jit", "HIPS autograd")


def available() -> dict[str, str | None]:
    """Peer name → None if importable, else why not."""
    out = {}
    for name, module in (("torch eager", "torch"), ("torch.nn fused", "torch"),
                         ("jax scan+jit", "jax"), ("HIPS autograd", "autograd")):
        try:
            __import__(module)
            out[name] = None
        except Exception as exc:  # noqa: BLE001 - any failure means: not available
            out[name] = f"{module} not installed ({type(exc).__name__})"
    return out


def make(name: str, workload: str, shape, dtype):
    """A callable ``f(data) -> [L, ∇U, ∇W, ∇b, ∇V, ∇c]`` for peer ``name``."""
    return {"torch eager": _torch_eager, "torch.nn fused": _torch_fused,
            "jax scan+jit": _jax, "HIPS autograd": _autograd}[name](workload, shape, dtype)


# --- torch ----------------------------------------------------------------------------------------

def _torch_eager(workload, shape, dtype):
    import torch
    torch.set_num_threads(1)
    m, n, k, B, T = shape

    def f(d):
        P = {p: torch.tensor(d[p], requires_grad=True) for p in ("U", "W", "b", "V", "c")}
        x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
        U, W, b, V, c = (P[p] for p in ("U", "W", "b", "V", "c"))
        h = torch.zeros(B, n, dtype=x.dtype)
        s = torch.zeros(B, n, dtype=x.dtype)
        loss = 0
        for t in range(T):
            if workload == "rnn":
                h = torch.tanh(b + h @ W.T + x[t] @ U.T)
            else:
                z = x[t] @ U.T + h @ W.T + b
                i, fg, o = (torch.sigmoid(z[:, j * n:(j + 1) * n]) for j in range(3))
                s = fg * s + i * torch.tanh(z[:, 3 * n:])
                h = o * torch.tanh(s)
            loss = loss + torch.nn.functional.cross_entropy(c + h @ V.T, y[t], reduction="sum")
        loss.backward()
        return [loss.detach().numpy()] + [P[p].grad.numpy() for p in ("U", "W", "b", "V", "c")]
    return f


def _torch_fused(workload, shape, dtype):
    import torch
    torch.set_num_threads(1)
    m, n, k, B, T = shape
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    cell = (torch.nn.RNN(m, n, nonlinearity="tanh") if workload == "rnn" else
            torch.nn.LSTM(m, n)).to(tdtype)
    # torch's LSTM orders its gates i, f, g, o; the workload stacks i, f, o, g
    perm = (np.r_[0:2 * n, 3 * n:4 * n, 2 * n:3 * n] if workload == "lstm" else np.arange(n))
    back = np.argsort(perm)

    def f(d):
        with torch.no_grad():
            cell.weight_ih_l0.copy_(torch.from_numpy(d["U"][perm]))
            cell.weight_hh_l0.copy_(torch.from_numpy(d["W"][perm]))
            cell.bias_ih_l0.copy_(torch.from_numpy(d["b"][perm]))
            cell.bias_hh_l0.zero_()
        for p in cell.parameters():
            p.grad = None
        V = torch.tensor(d["V"], requires_grad=True)
        c = torch.tensor(d["c"], requires_grad=True)
        hs, _ = cell(torch.from_numpy(d["x"]))
        logits = hs.reshape(T * B, n) @ V.T + c
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(d["y"]).reshape(-1),
                                                 reduction="sum")
        loss.backward()
        return [loss.detach().numpy(), cell.weight_ih_l0.grad.numpy()[back],
                cell.weight_hh_l0.grad.numpy()[back], cell.bias_ih_l0.grad.numpy()[back],
                V.grad.numpy(), c.grad.numpy()]
    return f


# --- jax ------------------------------------------------------------------------------------------

def _jax(workload, shape, dtype):
    import jax
    import jax.numpy as jnp
    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    m, n, k, B, T = shape

    def loss_fn(P, x, y):
        U, W, b, V, c = P

        def step(carry, xy):
            h, s = carry
            xt, yt = xy
            if workload == "rnn":
                h = jnp.tanh(b + h @ W.T + xt @ U.T)
            else:
                z = xt @ U.T + h @ W.T + b
                i, fg, o = (jax.nn.sigmoid(z[:, j * n:(j + 1) * n]) for j in range(3))
                s = fg * s + i * jnp.tanh(z[:, 3 * n:])
                h = o * jnp.tanh(s)
            logp = jax.nn.log_softmax(c + h @ V.T)
            return (h, s), -jnp.take_along_axis(logp, yt[:, None], axis=1).sum()
        zero = jnp.zeros((B, n), x.dtype)
        _, losses = jax.lax.scan(step, (zero, zero), (x, y))
        return losses.sum()
    grad = jax.jit(jax.value_and_grad(loss_fn))

    def f(d):
        P = tuple(jnp.asarray(d[p]) for p in ("U", "W", "b", "V", "c"))
        value, gs = grad(P, jnp.asarray(d["x"]), jnp.asarray(d["y"]))
        return [np.asarray(value)] + [np.asarray(g) for g in gs]
    return f


# --- HIPS autograd --------------------------------------------------------------------------------

def _autograd(workload, shape, dtype):
    import autograd
    import autograd.numpy as anp
    m, n, k, B, T = shape

    def loss_fn(P, x, y):
        U, W, b, V, c = P
        h = anp.zeros((B, n), x.dtype)
        s = anp.zeros((B, n), x.dtype)
        loss = 0.0
        rows = np.arange(B)
        for t in range(T):
            if workload == "rnn":
                h = anp.tanh(b + anp.dot(h, W.T) + anp.dot(x[t], U.T))
            else:
                z = anp.dot(x[t], U.T) + anp.dot(h, W.T) + b
                i, fg, o = (1 / (1 + anp.exp(-z[:, j * n:(j + 1) * n])) for j in range(3))
                s = fg * s + i * anp.tanh(z[:, 3 * n:])
                h = o * anp.tanh(s)
            o_t = c + anp.dot(h, V.T)
            mx = anp.max(o_t, axis=1, keepdims=True)
            logp = o_t - mx - anp.log(anp.sum(anp.exp(o_t - mx), axis=1, keepdims=True))
            loss = loss - anp.sum(logp[rows, y[t]])
        return loss
    grad = autograd.value_and_grad(loss_fn)

    def f(d):
        value, gs = grad(tuple(d[p] for p in ("U", "W", "b", "V", "c")), d["x"], d["y"])
        return [np.asarray(value)] + [np.asarray(g) for g in gs]
    return f
