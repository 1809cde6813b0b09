"""Teacher forcing (Fig. 10.6) and scheduled sampling: one set of weights, several ways of
closing the loop."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M

FEW = max(5, settings().max_examples // 3)


def run(rec, steps, params, feed):
    """Outputs o(1…τ) and the loss of ``rec`` unfolded over ``steps``."""
    net = rec.unfold(steps)
    values = uf.evaluate([net.loss, *net.over_time("o")], {**params, **feed})
    return values[0], np.stack(values[1:])


@st.composite
def setups(draw, loss="cross_entropy"):
    m, n, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 4))
    steps, batch = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rec = M.teacher_forcing(m, n, k, mode="free", loss=loss)
    params = {name: rng.uniform(-2, 2, p.shape) for name, p in rec.params.items()}
    x = rng.standard_normal((steps, batch, m))
    return (m, n, k, steps, batch), params, x, rng


@settings(max_examples=FEW)
@given(setups(), st.data())
def test_train_mode_equals_free_running_only_when_outputs_equal_targets(setup, data):
    """With the true targets fed back, the network computes what it computes feeding back its
    own (argmax) outputs exactly when those outputs are the targets."""
    (m, n, k, steps, batch), params, x, rng = setup
    free = M.teacher_forcing(m, n, k, mode="free")
    train = M.teacher_forcing(m, n, k, mode="train")
    _, o_free = run(free, steps, params, {"x": x, "y": np.zeros((steps, batch), np.int64)})
    own = o_free.argmax(-1)
    # targets: the model's own outputs, with some entries changed at random
    y = own.copy()
    changes = data.draw(st.lists(st.tuples(st.integers(0, steps - 1), st.integers(0, batch - 1)),
                                 max_size=3))
    for t, b in changes:
        y[t, b] = (y[t, b] + 1) % k
    L_free, o_free = run(free, steps, params, {"x": x, "y": y})
    L_train, o_train = run(train, steps, params, {"x": x, "y": y})
    fed_same = (y[:-1] == own[:-1]).all(axis=0)          # per example: targets = outputs
    for b in range(batch):
        same = np.allclose(o_train[:, b], o_free[:, b], rtol=0, atol=1e-12)
        assert same == fed_same[b], (b, y[:, b], own[:, b])
    if fed_same.all():
        assert L_train == pytest.approx(L_free, rel=1e-12)


@settings(max_examples=FEW)
@given(setups(loss="squared_error"))
def test_regression_teacher_forcing_equals_free_running_on_its_own_outputs(setup):
    (m, n, k, steps, batch), params, x, rng = setup
    free = M.teacher_forcing(m, n, k, mode="free", loss="squared_error")
    train = M.teacher_forcing(m, n, k, mode="train", loss="squared_error")
    _, own = run(free, steps, params, {"x": x, "y": np.zeros((steps, batch, k))})
    _, o_train = run(train, steps, params, {"x": x, "y": own})
    np.testing.assert_allclose(o_train, own, rtol=0, atol=1e-12)
    nudged = own + 0.5
    _, o_train = run(train, steps, params, {"x": x, "y": nudged})
    assert not np.allclose(o_train[1:], own[1:])


@pytest.mark.parametrize("builder", [M.teacher_forcing, M.context_rnn, M.conditional_rnn])
@pytest.mark.parametrize("feedback", M.FEEDBACKS)
@settings(max_examples=FEW)
@given(setup=setups())
def test_scheduled_sampling_p0_is_teacher_forcing_and_p1_free_running(builder, feedback, setup):
    """Scheduled sampling with probability 0 of feeding the model's output gives the train
    mode's loss and gradients; with probability 1, the free-running mode's."""
    (m, n, k, steps, batch), _, x, rng = setup
    scheduled = builder(m, n, k, mode="scheduled", feedback=feedback)
    params = {name: rng.uniform(-2, 2, p.shape) for name, p in scheduled.params.items()}
    feed = {"x": x if builder is not M.context_rnn else x[0],
            "y": rng.integers(0, k, (steps, batch))}
    for p, mode in ((0.0, "train"), (1.0, "free")):
        z = M.scheduled_mask(steps, batch, p, rng)
        other = builder(m, n, k, mode=mode, feedback=feedback)
        got = grads_and_loss(scheduled, steps, params, {**feed, "z": z})
        want = grads_and_loss(other, steps, params, feed)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12,
                                       err_msg=f"p={p}: {name}")


def grads_and_loss(rec, steps, params, feed):
    net = rec.unfold(steps)
    names = [p.name for p in net.params]
    values = uf.evaluate([net.loss, *uf.grad(net.loss, net.params)], {**params, **feed})
    return {"L": values[0], **dict(zip(names, values[1:]))}


def test_scheduled_sampling_mixes_the_two():
    """0 < p < 1 feeds the truth at some steps and the model's output at others."""
    rng = np.random.default_rng(0)
    m, n, k, steps, batch = 2, 3, 4, 6, 5
    recs = {mode: M.teacher_forcing(m, n, k, mode=mode) for mode in M.MODES}
    params = {name: rng.uniform(-2, 2, p.shape) for name, p in recs["train"].params.items()}
    feed = {"x": rng.standard_normal((steps, batch, m)), "y": rng.integers(0, k, (steps, batch))}
    z = M.scheduled_mask(steps, batch, 0.5, rng)
    L_mix = grads_and_loss(recs["scheduled"], steps, params, {**feed, "z": z})["L"]
    L_train = grads_and_loss(recs["train"], steps, params, feed)["L"]
    L_free = grads_and_loss(recs["free"], steps, params, feed)["L"]
    assert L_mix not in (pytest.approx(L_train), pytest.approx(L_free))


def test_scheduled_mask():
    z = M.scheduled_mask(200, 50, 0.3, 0)
    assert z.shape == (200, 50) and set(np.unique(z)) <= {0.0, 1.0}
    assert abs(z.mean() - 0.3) < 0.02
    assert M.scheduled_mask(4, p=0.0).sum() == 0 and M.scheduled_mask(4, p=1.0).sum() == 4
    with pytest.raises(ValueError, match="probability"):
        M.scheduled_mask(3, 2, 1.5)


def test_the_modes_share_parameters():
    names = {mode: set(M.teacher_forcing(2, 3, 4, mode=mode).params) for mode in M.MODES}
    assert names["train"] == names["free"] == names["scheduled"] == {"U", "W", "b", "V", "c"}


def test_softmax_feedback_is_differentiable_and_argmax_is_not():
    """Free running with softmax feedback back-propagates through the fed-back outputs; with
    argmax the choice of symbol carries no gradient, so ∇V only comes from each L(t) directly."""
    rng = np.random.default_rng(1)
    m, n, k, steps = 2, 3, 4, 4
    feed = {"x": rng.standard_normal((steps, m)), "y": rng.integers(0, k, steps)}
    rec = M.teacher_forcing(m, n, k, mode="free", feedback="softmax")
    params = {name: rng.uniform(-1, 1, p.shape) for name, p in rec.params.items()}
    g_soft = grads_and_loss(rec, steps, params, feed)["V"]
    g_arg = grads_and_loss(M.teacher_forcing(m, n, k, mode="free"), steps, params, feed)["V"]
    assert not np.allclose(g_soft, g_arg)
