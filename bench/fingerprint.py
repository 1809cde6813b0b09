"""``python -m bench.fingerprint [CASE]`` — a digest of every graph the models build.

For performance work on graph building (``unfold/graph.py``, ``grad.py``, the unfolding): run it
before and after a change and ``diff`` the outputs; a change that is performance only leaves every
line the same. Each case unfolds a model (every builder of ``unfold.models``, plain, truncated and
masked; a bidirectional recurrence with ``past``; an encoder–decoder joined with ``bind``; second
derivatives; a plain expression graph), differentiates it, and prints the number of nodes and a
digest of each node's op, inputs, shape, dtype, name, attrs, step, source, adjoint and batch flag,
in creation order (positions, not serial numbers, so the digest does not depend on what was built
before). ``CASE`` also prints that case's nodes.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

import unfold as uf
from unfold import models as M
from unfold.graph import topological


def _attrs(attrs) -> tuple:
    out = []
    for k in sorted(attrs):
        v = attrs[k]
        if isinstance(v, np.ndarray):
            v = ("array", v.shape, str(v.dtype), hashlib.md5(np.ascontiguousarray(v).tobytes())
                 .hexdigest())
        elif isinstance(v, frozenset):
            v = sorted(v)
        out.append((k, repr(v)))
    return tuple(out)


def describe(outputs) -> list[tuple]:
    """One tuple per node reachable from ``outputs`` (through inputs, sources and adjoints)."""
    seen: set = set()
    frontier = list(outputs)
    while frontier:
        found = set(topological(frontier)) - seen
        seen |= found
        frontier = [m for n in found for m in (n.source, n.adjoint) if m is not None
                    and m not in seen]
    order = sorted(seen, key=lambda n: n.serial)
    at = {n: i for i, n in enumerate(order)}
    lines = [(n.op.name, tuple(at[i] for i in n.inputs), n.shape, str(n.dtype), n.name,
              _attrs(n.attrs), n.step, at.get(n.source), at.get(n.adjoint), n.may_batch)
             for n in order]
    return lines + [("outputs", tuple(at[o] for o in outputs))]


def _unfold_grad(rec, steps=4, second=False, **options):
    g = rec.unfold(steps, **options)
    grads = uf.grad(g.loss, g.params)
    outputs = [g.loss] + grads
    if second:
        outputs += uf.grad(uf.add_n([uf.sum(x * x) for x in grads]), g.params)
    return outputs


def _birnn():
    rec = uf.Recurrence("birnn")
    x, y = rec.sequence("x", (2,)), rec.target("y", ())
    h, g = rec.state("h", (3,)), rec.state("g", (3,), backward=True)
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 2)) @ x))
    g_t = rec.update(g, uf.tanh(rec.param("Wg", (3, 3)) @ g + rec.param("Ug", (3, 2)) @ x
                                + rec.past(g, 2)))
    o = rec.output("o", rec.param("V", (2, 3)) @ h_t + rec.param("Vg", (2, 3)) @ g_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return _unfold_grad(rec, steps=5, truncate=2, mask=True)


def _encoder_decoder():
    encoder = M.rnn(3, 4, 3).unfold(3)
    dec = uf.Recurrence("dec")
    C, y = dec.context("C", (4,)), dec.target("y", ())
    h = dec.state("h", (4,), init=C)
    h_t = dec.update(h, uf.tanh(dec.param("W", (4, 4)) @ h + dec.param("R", (4, 4)) @ C))
    dec.loss("L", uf.cross_entropy(dec.param("V", (3, 4)) @ h_t, y))
    decoder = dec.unfold(4, bind={"C": encoder.final("h")})
    return [decoder.loss] + uf.grad(decoder.loss + encoder.loss, decoder.params)


def _expression():
    x, W, v = uf.input("x", (3, 2)), uf.param("W", (4, 3)), uf.param("v", (2,))
    h = uf.sigmoid(W @ x) * v + uf.relu(x.sum(axis=1))[:, None].T.T.reshape(3, 1).sum()
    z = uf.concat([h, h * 2.0], axis=0)
    y = (uf.mean(uf.log_softmax(z, axis=0)) + uf.max(uf.exp(-z))
         + uf.sum(uf.where(z > 0, z, 0.5 * z)) + uf.sum(uf.outer(v, v))
         + uf.sum(uf.stack([v, v]) ** 2.0) + uf.mse(v, uf.constant(np.ones(2))))
    grads = uf.grad(y, [x, W, v])
    return [y] + grads + uf.grad(uf.add_n([uf.sum(g) for g in grads]), [W, v])


def _scalar():
    rec = uf.Recurrence("long")
    x, h = rec.sequence("x", ()), rec.state("h", ())
    w, u = rec.param("w", ()), rec.param("u", ())
    rec.loss("L", rec.update(h, uf.tanh(w * h + u * x)) ** 2)
    return _unfold_grad(rec, steps=6)


BUILDERS = {
    "rnn": lambda: M.rnn(3, 4, 3), "rnn_mse": lambda: M.rnn(3, 4, 3, loss="squared_error"),
    "rnn_last": lambda: M.rnn_single_output(3, 4, 3), "o2h": lambda: M.output_to_hidden(3, 4, 3),
    "tokens": lambda: M.rnn(5, 4, 3, inputs="tokens", carry=True),
    "lstm": lambda: M.lstm(3, 4, 3), "lstm_common": lambda: M.lstm(3, 4, 3, variant="common"),
    "gru": lambda: M.gru(3, 4, 3), "leaky": lambda: M.leaky_rnn(3, 4, 3),
    "skip": lambda: M.skip_rnn(3, 4, 3, delay=2), "deep": lambda: M.deep_rnn(3, [4, 3], 3),
    "deep_t": lambda: M.deep_rnn(3, [4, 3], 3, transition="deep"),
    "esn": lambda: M.echo_state(3, 5, 2), "tf": lambda: M.teacher_forcing(3, 4, 3),
    "ctx": lambda: M.context_rnn(3, 4, 3), "cond": lambda: M.conditional_rnn(3, 4, 3),
    "lm": lambda: M.language_model(5, 4, stop=True),
}


def cases() -> dict:
    out = {}
    for name, build in BUILDERS.items():
        out[name] = lambda build=build: _unfold_grad(build())
        out[name + "_trunc"] = lambda build=build: _unfold_grad(build(), steps=5, truncate=2)
        out[name + "_mask"] = lambda build=build: _unfold_grad(build(), mask=True)
    out["rnn_second"] = lambda: _unfold_grad(M.rnn(3, 4, 3), second=True)
    out["lstm_second"] = lambda: _unfold_grad(M.lstm(3, 2, 3), steps=3, second=True)
    out.update(birnn=_birnn, encdec=_encoder_decoder, expression=_expression, scalar=_scalar)
    return out


def main() -> None:
    show = sys.argv[1] if len(sys.argv) > 1 else None
    for name, build in cases().items():
        try:
            lines = describe(build())
        except Exception as exc:  # a builder that changed its signature: say so, go on
            print(name, "ERROR", type(exc).__name__, str(exc)[:200])
            continue
        print(name, len(lines), hashlib.md5(repr(lines).encode()).hexdigest())
        if name == show:
            for line in lines:
                print("   ", line)


if __name__ == "__main__":
    main()
