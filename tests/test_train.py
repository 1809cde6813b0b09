"""Training: optimisers against their textbook updates, clipping, truncated BPTT, learning a tiny
task, initialisation, and parameter files."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold import train as T

FEW = max(5, settings().max_examples // 3)

# --- optimisers on a quadratic -----------------------------------------------------------------

A = np.array([[3.0, 0.5], [0.5, 1.0]])
B = np.array([1.0, -2.0])


def quadratic_grad(theta):
    """∇ of ½ θᵀAθ − Bᵀθ (+ ½ ‖φ‖² for a second parameter φ)."""
    return {"theta": A @ theta["theta"] - B, "phi": theta["phi"]}


def run(optimizer, steps=25):
    params = {"theta": np.array([2.0, -1.0]), "phi": np.array([[1.0, -3.0]])}
    path = []
    for _ in range(steps):
        optimizer.update(params, quadratic_grad(params))
        path.append({k: v.copy() for k, v in params.items()})
    return path


def textbook(update, steps=25):
    """The same walk written out by hand: ``update(θ, g, state, t) -> θ``."""
    params = {"theta": np.array([2.0, -1.0]), "phi": np.array([[1.0, -3.0]])}
    state = {k: {} for k in params}
    path = []
    for t in range(1, steps + 1):
        g = quadratic_grad(params)
        params = {k: update(params[k], g[k], state[k], t) for k in params}
        path.append(params)
    return path


def assert_same_path(a, b):
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_allclose(x[k], y[k], rtol=1e-12, atol=1e-14)


@settings(max_examples=FEW)
@given(st.floats(0.01, 0.3))
def test_sgd_is_theta_minus_lr_g(lr):
    assert_same_path(run(T.SGD(lr)), textbook(lambda p, g, s, t: p - lr * g))


@settings(max_examples=FEW)
@given(st.floats(0.01, 0.2), st.floats(0.0, 0.95))
def test_momentum_is_algorithm_8_2(lr, alpha):
    def update(p, g, s, t):
        s["v"] = alpha * s.get("v", 0.0) - lr * g
        return p + s["v"]
    assert_same_path(run(T.Momentum(lr, alpha)), textbook(update))


@settings(max_examples=FEW)
@given(st.floats(0.001, 0.3), st.floats(0.5, 0.99), st.floats(0.9, 0.9999))
def test_adam_is_algorithm_8_7(lr, rho1, rho2):
    def update(p, g, s, t):
        s["s"] = rho1 * s.get("s", 0.0) + (1 - rho1) * g
        s["r"] = rho2 * s.get("r", 0.0) + (1 - rho2) * g * g
        s_hat, r_hat = s["s"] / (1 - rho1 ** t), s["r"] / (1 - rho2 ** t)
        return p - lr * s_hat / (np.sqrt(r_hat) + 1e-8)
    assert_same_path(run(T.Adam(lr, rho1, rho2)), textbook(update))


@pytest.mark.parametrize("optimizer", [T.SGD(0.2), T.Momentum(0.05), T.Adam(0.1)])
def test_optimisers_reach_the_minimum(optimizer):
    final = run(optimizer, steps=400)[-1]
    np.testing.assert_allclose(final["theta"], np.linalg.solve(A, B), atol=1e-3)


def test_optimiser_errors():
    with pytest.raises(ValueError, match="learning rate"):
        T.SGD(0.0)
    with pytest.raises(KeyError, match="no gradient"):
        T.SGD(0.1).update({"W": np.zeros(2)}, {})


# --- clipping (section 10.11.1) ----------------------------------------------------------------

gradients = st.dictionaries(st.sampled_from(["W", "U", "b"]),
                            st.integers(0, 2**32 - 1).map(
                                lambda s: np.random.default_rng(s).standard_normal((3, 2)) *
                                10 ** np.random.default_rng(s).uniform(-3, 3)),
                            min_size=1)


@settings(max_examples=FEW)
@given(gradients, st.floats(0.01, 100.0))
def test_clipping_by_norm_bounds_the_norm_and_keeps_the_direction(grads, threshold):
    clipped, norm = T.clip_by_norm(grads, threshold)
    assert norm == pytest.approx(T.global_norm(grads))
    assert T.global_norm(clipped) <= threshold * (1 + 1e-12)
    scale = min(1.0, threshold / norm)
    for k in grads:
        np.testing.assert_allclose(clipped[k], grads[k] * scale, rtol=1e-12)
    if norm <= threshold:
        assert all(clipped[k] is grads[k] for k in grads)


@settings(max_examples=FEW)
@given(gradients, st.floats(0.01, 10.0))
def test_elementwise_clipping_bounds_every_element(grads, threshold):
    clipped = T.clip_elementwise(grads, threshold)
    for k, g in grads.items():
        assert np.all(np.abs(clipped[k]) <= threshold)
        small = np.abs(g) <= threshold
        np.testing.assert_array_equal(clipped[k][small], g[small])
        assert np.all(np.sign(clipped[k]) == np.sign(g))


def test_clipping_rejects_a_bad_threshold():
    with pytest.raises(ValueError):
        T.clip_by_norm({"W": np.ones(2)}, 0.0)
    with pytest.raises(ValueError):
        T.clip_elementwise({"W": np.ones(2)}, -1.0)


def test_trainer_clips_and_records_the_norm_before_clipping():
    rec = M.rnn(2, 3, 4)
    params = T.init_params(rec, seed=0, gain=3.0)
    before = {k: v.copy() for k, v in params.items()}
    trainer = T.Trainer(rec, params, T.SGD(1.0), clip=1e-3)
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((5, 4, 2)), "y": rng.integers(0, 4, (5, 4))}
    _, grads = trainer.gradients(feed)
    trainer.step(feed)
    step = {k: before[k] - params[k] for k in params}
    assert T.global_norm(step) == pytest.approx(1e-3)
    assert trainer.history[0].grad_norm == pytest.approx(T.global_norm(grads))
    for k in params:
        np.testing.assert_allclose(step[k], grads[k] * 1e-3 / T.global_norm(grads))


# --- truncated back-propagation through time -------------------------------------------------

BUILDERS = {"rnn": lambda: M.rnn(2, 3, 4, carry=True),
            "lstm": lambda: M.lstm(2, 3, 4, carry=True),
            "gru": lambda: M.gru(2, 3, 4, variant="common", carry=True),
            "leaky": lambda: M.leaky_rnn(2, 3, 4, alpha=0.5, carry=True)}


def full_bptt(rec, steps, params, feed, truncate=None):
    net = rec.unfold(steps, truncate=truncate)
    zeros = {f"{s}0": np.zeros((feed["y"].shape[1], 3)) for s in rec.states}
    values = uf.evaluate([net.loss, *uf.grad(net.loss, net.params)], {**params, **feed, **zeros})
    return values[0], {p.name: g for p, g in zip(net.params, values[1:])}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@settings(max_examples=FEW)
@given(steps=st.integers(1, 7), extra=st.integers(0, 3), batch=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_truncated_bptt_with_k_at_least_tau_is_full_bptt(name, steps, extra, batch, seed):
    rec = BUILDERS[name]()
    params = T.init_params(rec, seed=seed, gain=1.5)
    rng = np.random.default_rng(seed)
    feed = {"x": rng.standard_normal((steps, batch, 2)), "y": rng.integers(0, 4, (steps, batch))}
    trainer = T.Trainer(rec, params, T.SGD(0.1), carry=True)
    loss, grads = T.truncated_gradients(trainer, feed, chunk=steps + extra)
    want_loss, want = full_bptt(rec, steps, params, feed)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@settings(max_examples=FEW)
@given(steps=st.integers(2, 8), chunk=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_chunks_with_carried_state_are_the_truncated_graph(name, steps, chunk, seed):
    """Chunk by chunk, the state fed forward: the same loss as one unfolded graph, and the same
    gradients as that graph with gradients cut every k steps (``unfold(τ, truncate=k)``)."""
    rec = BUILDERS[name]()
    params = T.init_params(rec, seed=seed, gain=1.5)
    rng = np.random.default_rng(seed)
    feed = {"x": rng.standard_normal((steps, 2, 2)), "y": rng.integers(0, 4, (steps, 2))}
    trainer = T.Trainer(rec, params, T.SGD(0.1), carry=True)
    loss, grads = T.truncated_gradients(trainer, feed, chunk=chunk)
    want_loss, want = full_bptt(rec, steps, params, feed, truncate=chunk)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-12)


def test_stream_chunks_walk_parallel_rows():
    x = np.arange(23)
    chunks = list(T.stream_chunks(x, x + 100, chunk=3, batch=2))
    assert [c["x"].shape for c in chunks] == [(3, 2), (3, 2), (3, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([c["x"][:, 1] for c in chunks]),
                                  np.arange(11, 22))
    np.testing.assert_array_equal(chunks[0]["y"], chunks[0]["x"] + 100)
    with pytest.raises(ValueError):
        next(T.stream_chunks(x, x[:-1], 3, 2))


def test_fit_stream_needs_carry():
    rec = M.rnn(2, 3, 4)                   # a model without h0 streams too: from zeros
    T.Trainer(rec, T.init_params(rec), T.SGD(0.1), carry=True).fit_stream(
        np.zeros((10, 2)), np.zeros(10, int), chunk=2, batch=1, steps=2, progress=False)
    with pytest.raises(uf.RecurrenceError, match="carry"):
        T.Trainer(rec, T.init_params(rec), T.SGD(0.1)).fit_stream(
            np.zeros(10, int), np.zeros(10, int), chunk=2, batch=1, steps=1)
    with pytest.raises(KeyError, match="init_params"):
        T.Trainer(rec, {}, T.SGD(0.1))


# --- learning ---------------------------------------------------------------------------------

def test_a_language_model_learns_a_periodic_stream_with_truncated_bptt():
    """A GRU language model on the stream 0 1 2 3 0 1 2 3 …, 5-step chunks with the state
    carried: within 150 steps its mean loss falls below 0.05 nats per symbol (chance: log 4)."""
    stream = np.tile(np.arange(4), 200)
    rec = M.language_model(4, 8, cell="gru", carry=True)
    params = T.init_params(rec, seed=0)
    trainer = T.Trainer(rec, params, T.Adam(0.05), clip=5.0, carry=True)
    history = trainer.fit_stream(stream[:-1], stream[1:], chunk=5, batch=4, steps=150,
                                 progress=False)
    assert len(history) == 150 and history[0].loss > 1.0
    assert history.smoothed(10) < 0.05
    # compiled once per chunk length (and for the first chunk, which reads the init), never
    # per step
    assert len(trainer._programs) <= 3


def test_a_plain_rnn_learns_to_repeat_the_previous_symbol():
    """y(t) = x(t−1): the loss falls below 0.1 within 200 Adam steps (fixed seed)."""
    rng = np.random.default_rng(0)

    def batches():
        while True:
            x = rng.integers(0, 3, (6, 16))
            y = np.vstack([np.zeros((1, 16), np.int64), x[:-1]])
            yield {"x": x, "y": y}

    rec = M.rnn(3, 10, 3, inputs="tokens")
    params = T.init_params(rec, seed=0)
    trainer = T.Trainer(rec, params, T.Adam(0.03), clip=5.0)
    history = trainer.fit(batches(), steps=200, progress=False)
    # step 1's target is arbitrary (0): the best mean loss is (5/6)·0 + (1/6)·log 3 ≈ 0.18
    assert history.smoothed(20) < 0.1 + np.log(3) / 6


def test_history_is_written_as_csv(tmp_path):
    rec = M.rnn(2, 3, 4)
    trainer = T.Trainer(rec, T.init_params(rec), T.SGD(0.1))
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((3, 2)), "y": rng.integers(0, 4, 3)}
    trainer.fit([feed], steps=3, progress=False)
    trainer.history.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == "step,loss,grad_norm,seconds,skipped" and len(lines) == 4
    assert [r["step"] for r in trainer.history.to_json()] == [1, 2, 3]
    with pytest.raises(ValueError, match="ran out"):
        trainer.fit([], steps=1, progress=False)


# --- initialisation ---------------------------------------------------------------------------

def test_init_schemes():
    rec = M.lstm(20, 30, 5, dtype=np.float32)
    params = T.init_params(rec, seed=3)
    assert all(params[k].dtype == np.float32 for k in params)
    for k in ("W", "W_f", "W_g", "W_o"):
        np.testing.assert_allclose(params[k].T @ params[k], np.eye(30), atol=1e-5)
    assert np.all(params["b_f"] == 1.0) and np.all(params["b"] == 0) and np.all(params["c"] == 0)
    assert params["U"].std() == pytest.approx(1 / np.sqrt(20), rel=0.15)
    again = T.init_params(rec, seed=3)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    gauss = T.init_params(rec, seed=3, recurrent="gaussian", biases={})
    assert np.all(gauss["b_f"] == 0) and gauss["W"].std() == pytest.approx(1 / np.sqrt(30),
                                                                             rel=0.15)
    assert np.array_equal(T.init_params({"W": (3, 3)}, recurrent="identity")["W"], np.eye(3))
    with pytest.raises(ValueError, match="recurrent"):
        T.init_params(rec, recurrent="unitary")


# --- parameter files --------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(tmp_path):
    rec = M.gru(3, 4, 5)
    params = T.init_params(rec, seed=0)
    params["c"] = params["c"].astype(np.float64) + 1e-300
    path = T.save_params(tmp_path / "model.npz", params)
    loaded = T.load_params(path, rec)
    assert set(loaded) == set(params)
    for k in params:
        assert loaded[k].dtype == params[k].dtype and np.array_equal(loaded[k], params[k])
    assert os.listdir(tmp_path) == ["model.npz"]              # no temporary file left
    T.save_params(tmp_path / "model.npz", {k: v * 2 for k, v in params.items()})  # overwrite
    np.testing.assert_array_equal(T.load_params(path)["W"], params["W"] * 2)


def test_a_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    T.save_params(path, {"W": np.ones(2)})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        T.save_params(path, {"W": np.zeros(2)})
    monkeypatch.undo()
    np.testing.assert_array_equal(T.load_params(path)["W"], np.ones(2))
    assert os.listdir(tmp_path) == ["model.npz"]


def test_corrupt_and_truncated_files_give_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(T.CheckpointError, match="corrupt"):
        T.load_params(garbage)
    good = tmp_path / "good.npz"
    T.save_params(good, {"W": np.arange(1000.0)})
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match="corrupt"):        # CheckpointError is a ValueError
        T.load_params(truncated)
    with pytest.raises(FileNotFoundError):
        T.load_params(tmp_path / "missing.npz")


def test_mismatched_files_name_what_differs(tmp_path):
    path = tmp_path / "rnn.npz"
    rnn = M.rnn(3, 4, 5)
    T.save_params(path, T.init_params(rnn))
    with pytest.raises(T.CheckpointError, match=r"missing \['U_f'"):
        T.load_params(path, M.lstm(3, 4, 5))
    with pytest.raises(T.CheckpointError, match="'W' is \\(4, 4\\) float64 in the file but "
                                                "the model expects \\(6, 6\\)"):
        T.load_params(path, M.rnn(3, 6, 5))
    with pytest.raises(T.CheckpointError, match="float32"):
        T.load_params(path, M.rnn(3, 4, 5, dtype=np.float32))
    assert set(T.load_params(path, rnn)) == set(rnn.params)


def test_spot_gradient_check_and_stream_evaluation():
    stream = np.tile(np.arange(5), 30)
    rec = M.language_model(5, 6, cell="lstm", carry=True)
    trainer = T.Trainer(rec, T.init_params(rec, seed=1, gain=1.5), T.SGD(0.1), carry=True)
    feed = next(T.stream_chunks(stream[:-1], stream[1:], chunk=6, batch=3))
    report = trainer.check_gradients(feed, samples=10)
    assert report["checked"] == 10 and report["max_rel_error"] < 1e-6
    assert trainer.carry is None                         # left as it was
    compiled = trainer.program(6)                       # a wrong gradient is caught: give
    swapped = list(compiled.names)                       # ∇W_f the name W and vice versa
    i, j = swapped.index("W"), swapped.index("W_f")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    wrong = T.Trainer(rec, trainer.params, T.SGD(0.1), carry=True)
    wrong._programs[(6, True, False)] = dataclasses.replace(compiled, names=swapped)
    assert wrong.check_gradients(feed, samples=40)["max_rel_error"] > 1e-3
    # the stream's mean loss, state carried: the same as one long unfolded graph
    mean = trainer.evaluate_stream(stream[:-1], stream[1:], chunk=7, batch=1)
    net = rec.unfold(len(stream) - 1)
    (total,) = uf.evaluate([net.loss], {**trainer.params, "x": stream[:-1], "y": stream[1:],
                                         "h0": np.zeros(6), "s0": np.zeros(6)})
    assert mean == pytest.approx(total / (len(stream) - 1), rel=1e-12)
