"""An evaluation's outputs are the caller's own arrays: writing to a fed array afterwards never
changes a result (nor writing to a result a fed array), on every path — the time-batched plan,
the per-node reference and the checkpointed schedule — even when an output is an input, a
parameter's dummy copy or a view of either."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf


@pytest.mark.parametrize("options", [{}, {"mode": "reference"}, {"checkpoint": 2}])
def test_outputs_never_share_memory_with_the_feed(options):
    rec = uf.models.rnn(3, 4, 2)
    net = rec.unfold(4)
    x1 = net.at(rec.sequences["x"], 1)
    W1 = net.at(rec.params["W"], 1)
    outputs = [net.loss, rec.params["W"], W1, x1, uf.reshape(x1, (3, 1)), x1[0:2]] + \
        uf.grad(net.loss, [rec.params["W"]])
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(p.shape) for k, p in rec.params.items()}
    feed.update(x=rng.standard_normal((4, 3)), y=rng.integers(0, 2, 4))
    got = uf.evaluate(outputs, feed, **options)
    kept = [np.array(a) for a in got]
    for a in feed.values():
        a[...] = 0
    for a, b in zip(got, kept):
        assert np.array_equal(a, b)
    assert not any(np.may_share_memory(a, b) for a in got for b in feed.values())
