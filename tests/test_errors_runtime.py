"""Runtime hardening (issue 11): streams, masks, training, checkpoints, feeds and declarations.

Two kinds of test. Properties showing that nothing is silently wrong — chunked streaming equals
the truncated graph for recurrences with skip connections, a masked batch equals its sequences
run one by one whatever the padding holds, a NaN batch leaves the parameters bit-identical, any
parameter name round-trips through a checkpoint, resumed training equals uninterrupted training.
And one test per class of bad input, asserting that it ends in an ``UnfoldError`` that is also
the builtin a caller expects, with a message naming what is wrong.
"""
from __future__ import annotations

import ast
import contextlib
import os
import pathlib
import stat
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold import train as T

FEW = max(5, settings().max_examples // 3)


@contextlib.contextmanager
def refused(builtin: type, *fragments: str):
    """The block raises an ``UnfoldError`` that is also ``builtin``, naming every fragment."""
    with pytest.raises(uf.UnfoldError) as info:
        yield info
    assert isinstance(info.value, builtin), f"{type(info.value).__mro__} is not a {builtin}"
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def rnn_feed(rng, steps, batch, n_in=2, classes=4):
    lead = (steps,) if batch is None else (steps, batch)
    return {"x": rng.standard_normal(lead + (n_in,)), "y": rng.integers(0, classes, lead)}


def values_of(net, params, feed, wrt=None):
    """``[L, ∇L…]`` of an unfolded graph, the gradients in the order of ``wrt``."""
    wrt = list(net.recurrence.params.values()) if wrt is None else wrt
    return uf.evaluate([net.loss, *uf.grad(net.loss, wrt)], {**params, **feed})


# --- 1. streams carry every value the step reads of the past -------------------------------------

def skips(delays_h: tuple[int, ...], delays_g: tuple[int, ...], learned_init: bool):
    """Two states, ``h`` reading itself and ``g`` at several delays, ``g`` reading ``h(t)`` and
    ``g(t−1)``; optionally a learned initial state."""
    rec = uf.Recurrence("skips")
    x, y = rec.sequence("x", (2,)), rec.target("y", ())
    init = uf.tanh(rec.param("h_init", (3,))) if learned_init else None
    h, g = rec.state("h", (3,), init=init), rec.state("g", (2,))
    terms = [rec.param("U", (3, 2)) @ x]
    terms += [rec.param(f"W{d}", (3, 3)) @ rec.past(h, d) for d in delays_h]
    terms += [rec.param(f"R{d}", (3, 2)) @ rec.past(g, d) for d in delays_g]
    h_t = rec.update(h, uf.tanh(uf.add_n(terms) if len(terms) > 1 else terms[0]))
    g_t = rec.update(g, uf.tanh(rec.param("G", (2, 3)) @ h_t + rec.param("Q", (2, 2)) @ g))
    rec.loss("L", uf.cross_entropy(rec.param("V", (4, 3)) @ h_t + rec.param("S", (4, 2)) @ g_t,
                                   y))
    return rec


delays = st.sets(st.integers(1, 4), max_size=3).map(lambda s: tuple(sorted(s)))


@settings(max_examples=FEW)
@given(delays_h=delays, delays_g=delays, learned=st.booleans(), steps=st.integers(1, 8),
       chunk=st.integers(1, 5), batch=st.none() | st.integers(1, 2), seed=st.integers(0, 999))
def test_streaming_equals_the_truncated_graph_with_skip_connections(delays_h, delays_g, learned,
                                                                     steps, chunk, batch, seed):
    """Chunk by chunk, the history carried: the loss and gradients of ``unfold(τ, truncate=k)``
    over the whole sequence — several states, several delays (deeper than a chunk too), and a
    learned init whose gradient only the first chunk sends."""
    rec = skips(delays_h, delays_g, learned)
    params = T.init_params(rec, seed=seed, gain=1.5)
    feed = rnn_feed(np.random.default_rng(seed), steps, batch)
    loss, grads = T.truncated_gradients(T.Trainer(rec, params, T.SGD(0.1)), feed, chunk=chunk)
    want = values_of(rec.unfold(steps, truncate=chunk), params, feed)
    assert loss == pytest.approx(want[0], rel=1e-12)
    for name, value in zip(rec.params, want[1:]):
        np.testing.assert_allclose(grads[name], value, rtol=1e-10, atol=1e-12, err_msg=name)


def test_a_stream_of_a_skip_language_model_is_evaluated_as_one_graph():
    stream = np.tile(np.arange(5), 9)
    rec = M.language_model(5, 4, cell="skip", delay=3, carry=True)
    trainer = T.Trainer(rec, T.init_params(rec, seed=3, gain=1.5), T.SGD(0.1), carry=True)
    mean = trainer.evaluate_stream(stream[:-1], stream[1:], chunk=2)
    net = rec.unfold(len(stream) - 1)
    (total,) = uf.evaluate([net.loss], {**trainer.params, "x": stream[:-1], "y": stream[1:],
                                         "h0": np.zeros(4)})
    assert mean == pytest.approx(total / (len(stream) - 1), rel=1e-12)


def test_history_inputs_continue_an_unfolding():
    """``unfold(k, history=True)`` fed ``final_history`` of the previous piece continues it."""
    rec = skips((1, 3), (2,), False)
    params = T.init_params(rec, seed=1)
    feed = rnn_feed(np.random.default_rng(1), 7, 2)
    whole = rec.unfold(7)
    first, second = rec.unfold(2), rec.unfold(5, history=True)
    assert [n.name for n in second.history("h")] == ["h(0)", "h(-1)", "h(-2)"]
    ends = uf.evaluate([n for s in ("h", "g") for n in first.final_history(s)],
                       {**params, "x": feed["x"][:2]})
    inputs = second.history("h") + second.history("g")
    got, want = uf.evaluate([second.final("h")], {**params, "x": feed["x"][2:],
                                                  **dict(zip(inputs, ends))}), \
        uf.evaluate([whole.final("h")], {**params, "x": feed["x"]})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    with refused(ValueError, "history=True"):
        first.history("h")


def test_what_streaming_refuses_and_why():
    rec = uf.Recurrence("bi")
    x = rec.sequence("x", (2,))
    g = rec.state("g", (2,), backward=True)
    rec.loss("L", uf.sum(rec.update(g, uf.tanh(g + x)) ** 2))
    params = {}
    with refused(ValueError, "backward", "next chunk"):
        T.Trainer(rec, params, T.SGD(0.1), carry=True)
    with refused(ValueError, "backward states ['g']", "future"):
        T.truncated_gradients(T.Trainer(rec, params, T.SGD(0.1)), {"x": np.ones((4, 2))}, 2)
    with refused(ValueError, "backward"):
        rec.unfold(3, history=True)
    one = T.truncated_gradients(T.Trainer(rec, params, T.SGD(0.1)), {"x": np.ones((4, 2))}, 4)
    assert np.isfinite(one[0])                               # one chunk is the whole graph
    last = M.rnn_single_output(2, 3, 4)
    trainer = T.Trainer(last, T.init_params(last), T.SGD(0.1))
    with refused(ValueError, "['L']", "'last'", "chunks"):
        T.truncated_gradients(trainer, rnn_feed(np.random.default_rng(0), 6, 2), chunk=2)


@pytest.mark.parametrize("bad, builtin", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                          (True, TypeError), ("3", TypeError)])
def test_stream_counts_must_be_positive_integers(bad, builtin):
    rec = M.rnn(2, 3, 4, inputs="tokens")
    trainer = T.Trainer(rec, T.init_params(rec), T.SGD(0.1), carry=True)
    x = np.zeros(20, int)
    for call in (lambda: trainer.fit_stream(x, x, chunk=bad, batch=1, steps=1),
                 lambda: trainer.fit_stream(x, x, chunk=2, batch=bad, steps=1),
                 lambda: trainer.fit_stream(x, x, chunk=2, batch=1, steps=bad),
                 lambda: trainer.evaluate_stream(x, x, chunk=bad),
                 lambda: T.stream_chunks(x, x, chunk=bad, batch=1),
                 lambda: T.truncated_gradients(trainer, {"x": x[:4], "y": x[:4]}, chunk=bad),
                 lambda: trainer.fit([{"x": x[:4], "y": x[:4]}], steps=bad, progress=False)):
        with refused(builtin, "must be a positive integer"):
            call()


# --- 2. masks: each sequence's own steps, and nothing from the padding ---------------------------

def padded(rng, lengths, steps, n_in=2, classes=4, holes=False):
    """A batch padded with NaN inputs and out-of-range targets, and its 0/1 mask."""
    batch = len(lengths)
    mask = np.array([[t < n for n in lengths] for t in range(steps)], float)
    if holes:                                      # padding inside a sequence, too
        mask *= rng.random(mask.shape) < 0.7
        mask[0] = 1.0
    x = rng.standard_normal((steps, batch, n_in))
    y = rng.integers(0, classes, (steps, batch))
    x[mask == 0] = np.nan
    y[mask == 0] = rng.choice([-7, classes, 10**6], size=int((mask == 0).sum()))
    return {"x": x, "y": y, "mask": mask}


@settings(max_examples=FEW)
@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3), extra=st.integers(0, 2),
       holes=st.booleans(), seed=st.integers(0, 999), which=st.sampled_from(["last", "every"]))
def test_a_masked_batch_is_its_sequences_run_one_by_one(lengths, extra, holes, seed, which):
    """``rnn_single_output`` (the loss at each sequence's own last step) and ``rnn``, with NaN
    and garbage in the padding: the loss, the gradients and the number of terms are those of
    each sequence, its real steps run alone."""
    rec = M.rnn(2, 3, 4, outputs=which)
    params = T.init_params(rec, seed=seed, gain=1.5)
    rng = np.random.default_rng(seed)
    steps = max(lengths) + extra
    feed = padded(rng, lengths, steps, holes=holes)
    net = rec.unfold(steps, mask=True)
    got = uf.evaluate([net.terms] + values_of(net, params, feed)[:0] + [net.loss] +
                      uf.grad(net.loss, list(rec.params.values())), {**params, **feed})
    terms, got = got[0], got[1:]
    want, count = None, 0
    for i in range(len(lengths)):
        real = feed["mask"][:, i] == 1                       # holes carry the state: skipped
        alone = rec.unfold(int(real.sum()))
        one = values_of(alone, params, {"x": feed["x"][real, i], "y": feed["y"][real, i]})
        want = one if want is None else [a + b for a, b in zip(want, one)]
        count += 1 if which == "last" else int(real.sum())
    assert np.all(np.isfinite(got[0])) and all(np.all(np.isfinite(g)) for g in got[1:])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    for a, b in zip(got[1:], want[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert terms.sum() == count
    trainer = T.Trainer(rec, params, T.SGD(0.1), mask=True)
    mean, _ = trainer.gradients(feed)
    assert mean == pytest.approx(want[0] / count, rel=1e-12)


def test_a_loss_at_the_first_step_takes_each_sequences_first_real_step():
    rec = uf.Recurrence("first")
    x = rec.sequence("x", ())
    h = rec.state("h", ())
    rec.loss("L", rec.update(h, uf.tanh(h + x)) ** 2, steps="first")
    mask = np.array([[0, 1], [1, 1], [1, 0]], float)          # left padding in sequence 0
    x = np.array([[np.nan, 0.5], [0.3, 0.1], [0.2, np.inf]])
    (loss,) = uf.evaluate([rec.unfold(3, mask=True).loss], {"x": x, "mask": mask})
    assert loss == pytest.approx(np.tanh(0.3) ** 2 + np.tanh(0.5) ** 2, rel=1e-14)


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0, np.nan, np.inf])
def test_mask_values_other_than_0_and_1_are_refused(bad):
    rec = M.rnn(2, 3, 4)
    feed = {**T.init_params(rec), **rnn_feed(np.random.default_rng(0), 3, 2)}
    mask = np.ones((3, 2))
    mask[1, 1] = bad
    with refused(ValueError, "mask", "only 0 (padding) and 1"):
        uf.evaluate([rec.unfold(3, mask=True).loss], dict(feed, mask=mask))
    (a,) = uf.evaluate([rec.unfold(3, mask=True).loss], dict(feed, mask=mask == 1))
    (b,) = uf.evaluate([rec.unfold(3, mask=True).loss], dict(feed, mask=(mask == 1) * 1.0))
    assert a == b                                             # booleans are masks too


def test_a_mask_fed_to_a_graph_unfolded_without_one_is_refused():
    """Silently ignored, it would count the padding as data."""
    rec = M.rnn(2, 3, 4)
    feed = dict(rnn_feed(np.random.default_rng(0), 3, 2), mask=np.ones((3, 2)))
    with refused(ValueError, "'mask'", "without one", "mask=True"):
        uf.evaluate([rec.unfold(3).loss], {**T.init_params(rec), **feed})
    with refused(ValueError, "mask=True"):
        T.Trainer(rec, T.init_params(rec), T.SGD(0.1)).step(feed)


def test_an_all_zero_mask_and_an_empty_batch():
    rec = M.rnn(2, 3, 4)
    params = T.init_params(rec)
    feed = dict(rnn_feed(np.random.default_rng(0), 3, 2), mask=np.zeros((3, 2)))
    net = rec.unfold(3, mask=True)
    loss, *grads = values_of(net, params, feed)               # a correct result: nothing
    assert loss == 0 and all(not g.any() for g in grads)
    trainer = T.Trainer(rec, params, T.SGD(0.1), mask=True)
    before = {k: v.copy() for k, v in params.items()}
    with refused(ValueError, "mask is all zeros"):
        trainer.step(feed)
    assert all(np.array_equal(params[k], before[k]) for k in params)
    empty = {"x": np.zeros((3, 0, 2)), "y": np.zeros((3, 0), int)}
    with refused(ValueError, "batch of 0 examples"):
        uf.evaluate([rec.unfold(3).loss], {**params, **empty})
    with refused(ValueError, "batch of 0 examples"):
        T.Trainer(rec, params, T.SGD(0.1)).step(empty)


# --- 3. training: non-finite steps change nothing; arguments checked when given ------------------

def sqrt_model():
    """L = ‖h‖ with h = tanh(W x): a finite loss (0) whose gradient is NaN at W = 0."""
    rec = uf.Recurrence("norm")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (2,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ x + rec.param("A", (2, 2)) @ h))
    rec.loss("L", uf.sqrt(uf.sum(h_t * h_t)))
    return rec


@pytest.mark.parametrize("clip, mode", [(None, "norm"), (1.0, "norm"), (0.5, "value")])
@pytest.mark.parametrize("optimizer", [lambda: T.SGD(0.1), lambda: T.Momentum(0.1, 0.5),
                                       lambda: T.Adam(0.05)])
def test_a_nan_batch_leaves_the_parameters_bit_identical(optimizer, clip, mode):
    rec = M.lstm(2, 3, 4, carry=True)
    params = T.init_params(rec, seed=0)
    trainer = T.Trainer(rec, params, optimizer(), clip=clip, clip_mode=mode, carry=True)
    rng = np.random.default_rng(0)
    for _ in range(2):
        trainer.step(rnn_feed(rng, 3, 2))
    before = trainer.state()
    bad = rnn_feed(rng, 3, 2)
    bad["x"][1, 0, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="skipped: the loss is nan"):
        loss = trainer.step(bad)
    assert np.isnan(loss) and trainer.history[-1].skipped and trainer.history.skipped == [3]
    after = trainer.state()
    for k in params:
        assert np.array_equal(after["params"][k], before["params"][k]), k
    assert after["optimizer"]["t"] == before["optimizer"]["t"]
    for slot, moments in before["optimizer"]["moments"].items():
        for k, v in moments.items():
            assert np.array_equal(after["optimizer"]["moments"][slot][k], v)
    for a, b in zip(after["stream"]["carry"]["h"], before["stream"]["carry"]["h"]):
        assert np.array_equal(a, b)                          # the stream skips the batch too
    trainer.step(rnn_feed(rng, 3, 2))                         # and training goes on
    assert not trainer.history[-1].skipped


def test_a_nan_gradient_with_a_finite_loss_and_an_overflowing_step():
    rec = sqrt_model()
    params = {"W": np.zeros((2, 2)), "A": np.eye(2)}
    feed = {"x": np.ones((2, 2))}
    trainer = T.Trainer(rec, params, T.Adam(0.1), clip=1.0, clip_mode="value",
                        nonfinite="raise")
    with refused(FloatingPointError, "gradients of [", "'W'", "not finite", "unchanged"), \
            np.errstate(divide="ignore", invalid="ignore"):       # ∂√s/∂s = 1/(2√0): expected
        trainer.step(feed)
    assert not params["W"].any() and trainer.optimizer.t == 0
    regression = M.rnn(2, 3, 2, loss="squared_error")
    params = T.init_params(regression)
    before = {k: v.copy() for k, v in params.items()}
    huge = T.Trainer(regression, params, T.SGD(1e308))
    with pytest.warns(RuntimeWarning, match="would make"):
        huge.step({"x": np.ones((3, 2)), "y": np.full((3, 2), 1e3)})
    assert all(np.array_equal(params[k], before[k]) for k in params)
    with refused(FloatingPointError, "'W'", "non-finite"):
        T.SGD(0.1).update({"W": np.ones(2)}, {"W": np.array([1.0, np.inf])})
    with refused(FloatingPointError, "'W'"):
        T.clip_elementwise({"W": np.array([np.inf])}, 1.0)      # never ±v from an overflow
    big = {"W": np.full(4, 1e200)}
    assert T.global_norm(big) == pytest.approx(2e200)            # squares overflow; norm doesn't
    clipped, _ = T.clip_by_norm(big, 1.0)
    np.testing.assert_allclose(clipped["W"], np.full(4, 0.5))


@pytest.mark.parametrize("build, builtin, fragment", [
    (lambda: T.SGD(0.0), ValueError, "learning rate"),
    (lambda: T.SGD(-1e-3), ValueError, "learning rate"),
    (lambda: T.SGD(np.nan), ValueError, "learning rate"),
    (lambda: T.SGD(np.inf), ValueError, "learning rate"),
    (lambda: T.SGD("0.1"), TypeError, "learning rate"),
    (lambda: T.SGD(True), TypeError, "learning rate"),
    (lambda: T.Momentum(0.1, 1.0), ValueError, "momentum"),
    (lambda: T.Momentum(0.1, -0.1), ValueError, "momentum"),
    (lambda: T.Adam(0.1, rho1=1.0), ValueError, "rho1"),
    (lambda: T.Adam(0.1, rho2=1.5), ValueError, "rho2"),
    (lambda: T.Adam(0.1, rho2=-0.5), ValueError, "rho2"),
    (lambda: T.Adam(0.1, delta=0.0), ValueError, "delta"),
    (lambda: T.Adam(0.1, delta=np.nan), ValueError, "delta"),
    (lambda: T.clip_by_norm({"W": np.ones(2)}, 0.0), ValueError, "clip threshold"),
    (lambda: T.clip_elementwise({"W": np.ones(2)}, np.inf), ValueError, "clip threshold"),
])
def test_optimiser_hyper_parameters_are_checked_when_built(build, builtin, fragment):
    with refused(builtin, fragment):
        build()


def test_trainer_arguments_and_parameter_dicts():
    rec = M.rnn(2, 3, 4)
    good = T.init_params(rec)
    cases = [
        (dict(clip=0.0), ValueError, "clip"), (dict(clip=np.nan), ValueError, "clip"),
        (dict(clip_mode="global"), ValueError, "clip_mode"),
        (dict(nonfinite="ignore"), ValueError, "nonfinite"), (dict(mask="yes"), TypeError, "mask"),
    ]
    for options, builtin, fragment in cases:
        with refused(builtin, fragment):
            T.Trainer(rec, dict(good), T.SGD(0.1), **options)
    read_only = dict(good)
    read_only["W"] = good["W"].copy()
    read_only["W"].flags.writeable = False
    params_cases = [
        ({**good, "W": good["W"].astype(np.int64)}, TypeError, "'W'", "int64"),
        ({**good, "W": good["W"].tolist()}, TypeError, "'W'", "numpy array"),
        (read_only, ValueError, "'W'", "read-only"),
        ({**good, "Z": np.zeros(2)}, KeyError, "['Z']"),
        ({k: v for k, v in good.items() if k != "V"}, KeyError, "['V']", "init_params"),
        ({**good, "W": np.zeros((3, 2))}, ValueError, "'W'", "(3, 3)"),
        ({**good, "W": good["W"].astype(np.float32)}, TypeError, "'W'", "float32"),
        ([1, 2], TypeError, "dict"),
    ]
    for params, builtin, *fragments in params_cases:
        with refused(builtin, *fragments):
            T.Trainer(rec, params, T.SGD(0.1))
    with refused(TypeError, "optimizer"):
        T.Trainer(rec, good, "adam")
    shared = dict(good, b=good["c"][:3])                  # b is a view of c
    with refused(ValueError, "'b' and 'c' share memory"):
        T.Trainer(rec, shared, T.SGD(0.1))
    trainer = T.Trainer(rec, good, T.SGD(0.1))
    with refused(TypeError, "one feed", "[feed]"):
        trainer.fit(rnn_feed(np.random.default_rng(0), 3, 2), steps=1, progress=False)
    with refused(TypeError, "a batch must be a feed"):
        trainer.step([np.zeros(3)])
    with refused(KeyError, "no gradient for ['b']"):
        T.SGD(0.1).update({"W": np.ones(2), "b": np.ones(1)}, {"W": np.ones(2)})
    with refused(ValueError, "shape (3,)"):
        T.SGD(0.1).update({"W": np.ones(2)}, {"W": np.ones(3)})
    with refused(TypeError, "'W'", "real numbers"):
        T.SGD(0.1).update({"W": np.ones(2)}, {"W": np.array(["a", "b"])})
    with refused(TypeError, "gradients must be a dict"):
        T.SGD(0.1).update({"W": np.ones(2)}, [np.ones(2)])


# --- 4. checkpoints ---------------------------------------------------------------------------------

HOSTILE = ["allow_pickle", "file", "", "a/b", "../../etc/passwd", "W.npy", "unfold.json",
           "~0", "~0.npy", "x y", "\x00", "\ud800", "Ω", "params", "W"]
numeric_arrays = st.tuples(st.sampled_from(["float64", "float32", "int8", "uint16", "bool",
                                            "complex128"]),
                           st.lists(st.integers(0, 3), max_size=2),
                           st.integers(0, 2**32 - 1)).map(
    lambda a: (np.random.default_rng(a[2]).standard_normal(tuple(a[1])) * 100).astype(a[0]))


@settings(max_examples=FEW)
@given(st.dictionaries(st.sampled_from(HOSTILE) | st.text(max_size=8), numeric_arrays,
                       max_size=6))
def test_any_parameter_name_round_trips(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("names") / "p.npz"
    T.save_params(path, params)
    loaded = T.load_params(path, params)
    assert set(loaded) == set(params)
    for k, v in params.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        assert np.array_equal(loaded[k], v, equal_nan=v.dtype.kind in "fc")
    assert os.listdir(path.parent) == ["p.npz"]


def test_plain_names_stay_readable_by_numpy(tmp_path):
    path = T.save_params(tmp_path / "p.npz", {"W": np.eye(2), "b_f": np.ones(2)})
    with np.load(path) as data:
        assert np.array_equal(data["W"], np.eye(2)) and np.array_equal(data["b_f"], np.ones(2))
    np.savez(tmp_path / "legacy.npz", W=np.eye(3))              # and numpy's files load
    assert np.array_equal(T.load_params(tmp_path / "legacy.npz")["W"], np.eye(3))


@pytest.mark.parametrize("value", [np.array([object(), 1], dtype=object), np.array(["a", "b"]),
                                   None, [[1, 2], [3]], np.zeros(2, [("a", float)])])
def test_non_numeric_values_are_refused_before_anything_is_written(tmp_path, value):
    path = tmp_path / "model.npz"
    T.save_params(path, {"W": np.ones(2)})
    good = path.read_bytes()
    with refused(ValueError, "'bad'", "nothing was written"):
        T.save_params(path, {"W": np.ones(2), "bad": value})
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["model.npz"]


def test_a_member_that_is_not_a_numeric_array_is_refused_on_load(tmp_path):
    notes = tmp_path / "notes.npz"
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with refused(ValueError, "'readme.txt'", "not an array"):
        T.load_params(notes)
    empty = tmp_path / "empty.npz"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("W.npy", b"")
    with refused(ValueError, "'W.npy'", "not a numeric array"):
        T.load_params(empty)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W=np.array([{"a": 1}], dtype=object))
    with refused(ValueError, "'W.npy'", "not a numeric array"):
        T.load_params(pickled)
    strings = tmp_path / "strings.npz"
    np.savez(strings, W=np.array(["a"]))
    with refused(ValueError, "'W.npy'", "<U1"):
        T.load_params(strings)
    tampered = tmp_path / "tampered.npz"
    T.save_params(tampered, {"W": np.ones(2)})
    with zipfile.ZipFile(tampered, "a") as zf:
        zf.writestr("extra.npy", b"")
    with refused(ValueError, "'extra.npy'", "not part of the checkpoint"):
        T.load_params(tampered)


def test_files_get_normal_permissions_and_symlinks_are_followed(tmp_path):
    old = os.umask(0o022)
    try:
        path = T.save_params(tmp_path / "new.npz", {"W": np.ones(2)})
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.chmod(path, 0o640)                                  # a replaced file keeps its mode
        T.save_params(path, {"W": np.zeros(2)})
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    finally:
        os.umask(old)
    target = tmp_path / "real.npz"
    T.save_params(target, {"W": np.ones(2)})
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    T.save_params(link, {"W": np.full(2, 7.0)})
    assert link.is_symlink() and np.array_equal(T.load_params(target)["W"], [7.0, 7.0])


def test_bad_checkpoint_paths_name_the_users_path(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    folder.mkdir()
    with refused(IsADirectoryError, repr(str(folder)), "directory"):
        T.save_params(folder, {"W": np.ones(2)})
    with refused(IsADirectoryError, repr(str(folder))):
        T.load_params(folder)
    missing = tmp_path / "nowhere.npz"
    with refused(FileNotFoundError, repr(str(missing))):
        T.load_params(missing)
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    inside = blocker / "model.npz"
    with refused(OSError, repr(str(inside))) as info:
        T.save_params(inside, {"W": np.ones(2)})
    assert ".tmp" not in str(info.value)
    real_open = os.open

    def denied(path, *args, **kwargs):          # a folder we may not write to (even as root)
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", denied)
        with refused(PermissionError, repr(str(tmp_path / "m.npz")), "Permission denied") as info:
            T.save_params(tmp_path / "m.npz", {"W": np.ones(2)})
    assert ".tmp" not in str(info.value) and not (tmp_path / "m.npz").exists()
    with refused(TypeError, "path"):
        T.save_params(3.5, {"W": np.ones(2)})
    with refused(TypeError, "dict"):
        T.save_params(tmp_path / "x.npz", [np.ones(2)])


# --- resumed training equals uninterrupted training, bit for bit ------------------------------------

def batches(seed, count):
    rng = np.random.default_rng(seed)
    return [rnn_feed(rng, 4, 3) for _ in range(count)]


@pytest.mark.parametrize("optimizer", [lambda: T.Adam(0.05), lambda: T.Momentum(0.1, 0.9),
                                       lambda: T.SGD(0.1)])
def test_resumed_training_equals_uninterrupted_training(tmp_path, optimizer):
    rec = M.gru(2, 3, 4)
    data = batches(0, 6)
    straight = T.Trainer(rec, T.init_params(rec, seed=0), optimizer(), clip=1.0)
    straight.fit(data, steps=6, progress=False)
    first = T.Trainer(rec, T.init_params(rec, seed=0), optimizer(), clip=1.0)
    first.fit(data[:3], steps=3, progress=False)
    T.save_training(tmp_path / "run.npz", first)
    resumed = T.Trainer(rec, T.init_params(rec, seed=9), optimizer(), clip=1.0)
    T.load_training(tmp_path / "run.npz", resumed)
    resumed.fit(data[3:], steps=3, progress=False)
    for k in straight.params:
        assert np.array_equal(resumed.params[k], straight.params[k]), k
    assert [r.step for r in resumed.history] == list(range(1, 7))
    assert np.array_equal(resumed.history.losses, straight.history.losses)
    a, b = resumed.optimizer.state(), straight.optimizer.state()
    assert a["t"] == b["t"] == 6
    assert all(np.array_equal(a["moments"][s][k], b["moments"][s][k]) for s in b["moments"]
               for k in b["moments"][s])
    assert set(T.load_params(tmp_path / "run.npz", rec)) == set(rec.params)


def test_a_resumed_stream_continues_where_it_stopped(tmp_path):
    """Across a save, and across an epoch boundary: the carried history and the position in
    the stream are part of the training state."""
    stream = np.tile(np.arange(4), 12)
    rec = M.language_model(4, 5, cell="skip", delay=2)
    args = dict(chunk=3, batch=2, progress=False)             # 8 chunks per epoch
    straight = T.Trainer(rec, T.init_params(rec, seed=1), T.Adam(0.05), carry=True)
    straight.fit_stream(stream[:-1], stream[1:], steps=11, **args)
    first = T.Trainer(rec, T.init_params(rec, seed=1), T.Adam(0.05), carry=True)
    first.fit_stream(stream[:-1], stream[1:], steps=5, **args)
    T.save_training(tmp_path / "run.npz", first)
    resumed = T.load_training(tmp_path / "run.npz",
                              T.Trainer(rec, T.init_params(rec, seed=2), T.Adam(0.05),
                                        carry=True))
    resumed.fit_stream(stream[:-1], stream[1:], steps=6, resume=True, **args)
    for k in straight.params:
        assert np.array_equal(resumed.params[k], straight.params[k]), k
    assert resumed.stream_position == straight.stream_position == 3
    with refused(ValueError, "resume with the same stream"):
        resumed.fit_stream(stream[:-1], stream[1:], steps=1, resume=True, chunk=2, batch=2,
                           progress=False)


def test_training_states_that_do_not_match_are_refused(tmp_path):
    rec = M.rnn(2, 3, 4)
    trainer = T.Trainer(rec, T.init_params(rec), T.Adam(0.1))
    trainer.fit(batches(0, 1), steps=1, progress=False)
    path = T.save_training(tmp_path / "run.npz", trainer)
    with refused(ValueError, "'Adam' optimiser", "SGD"):
        T.load_training(path, T.Trainer(rec, T.init_params(rec), T.SGD(0.1)))
    other = M.rnn(2, 5, 4)
    fresh = T.init_params(other)
    target = T.Trainer(other, fresh, T.Adam(0.1))
    before = {k: v.copy() for k, v in fresh.items()}
    with refused(ValueError, repr(str(path)), "the parameters", "(5,)"):
        T.load_training(path, target)
    assert all(np.array_equal(fresh[k], before[k]) for k in fresh)   # nothing changed
    T.save_params(tmp_path / "params.npz", trainer.params)
    with refused(ValueError, "not a training state"):
        T.load_training(tmp_path / "params.npz", trainer)


# --- 5. feeds ---------------------------------------------------------------------------------------

def test_feeds_that_lose_what_they_say_are_refused():
    f32, i32 = uf.input("f", (2,), dtype="float32"), uf.input("t", (), dtype="int32")
    u8 = uf.input("u", (), dtype="uint8")
    with refused(ValueError, "'f'", "1e+39", "overflows float32"):
        uf.evaluate([f32 * 2.0], {f32: np.array([1.0, 1e39])})
    (ok,) = uf.evaluate([f32 * 2.0], {f32: np.array([1.0, np.inf])})     # inf stays inf
    assert ok[1] == np.inf
    with refused(ValueError, "'t'", str(2**40), "int32"):
        uf.evaluate([uf.cast(i32, "float64")], {i32: np.int64(2**40)})
    with refused(ValueError, "'u'", "-1", "uint8"):
        uf.evaluate([uf.cast(u8, "float64")], {u8: np.array([3, -1])})
    with refused(ValueError, "'t'", "Python objects"):
        uf.evaluate([uf.cast(i32, "float64")], {i32: 2**70})
    x = uf.input("x", (2,))
    for value, fragment in [([[1.0, 2.0], [3.0]], "ragged"), ("ab", "<U2"), (None, "object"),
                            (np.array([1j, 2j]), "complex")]:
        with refused(ValueError, "'x'", fragment):
            uf.evaluate([x * 2.0], {x: value})
    with refused(TypeError, "a feed must be a dict"):
        uf.evaluate([x * 2.0], [np.zeros(2)])
    with refused(ValueError, "'x'", "is fed a node"):
        uf.evaluate([x * 2.0], {x: uf.input("q", (2,))})
    rec = M.rnn(2, 3, 4)
    with refused(ValueError, "sequence 'x'", "ragged"):
        uf.evaluate([rec.unfold(2).loss], {**T.init_params(rec), "x": [[[1, 2]], [[1]]],
                                            "y": np.zeros((2, 1), int)})


# --- 6. recurrence declarations ---------------------------------------------------------------------

def test_declarations_refuse_what_is_not_a_node_of_the_step():
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (2,))
    for call, fragment in [(lambda: rec.output("o", 3.0), "output 'o'"),
                           (lambda: rec.loss("L", np.zeros(())), "loss 'L'"),
                           (lambda: rec.name_node("a", [1, 2]), "name_node 'a'"),
                           (lambda: rec.update(h, np.zeros(2)), "update of state 'h'"),
                           (lambda: rec.state("s", (2,), init="abc"), "init"),
                           (lambda: rec.state("s", (2,), init={"a": 1}), "init"),
                           (lambda: rec.sequence(3, (2,)), "name"),
                           (lambda: rec.update([h], x), "a state is given by its node or name"),
                           (lambda: rec.state("s", (2,), dtype="nonsense"), "dtype"),
                           (lambda: rec.state("s", (2,), backward="yes"), "backward")]:
        with refused(TypeError, fragment):
            call()
    with refused(ValueError, "h(t) = h(t−1)", "context"):
        rec.update(h, h)
    with refused(ValueError, "'mask' is reserved"):
        rec.sequence("mask", ())
    with refused(ValueError, "'mask' is reserved"):
        uf.Recurrence().param("mask", ())
    for steps in ("lastt", [0], [2, 2], 5, []):
        with refused(ValueError, "loss 'M'", "step"):
            rec.loss("M", uf.sum(x), steps=steps)
    with refused(ValueError, "loss 'N'", "floating-point"):
        rec.loss("N", uf.cast(uf.sum(x) > 0.0, "int64"))
    with refused(TypeError, "delay"):
        rec.past(h, True)
    with refused(ValueError, "delay 0"):
        rec.past(h, 0)
    rec.update(h, uf.tanh(h + x))
    for bad, builtin in [(2.5, TypeError), (True, TypeError), (0, ValueError)]:
        with refused(builtin, "steps must be a positive integer"):
            rec.unfold(bad)
    with refused(TypeError, "mask"):
        rec.unfold(3, mask=1)
    with refused(TypeError, "bind"):
        rec.unfold(3, bind=[x])
    net = rec.unfold(3)
    with refused(TypeError, "at: the step must be an integer"):
        net.at("h", 1.5)
    with refused(KeyError, "no loss 'nope'"):
        net.losses("nope")


def test_a_state_updated_with_a_read_of_itself_further_back():
    rec = uf.Recurrence("period")
    h = rec.state("h", (), init=uf.constant(np.array(1.0)))
    rec.update(h, -rec.past(h, 2) + 0.0 * h)               # h(t) = −h(t−2)
    rec2 = uf.Recurrence("copy")
    g = rec2.state("g", (), init=uf.constant(np.array(3.0)))
    rec2.update(g, rec2.past(g, 2))                         # a read as the update itself
    net = rec2.unfold(4)
    assert uf.evaluate(net.over_time(rec2.states["g"].value), {}) == [3.0] * 4
    values = uf.evaluate(rec.unfold(5).over_time(rec.states["h"].value), {})
    assert values == [-1.0, -1.0, 1.0, 1.0, -1.0]


def test_grad_with_respect_to_a_folded_node_says_what_to_use():
    rec = M.rnn(2, 3, 4)
    net = rec.unfold(3)
    for node in (rec.sequences["x"], rec.states["h"].reads[1], rec.states["h"].value):
        with refused(ValueError, "folded recurrence", "net.over_time(", "net.at("):
            uf.grad(net.loss, node)
    grads = uf.grad(net.loss, net.over_time("x"))          # what the message says works
    values = uf.evaluate(grads, {**T.init_params(rec), **rnn_feed(np.random.default_rng(0), 3,
                                                                  None)})
    assert len(values) == 3 and values[0].shape == (2,)


# --- 7. the builders, sampling and dynamics check their arguments -----------------------------------

@pytest.mark.parametrize("build, builtin, fragment", [
    (lambda: M.rnn(2, 0, 3), ValueError, "n_hidden"),
    (lambda: M.rnn(2, -1, 3), ValueError, "n_hidden"),
    (lambda: M.rnn(2, 2.5, 3), TypeError, "n_hidden"),
    (lambda: M.rnn(2, True, 3), TypeError, "n_hidden"),
    (lambda: M.rnn(0, 3, 3), ValueError, "n_in"),
    (lambda: M.rnn(2, 3, 0), ValueError, "n_out"),
    (lambda: M.rnn(2, 3, 3, dtype="int64"), TypeError, "floating-point"),
    (lambda: M.rnn(2, 3, 3, dtype="nonsense"), TypeError, "not a dtype"),
    (lambda: M.rnn(2, 3, 3, inputs="pixels"), ValueError, "inputs"),
    (lambda: M.rnn(2, 3, 3, carry="yes"), TypeError, "carry"),
    (lambda: M.lstm(2, 0, 3), ValueError, "n_hidden"),
    (lambda: M.gru(2, 3, 3, variant="new"), ValueError, "variant"),
    (lambda: M.deep_rnn(2, [3, 0], 2), ValueError, "layer width"),
    (lambda: M.deep_rnn(2, 3, 2), TypeError, "sizes"),
    (lambda: M.skip_rnn(2, 3, 3, delay=1), ValueError, "delay"),
    (lambda: M.skip_rnn(2, 3, 3, delay=2.0), TypeError, "delay"),
    (lambda: M.rnn(2, 3, 3, outputs=[2.5]), TypeError, "step"),
    (lambda: M.language_model(4, 3, max_length=2.5), TypeError, "max_length"),
    (lambda: T.init_params(M.rnn(2, 3, 3), biases={"b": "x"}), TypeError, "bias 'b'"),
    (lambda: T.orthogonal(0, np.random.default_rng(0)), ValueError, "n"),
    (lambda: M.leaky_rnn(2, 3, 3, alpha=np.nan), ValueError, "alpha"),
    (lambda: M.leaky_rnn(2, 3, 3, alpha="slow"), ValueError, "alpha"),
    (lambda: M.language_model(0, 3), ValueError, "n_in"),
    (lambda: M.context_rnn(0, 3, 3), ValueError, "n_context"),
    (lambda: M.conditional_rnn(2.0, 3, 3), TypeError, "n_in"),
    (lambda: M.echo_state(2, 3, 3, spectral_radius=-1.0), ValueError, "spectral_radius"),
    (lambda: M.scheduled_mask(4, p=2.0), ValueError, "probability"),
    (lambda: M.scheduled_mask(0), ValueError, "steps"),
    (lambda: M.encode([[1, -1]], 0), ValueError, "symbol"),
    (lambda: M.encode(5, 0), TypeError, "list"),
    (lambda: T.init_params(M.rnn(2, 3, 3), recurrent="unitary"), ValueError, "recurrent"),
    (lambda: T.init_params(M.rnn(2, 3, 3), gain=np.nan), ValueError, "gain"),
    (lambda: T.init_params(3), TypeError, "init_params"),
])
def test_builders_check_their_arguments(build, builtin, fragment):
    with refused(builtin, fragment):
        build()


def test_sampling_and_dynamics_check_their_arguments():
    from unfold import dynamics, generate
    rec = M.language_model(4, 3)
    params = T.init_params(rec)
    for options, builtin, fragment in [(dict(temperature=-1.0), ValueError, "temperature"),
                                       (dict(temperature=np.nan), ValueError, "temperature"),
                                       (dict(prime=[]), ValueError, "prime"),
                                       (dict(prime=[-1]), ValueError, "prime"),
                                       (dict(length=-1), ValueError, "length"),
                                       (dict(rng="seed"), TypeError, "rng")]:
        with refused(builtin, fragment):
            generate.sample(rec, params, **dict(dict(length=3), **options))
    stepper = generate.Stepper(rec, params)
    with refused(KeyError, "no state 'q'"):
        stepper.state("q")
    with refused(KeyError, "no contexts ['C']"):
        stepper.reset({"C": 1.0})
    with refused(TypeError, "inputs"):
        stepper.step([1])
    for W, builtin, fragment in [(np.ones((2, 3)), ValueError, "square"),
                                 ([[np.nan]], ValueError, "NaN"), ("abc", TypeError, "real")]:
        with refused(builtin, fragment):
            dynamics.eigenvalues(W)
    with refused(ValueError, "steps"):
        dynamics.power_norms(np.eye(2), 0)
    with refused(TypeError, "unfolded"):
        dynamics.hidden_gradient_norms(rec, {})


RUNTIME = ["feed.py", "recurrence.py", "arguments.py", "generate.py", "dynamics.py",
           "train/loop.py", "train/optim.py", "train/checkpoint.py", "train/init.py",
           *(f"models/{p.name}" for p in (pathlib.Path(uf.__file__).parent / "models").glob(
               "*.py"))]
BUILTINS = {"TypeError", "ValueError", "KeyError", "IndexError", "RuntimeError", "OSError",
            "AssertionError", "AttributeError", "FloatingPointError", "LookupError"}


@pytest.mark.parametrize("module", RUNTIME)
def test_runtime_modules_raise_only_library_errors(module):
    """Every exception raised by these modules for bad input is an ``UnfoldError``: none of
    them raises a bare builtin."""
    tree = ast.parse((pathlib.Path(uf.__file__).parent / module).read_text())
    bare = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Raise) and
            isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) and
            node.exc.func.id in BUILTINS]
    assert not bare, f"{module}: bare builtin raised at lines {bare}"
