"""Composition that scales (issue 10, item 6): joined recurrences namespace their parameters
(``encoder.W``, ``decoder.W``), ``Trainer`` trains a joined graph, the library decodes it, and a
model saved whole — what rebuilds it, parameters, optimiser state — resumes exactly."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf
from unfold import models as M
from unfold import train
from unfold.generate import greedy_decode
from unfold.testing import gradcheck

V = 5                       # symbols 0 … 4; 5 is the end symbol, also the start of the decoder
END = START = V


def reversal(rng, length=4, batch=32):
    """x: ``length`` random symbols; y: the same reversed, then the end symbol (n_y = n_x + 1)."""
    x = rng.integers(0, V, (length, batch))
    y = np.concatenate([x[::-1], np.full((1, batch), END)])
    return {"x": x, "y": y, "y_prev": M.teacher_forced(y, START)}


def test_trainer_trains_an_encoder_decoder_and_greedy_decoding_reverses_sequences():
    model = M.encoder_decoder(V, 16, V + 1, inputs="tokens", variant="common")
    params = train.init_params(model, seed=0)
    assert {"encoder.W", "decoder.W", "decoder.W_C"} <= set(params)
    trainer = train.Trainer(model, params, train.Adam(0.02), clip=1.0)
    rng = np.random.default_rng(0)
    history = trainer.fit(iter(lambda: reversal(rng), None), steps=300, progress=False)
    assert history.smoothed(20) < 0.05 < history[0].loss
    test = reversal(np.random.default_rng(1), batch=200)
    decoded = greedy_decode(model, params, test["x"], start=START, end=END, max_length=8)
    exact = np.mean([d == list(test["x"][::-1, i]) for i, d in enumerate(decoded)])
    print(f"sequence reversal (4 symbols → 5): {exact:.1%} exactly right after 300 steps")
    assert exact > 0.95


def joined_by_hand():
    """Two recurrences that both name their weights W, U, b, joined by bind."""
    enc = uf.Recurrence("enc")
    x = enc.sequence("x", (2,))
    h = enc.state("h", (3,))
    enc.update(h, uf.tanh(enc.param("b", (3,)) + enc.param("W", (3, 3)) @ h +
                          enc.param("U", (3, 2)) @ x))
    dec = uf.Recurrence("dec")
    C = dec.context("C", (3,))
    s = dec.state("h", (3,), init=C)
    s_t = dec.update(s, uf.tanh(dec.param("b", (3,)) + dec.param("W", (3, 3)) @ s +
                                dec.param("U", (3, 3)) @ C))
    dec.loss("L", uf.cross_entropy(dec.param("V", (2, 3)) @ s_t, dec.target("y", ())))
    return enc, dec


def test_bound_recurrences_namespace_their_parameters():
    enc, dec = joined_by_hand()
    net = dec.unfold(2, bind={"C": enc.unfold(3).final("h")})
    names = net.param_names
    assert sorted(names) == ["dec.U", "dec.V", "dec.W", "dec.b", "enc.U", "enc.W", "enc.b"]
    assert names["enc.W"] is enc.params["W"] and names["dec.W"] is dec.params["W"]
    assert dec.unfold(2).param_names == dec.params              # one recurrence: plain names
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(p.shape) for k, p in names.items()}
    feed.update(x=rng.standard_normal((3, 2)), y=rng.integers(0, 2, 2))
    loss, = uf.evaluate([net.loss], feed)                        # fed by qualified names
    by_node = {names[k]: v for k, v in feed.items() if k in names}
    assert uf.evaluate([net.loss], {**by_node, "x": feed["x"], "y": feed["y"]})[0] == loss
    with pytest.raises(uf.FeedError, match="shared by 2 placeholders"):
        uf.evaluate([net.loss], {**feed, "W": feed["enc.W"]})
    gradcheck(net.loss, net.params, feed)                        # gradcheck finds them too
    twin = uf.Recurrence("dec")
    twin.param("W", (3, 3))
    clash = uf.Recurrence("dec")
    c = clash.context("C", (3,))
    clash.loss("L", uf.sum(clash.param("W", (3, 3)) @ c))
    with pytest.raises(uf.RecurrenceError, match="distinct names"):
        clash.unfold(1, bind={"C": uf.tanh(twin.params["W"] @ uf.constant(np.ones(3)))}
                     ).param_names


def test_a_hand_built_joined_model_trains_and_checkpoints_by_qualified_names(tmp_path):
    enc, dec = joined_by_hand()
    model = M.EncoderDecoder(enc, dec)
    params = train.init_params(model, seed=1)
    trainer = train.Trainer(model, params, train.Momentum(0.1))
    rng = np.random.default_rng(2)
    batches = [{"x": rng.standard_normal((n_x, 4, 2)), "y": rng.integers(0, 2, (n_y, 4))}
               for n_x, n_y in ((3, 2), (5, 1), (2, 4))]
    history = trainer.fit(batches, steps=30, progress=False)
    assert history[-1].loss < history[0].loss
    assert sorted(trainer._programs) == [((2, 4), True, False), ((3, 2), True, False),
                                         ((5, 1), True, False)]     # one program per lengths
    path = train.save_params(tmp_path / "joined.npz", params)
    assert sorted(train.load_params(path, model)) == sorted(model.params)
    with pytest.raises(ValueError, match="carry is an option of a single recurrence"):
        train.Trainer(model, params, train.SGD(0.1), carry=True)
    with pytest.raises(TypeError, match="a stream is walked by one recurrence"):
        trainer.evaluate_stream(np.zeros((4, 2)), np.zeros(4, np.int64), chunk=2)


@pytest.mark.parametrize("build, batches", [
    (lambda: M.encoder_decoder(V, 6, V + 1, encoder_cell="lstm", inputs="tokens"),
     lambda rng: [reversal(rng, 3, 4) for _ in range(6)]),
    (lambda: M.lstm(3, 5, 3),
     lambda rng: [{"x": rng.standard_normal((4, 3, 3)), "y": rng.integers(0, 3, (4, 3))}
                  for _ in range(6)]),
])
def test_a_model_saved_whole_resumes_exactly(tmp_path, build, batches):
    rng = np.random.default_rng(3)
    data = batches(rng)
    model = build()
    whole = train.Trainer(model, train.init_params(model, seed=4), train.Adam(0.03), clip=0.5)
    whole.fit(data, steps=12, progress=False)                       # uninterrupted: 12 steps
    model = build()
    first = train.Trainer(model, train.init_params(model, seed=4), train.Adam(0.03), clip=0.5)
    first.fit(data, steps=6, progress=False)
    path = train.save_model(tmp_path / "run.npz", first)
    resumed = train.load_model(path)                                # rebuilt from its spec
    assert resumed.rec is not first.rec and resumed.rec.spec == first.rec.spec
    assert resumed.optimizer.t == 6 and resumed.clip == 0.5 and len(resumed.history) == 6
    resumed.fit(data, steps=6, progress=False)                      # batches 7 … 12 (cycled)
    for k in whole.params:
        np.testing.assert_array_equal(resumed.params[k], whole.params[k], err_msg=k)
    np.testing.assert_array_equal(resumed.history.losses, whole.history.losses)


def test_every_builder_rebuilds_from_its_spec():
    built = [M.rnn(2, 3, 4, outputs="last"), M.lstm(2, 3, 4, variant="common"),
             M.gru(2, 3, 4, inputs="tokens"), M.leaky_rnn(2, 3, 4, alpha=np.array([.1, .5, .9])),
             M.skip_rnn(2, 3, 4, delay=3), M.teacher_forcing(2, 3, 4, mode="free"),
             M.context_rnn(2, 3, 4), M.conditional_rnn(2, 3, 4), M.output_to_hidden(2, 3, 4),
             M.rnn_single_output(2, 3, 4), M.language_model(5, 3, max_length=4),
             M.deep_rnn(2, [3, 2], 4, cell="gru", input_layers=(3,)),
             M.bidirectional(2, 3, 4, cell="lstm"), M.echo_state(2, 6, 1, seed=3),
             M.memory_network(2, 3, 4, cells=3, width=2, outputs=range(2, 4)),
             M.encoder_decoder(2, 3, 4, context="mean"), M.recursive_net(2, 3, 4)]
    assert {m.spec["builder"] for m in built} <= set(M.BUILDERS)
    for model in built:
        again = M.rebuild(model.spec)
        assert again.spec == model.spec
        assert {k: p.shape for k, p in again.params.items()} == \
            {k: p.shape for k, p in model.params.items()}
        assert getattr(again, "name", None) == getattr(model, "name", None)
    esn = [m for m in built if m.spec["builder"] == "echo_state"][0]
    reservoirs = [[n.attrs["value"] for n in m.body() if n.op.name == "constant" and n.name]
                  for m in (esn, M.rebuild(esn.spec))]
    assert all(np.array_equal(a, b) for a, b in zip(*reservoirs))   # the same fixed W, U


def test_save_model_refuses_what_nothing_could_rebuild(tmp_path):
    enc, dec = joined_by_hand()
    hand = train.Trainer(M.EncoderDecoder(enc, dec), train.init_params(M.EncoderDecoder(enc, dec)),
                         train.SGD(0.1))
    with pytest.raises(ValueError, match="save_training"):
        train.save_model(tmp_path / "x.npz", hand)
    model = M.encoder_decoder(2, 3, 4, context=lambda states: states[-1])
    assert model.spec is None
    path = train.save_training(tmp_path / "t.npz", train.Trainer(
        M.lstm(2, 3, 4), train.init_params(M.lstm(2, 3, 4)), train.SGD(0.1)))
    with pytest.raises(train.CheckpointError, match="not a saved model"):
        train.load_model(path)
