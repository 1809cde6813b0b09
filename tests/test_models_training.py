"""Training the structured models with ``unfold.train.Trainer``: recursive nets on batches of trees
of different shapes, encoder–decoders on padded batches of different input and output lengths —
the Trainer's mean loss and gradients against the graphs', updates, save / load, decoding."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf
from unfold import models as M
from unfold.data.tasks import logic_expressions
from unfold.generate import greedy_decode
from unfold.train import SGD, Adam, Trainer, init_params, load_model, save_model


def forest_batch(rng, batch=3, trees=3):
    drawn = [logic_expressions(int(k), batch, rng) for k in rng.integers(1, 4, trees)]
    return {"trees": [d[0] for d in drawn], "x": np.concatenate([d[1] for d in drawn]),
            "y": np.stack([d[2] for d in drawn])}


def test_the_trainer_trains_recursive_nets_on_batches_of_trees_of_different_shapes(tmp_path):
    rng = np.random.default_rng(0)
    rn = M.recursive_net(5, 6, 2, inputs="tokens")
    trainer = Trainer(rn, init_params(rn, seed=1), SGD(0.1))
    feed = forest_batch(rng)
    # the mean over trees and examples of the per-tree losses, and its gradient
    net = rn.unfold(feed["trees"])
    values = uf.evaluate([net.loss, *uf.grad(net.loss, net.params)],
                         {**trainer.params, "x": feed["x"], "y": feed["y"]})
    loss, grads = trainer.gradients(feed)
    count = 3 * 3
    assert loss == pytest.approx(values[0] / count, rel=1e-12)
    for p, g in zip(net.params, values[1:]):
        np.testing.assert_allclose(grads[p.name], g / count, rtol=1e-12, atol=1e-15)
    assert trainer.check_gradients(feed, samples=6)["max_rel_error"] < 1e-6
    before = {k: v.copy() for k, v in trainer.params.items()}
    trainer.step(feed)
    for p, g in zip(net.params, values[1:]):
        np.testing.assert_allclose(trainer.params[p.name], before[p.name] - 0.1 * g / count,
                                   rtol=1e-12, atol=1e-15)
    # saved whole and restored, training goes on bit for bit
    batches = [forest_batch(rng) for _ in range(4)]
    restored = load_model(save_model(tmp_path / "tree.npz", trainer))
    assert restored.rec.spec == rn.spec
    for b in batches:
        trainer.step(b)
        restored.step(b)
    for k in trainer.params:
        np.testing.assert_array_equal(trainer.params[k], restored.params[k])


def test_a_recursive_net_learns_boolean_expressions_through_the_trainer():
    rng = np.random.default_rng(3)
    rn = M.recursive_net(5, 12, 2, inputs="tokens")
    trainer = Trainer(rn, init_params(rn, seed=3), Adam(0.03))
    history = trainer.fit(iter(lambda: forest_batch(rng, batch=8), None), steps=60,
                          progress=False)
    assert np.mean(history.losses[-10:]) < 0.75 * np.mean(history.losses[:10])
    assert len(trainer._programs) <= Trainer.PROGRAMS


def test_a_batch_without_its_trees_is_refused_by_name():
    rn = M.recursive_net(5, 4, 2, inputs="tokens")
    trainer = Trainer(rn, init_params(rn), SGD(0.1))
    with pytest.raises(KeyError, match="'trees'"):
        trainer.gradients({"x": np.zeros((3, 2), np.int64), "y": np.zeros((1, 2), np.int64)})


def test_the_trainer_keeps_a_bounded_number_of_programs(monkeypatch):
    rec = M.rnn(2, 3, 2)
    trainer = Trainer(rec, init_params(rec), SGD(0.1))
    monkeypatch.setattr(Trainer, "PROGRAMS", 2)
    rng = np.random.default_rng(0)
    for steps in (1, 2, 3, 2):
        trainer.gradients({"x": rng.standard_normal((steps, 2)), "y": np.zeros(steps, np.int64)})
    assert [key[0] for key in trainer._programs] == [3, 2]


def padded_batch(rng, x_lengths, y_lengths, symbols=4):
    n_x, n_y, B = max(x_lengths), max(y_lengths), len(x_lengths)
    x = rng.integers(0, symbols, (n_x, B))
    y = rng.integers(0, symbols, (n_y, B))
    return {"x": x, "y": y, "y_prev": M.teacher_forced(y, 0),
            **M.EncoderDecoder.masks(x_lengths, y_lengths)}


@pytest.mark.parametrize("context", M.CONTEXTS)
def test_a_padded_seq2seq_batch_is_the_sum_of_its_examples_and_trains(context):
    rng = np.random.default_rng(5)
    model = M.encoder_decoder(4, 3, 4, encoder_cell="lstm", decoder_cell="gru", context=context,
                              inputs="tokens")
    params = {k: rng.uniform(-1, 1, p.shape) for k, p in model.params.items()}
    x_lengths, y_lengths = [3, 1, 2], [1, 3, 2]
    feed = padded_batch(rng, x_lengths, y_lengths)
    trainer = Trainer(model, params, SGD(0.1), mask=True)
    loss, grads = trainer.gradients(feed)
    total, expected = 0.0, {k: 0.0 for k in params}
    for i, (a, b) in enumerate(zip(x_lengths, y_lengths)):
        alone = model.unfold(a, b)
        names = alone.param_names
        out = uf.evaluate([alone.loss, *uf.grad(alone.loss, list(names.values()))],
                          {**params, "x": feed["x"][:a, i], "y": feed["y"][:b, i],
                           "y_prev": feed["y_prev"][:b, i]})
        total += out[0]
        for k, g in zip(names, out[1:]):
            expected[k] = expected[k] + g
    count = sum(y_lengths)
    assert loss == pytest.approx(total / count, rel=1e-12)
    for k in params:
        np.testing.assert_allclose(grads[k], expected[k] / count, rtol=1e-10, atol=1e-14)
    trainer.step(feed)
    assert trainer.history[-1].loss == pytest.approx(total / count, rel=1e-12)
    # decoding a padded batch is decoding each input alone
    decoded = greedy_decode(model, params, feed["x"], start=0, max_length=4, x_lengths=x_lengths)
    assert decoded == [greedy_decode(model, params, feed["x"][:a, i], start=0, max_length=4)
                       for i, a in enumerate(x_lengths)]


def test_masks_and_their_misuse():
    masks = M.EncoderDecoder.masks([2, 1], [1, 3], n_x=3)
    np.testing.assert_array_equal(masks["encoder.mask"], [[1, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(masks["decoder.mask"], [[1, 1], [0, 1], [0, 1]])
    with pytest.raises(ValueError, match="exceeds"):
        M.EncoderDecoder.masks([4], [1], n_x=3)
    with pytest.raises(ValueError, match="one of each"):
        M.EncoderDecoder.masks([1, 2], [1])
    with pytest.raises(ValueError, match="carry"):
        Trainer(M.encoder_decoder(2, 2, 3), init_params(M.encoder_decoder(2, 2, 3)), SGD(0.1),
                carry=True)


def test_a_shared_name_in_a_joined_graph_points_to_the_qualified_names():
    model = M.encoder_decoder(2, 2, 3)
    net = model.unfold(2, 2, mask=True)
    feed = {**init_params(model), "x": np.zeros((2, 1, 2)), "y": np.zeros((2, 1), np.int64),
            "y_prev": np.zeros((2, 1), np.int64), "mask": np.ones((2, 1))}
    with pytest.raises(uf.FeedError, match=r"encoder\.mask, decoder\.mask|decoder\.mask, "
                                           r"encoder\.mask"):
        uf.evaluate([net.loss], feed)
