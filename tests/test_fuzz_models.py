"""Every constructor of ``unfold.models``, time-batched against the per-node reference.

Each builder with each of its choices (losses, outputs at every step or the last, vectors or
tokens, carried states, cells, variants, teacher-forcing modes and feedbacks, transitions,
contexts of an encoder–decoder) is unfolded with a few option sets (τ = 1, 2, 3, 5; batched or
not; masks; truncation; step loops forced at two steps) and asked for its loss, every
gradient, every state's final value, every output and every named inner value at every step.
The time-batched evaluation (``timebatch.STRICT``: a compiler failure raises) must agree with
``mode="reference"`` to 1e-12 relative (tests/timebatch_tolerance.py). The options of each case
rotate with its index, so the suite runs each builder a few times, not every combination (a
scratch run of all of them — 1 776 evaluations, models × 4 option sets — and of 340
encoder–decoders agreed).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import unfold as uf
from unfold import models as M
from unfold import timebatch
from unfold.timebatch import lower
from timebatch_tolerance import assert_agree

pytestmark = pytest.mark.usefixtures("strict")

SIZES = dict(n_in=2, n_hidden=3, n_out=3)
CHAINS = {"rnn": M.rnn, "lstm": M.lstm, "gru": M.gru, "leaky_rnn": M.leaky_rnn,
          "skip_rnn": M.skip_rnn, "echo_state": M.echo_state}


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _builders():
    """(id, builder) for every constructor and each of its choices; the common choices (loss,
    outputs, inputs, carry) rotate through the builders, each seeing four of their sixteen
    combinations."""
    out = []

    def add(name, make, carries: bool = True):
        tags = list(itertools.product(M.LOSSES, M.OUTPUTS, M.INPUTS, *[(False, True)] * carries))
        first = len(out)
        for j in range(4):
            chosen = tags[(first + j * (len(tags) // 4 + 1)) % len(tags)]
            kw = dict(zip(("loss", "outputs", "inputs", "carry"), chosen))
            tag = "-".join(str(v) for v in kw.values())
            out.append((f"{name}-{tag}", lambda make=make, kw=kw: make(**kw)))

    variants = {"lstm": ("book", "common"), "gru": ("book", "common", "reset_after")}
    for name, build in CHAINS.items():
        for v in variants.get(name, (None,)):
            extra = {"variant": v} if v else {}
            if name == "skip_rnn":
                for delay, length_one in ((2, True), (3, False)):
                    add(f"skip_rnn-{delay}-{length_one}", lambda b=build, d=delay, o=length_one,
                        **kw: b(**SIZES, delay=d, length_one=o, **kw))
                continue
            add(f"{name}{'-' + v if v else ''}",
                lambda b=build, e=extra, **kw: b(**SIZES, **e, **kw))
    for cell in ("rnn", "lstm", "gru"):
        add(f"bidirectional-{cell}", lambda c=cell, **kw: M.bidirectional(**SIZES, cell=c, **kw),
            carries=False)
        add(f"deep-stacked-{cell}", lambda c=cell, **kw: M.deep_rnn(2, [3, 2], 3, cell=c, **kw),
            carries=False)
    add("deep-deep-skip", lambda **kw: M.deep_rnn(2, [3, 2], 3, transition="deep", skip=True,
                                                  input_layers=[2], output_layers=[2], **kw),
        carries=False)
    add("memory", lambda **kw: M.memory_network(**SIZES, cells=3, width=2, **kw), carries=False)
    for j, (loss, inputs, carry) in enumerate(itertools.product(M.LOSSES, M.INPUTS,
                                                                (False, True))):
        kw = dict(loss=loss, inputs=inputs, carry=carry)
        build = (M.rnn_single_output, M.output_to_hidden)[j % 2]
        out.append((f"{build.__name__}-{loss}-{inputs}-{carry}",
                    lambda b=build, kw=kw: b(**SIZES, **kw)))
    fed_back = {"teacher_forcing": lambda **kw: M.teacher_forcing(**SIZES, **kw),
                "context_rnn": lambda **kw: M.context_rnn(2, 3, 3, carry=True, **kw),
                "conditional_rnn": lambda **kw: M.conditional_rnn(2, 3, 3, **kw)}
    for j, (mode, feedback) in enumerate(itertools.product(M.MODES, M.FEEDBACKS)):
        for i, (name, build) in enumerate(fed_back.items()):
            kw = dict(loss=M.LOSSES[(i + j) % 2], mode=mode, feedback=feedback)
            out.append((f"{name}-{'-'.join(kw.values())}", lambda b=build, kw=kw: b(**kw)))
    for cell in ("rnn", "lstm", "gru", "leaky", "skip"):
        out.append((f"language_model-{cell}", lambda c=cell: M.language_model(4, 3, cell=c)))
        out.append((f"language_model-{cell}-stop",
                    lambda c=cell: M.language_model(4, 3, cell=c, stop=True)))
        out.append((f"language_model-{cell}-length", lambda c=cell: M.language_model(
            4, 3, cell=c, max_length=6, length_input="total" if c == "gru" else "remaining")))
    return out


BUILDERS = _builders()
#: (τ, batch, mask, truncate, loops), rotated through by the cases
OPTIONS = list(itertools.product((1, 2, 3, 5), (None, 2), (False, True), (None, 2),
                                 (False, True)))


def _feed(rec, steps: int, batch: int | None, rng) -> dict:
    lead = (steps,) if batch is None else (steps, batch)
    feed = {}
    for name, node in rec.sequences.items():
        if node.dtype.kind in "iu":
            feed[name] = rng.integers(0, 2, lead + node.shape)
        elif name in ("z", "end"):                        # a 0/1 choice, a stop flag
            feed[name] = rng.integers(0, 2, lead + node.shape).astype(node.dtype)
        else:
            feed[name] = rng.uniform(-1, 1, lead + node.shape).astype(node.dtype)
    for name, node in rec.contexts.items():
        feed[name] = rng.uniform(-1, 1, lead[1:] + node.shape).astype(node.dtype)
    for name, node in rec.params.items():
        fan_in = node.shape[-1] if node.ndim == 2 else 1
        feed[name] = (rng.standard_normal(node.shape) / np.sqrt(fan_in)).astype(node.dtype)
    return feed


def _mask(steps: int, batch: int | None, rng) -> np.ndarray:
    lengths = rng.integers(1, steps + 1, size=() if batch is None else (batch,))
    t = np.arange(steps).reshape((steps,) + (1,) * (batch is not None))
    return (t < lengths).astype(np.float64)


def _compare(outputs, feed, loops: bool) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if loops:
            mp.setattr(lower, "LOOP_STEPS", 2)
        program = uf.compile(outputs)
        program({k: v * 0.9 if v.dtype.kind == "f" and k.rpartition(".")[2] not in
                 ("mask", "z", "end") else v for k, v in feed.items()})          # (buffers hold another call's values)
        got = program(feed)
    assert any(p is not None for p in program._batched_plans.values()), \
        "the time-batched compiler gave up on this graph"
    assert_agree(outputs, got, uf.evaluate(outputs, feed, mode="reference"), feed)


@pytest.mark.parametrize("index, build", [pytest.param(i, b, id=name)
                                          for i, (name, b) in enumerate(BUILDERS)])
def test_every_model_agrees_with_the_reference(index, build):
    rec = build()
    steps, batch, mask, truncate, loops = OPTIONS[(7 * index) % len(OPTIONS)]
    rng = np.random.default_rng(index)
    g = rec.unfold(steps, mask=mask, truncate=truncate)
    feed = _feed(rec, steps, batch, rng)
    if mask:
        feed["mask"] = _mask(steps, batch, rng)
    outputs = [g.loss] + uf.grad(g.loss, g.params) + [g.final(s) for s in rec.states]
    for name in list(rec.outputs) + list(rec.named):
        outputs += g.over_time(name)
    _compare(outputs, feed, loops)


@pytest.mark.parametrize("encoder, decoder", list(itertools.product(("rnn", "lstm", "gru"),
                                                                    repeat=2)))
def test_every_encoder_decoder_agrees_with_the_reference(encoder, decoder):
    """Fig. 10.12 (``bind``: the decoder's context is the encoder's final or mean state),
    masked or not, tokens or vectors, n_x ≠ n_y."""
    k = 3 * ("rnn", "lstm", "gru").index(encoder) + ("rnn", "lstm", "gru").index(decoder)
    context, inputs = ("final", "mean")[k % 2], ("vectors", "tokens")[k // 2 % 2]
    ed = M.encoder_decoder(2, 3, 4, encoder_cell=encoder, decoder_cell=decoder,
                           context=context, variant=("book", "common")[k // 4 % 2],
                           inputs=inputs)
    (n_x, n_y, batch, mask) = [(1, 1, None, False), (3, 2, 2, True), (2, 4, None, False),
                               (4, 3, 3, True)][k % 4]
    rng = np.random.default_rng(k)
    g = ed.unfold(n_x, n_y, mask=mask)
    lead_x = (n_x,) if batch is None else (n_x, batch)
    lead_y = (n_y,) if batch is None else (n_y, batch)
    feed = {name: rng.standard_normal(p.shape) / np.sqrt(p.shape[-1] if p.ndim == 2 else 1)
            for name, p in ed.params.items()}
    feed["x"] = rng.integers(0, 2, lead_x) if inputs == "tokens" else \
        rng.uniform(-1, 1, lead_x + (2,))
    feed.update(y=rng.integers(0, 4, lead_y), y_prev=rng.integers(0, 4, lead_y))
    if mask:
        feed.update(M.EncoderDecoder.masks(list(rng.integers(1, n_x + 1, batch)),
                                           list(rng.integers(1, n_y + 1, batch)), n_x, n_y))
    params = list(ed.params.values())
    outputs = [g.loss] + uf.grad(g.loss, params) + [g.final("h")] + g.over_time("o")
    _compare(outputs, feed, loops=k % 2 == 1)
