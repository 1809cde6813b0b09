"""Running a trained recurrence one step at a time: sampling from a language model, greedy
decoding of an encoder–decoder.

The folded graph of a ``Recurrence`` is itself evaluable: its state reads ``h(t−d)`` are
placeholders. ``Stepper`` compiles the step once (the state updates and the outputs) and feeds it,
step after step, the previous states it keeps — the recurrence run as the book's Fig. 10.2
draws it, folded, with the black square as a Python variable."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from . import arguments
from .errors import FeedError, RecurrenceError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError
from .evaluate import compile, evaluate
from .feed import _as_array
from .graph import topological
from .ops.base import INPUT, unmasked
from .recurrence import Recurrence


class Stepper:
    """One step of ``rec`` at a time: ``step({"x": x_t}) -> {"o": o(t), …}``.

    ``params`` feeds the parameters; ``outputs`` names the outputs to return (all by default).
    The states start at their initial values (zeros, or the contexts given to ``reset``)."""

    def __init__(self, rec: Recurrence, params: Mapping[str, np.ndarray],
                 outputs: Sequence[str] | None = None) -> None:
        if not isinstance(rec, Recurrence):
            raise UnfoldTypeError(f"Stepper: expected a Recurrence, got {type(rec).__name__}")
        rec.check()
        backward = sorted(s for s, st in rec.states.items() if st.backward)
        if backward:
            raise RecurrenceError(f"Stepper: the backward states {backward} of {rec.name!r} read "
                                  f"the future; a recurrence run one step at a time can only "
                                  f"have forward states")
        _check_mapping("Stepper: params", params)
        self.rec = rec
        if isinstance(outputs, str):
            outputs = [outputs]
        if outputs is not None and not isinstance(outputs, (list, tuple)):
            raise UnfoldTypeError(f"Stepper: outputs must be a list of output names, got "
                                  f"{type(outputs).__name__} {outputs!r}")
        names = list(rec.outputs) if outputs is None else list(outputs)
        unknown = [n for n in names if n not in rec.outputs]
        if unknown:
            raise RecurrenceError(f"{rec.name!r} has no outputs {unknown}; it has "
                                  f"{sorted(rec.outputs)}")
        self.output_names = names
        self.states = rec.states
        self._params = {rec.params[k]: np.asarray(unmasked(v, f"Stepper: param {k!r}"))
                        for k, v in params.items() if k in rec.params}
        self._program = compile([st.value for st in self.states.values()] +
                                [rec.outputs[n] for n in names])
        self.reset()

    def reset(self, contexts: Mapping[str, Any] | None = None) -> None:
        """Back to the initial states: their ``init`` nodes evaluated with ``contexts`` (a state
        starting from a context input that is not given starts at zeros)."""
        contexts = _check_mapping("reset: contexts", {} if contexts is None else contexts)
        unknown = sorted(map(str, set(contexts) - set(self.rec.contexts)))
        if unknown:
            raise UnfoldKeyError(f"reset: {self.rec.name!r} has no contexts {unknown}; its "
                                 f"contexts are {sorted(self.rec.contexts)}")
        self._contexts = {self.rec.contexts[k]: v for k, v in contexts.items()}
        feed = dict(self._params)
        feed.update(self._contexts)
        self._past = {}
        for name, st in self.states.items():
            depth = max(st.reads) if st.reads else 1
            needs = [n for n in topological([st.init]) if n.op is INPUT]
            if any(n not in feed for n in needs):       # built from a context not given
                init = np.zeros(st.shape, st.dtype)
            else:
                (init,) = evaluate([st.init], feed)
            self._past[name] = [init] * depth           # most recent last

    def state(self, name: str) -> np.ndarray:
        """The current value of state ``name`` (``h(t)`` after ``t`` steps)."""
        if name not in self._past:
            raise UnfoldKeyError(f"{self.rec.name!r} has no state {name!r}; its states are "
                                 f"{sorted(self._past)}")
        return self._past[name][-1]

    def _feed(self, inputs: Mapping[str, Any]) -> dict:
        feed = dict(self._params)
        feed.update(self._contexts)
        for name, value in _check_mapping("step: inputs", inputs).items():
            if name not in self.rec.sequences:
                raise RecurrenceError(f"{self.rec.name!r} has no sequence {name!r}")
            feed[self.rec.sequences[name]] = value
        for name, st in self.states.items():
            for d, leaf in st.reads.items():
                feed[leaf] = self._past[name][-d]
        return feed

    def peek(self, output: str, inputs: Mapping[str, Any] | None = None) -> np.ndarray:
        """The value output ``output`` takes at the next step, from the current states, without
        taking the step — for an output that reads only states, contexts and params (a length
        output ``o_tau``), or given the ``inputs`` it reads."""
        if output not in self.rec.outputs:
            raise RecurrenceError(f"{self.rec.name!r} has no output {output!r}")
        (value,) = evaluate([self.rec.outputs[output]], self._feed(inputs or {}))
        return value

    def step(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one step with the per-step ``inputs`` (sequence name → value at this step)."""
        values = self._program(self._feed(inputs))
        for (name, st), value in zip(self.states.items(), values):
            past = self._past[name]
            past.append(value)
            del past[0]
        return dict(zip(self.output_names, values[len(self.states):]))


def _check_mapping(what: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise UnfoldTypeError(f"{what} must be a dict name → value, got {type(value).__name__}")
    return value


def _softmax(o: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(o / temperature)``, shifted before dividing: finite for any temperature > 0
    (a tiny one gives the most probable class all the mass)."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.exp((o - o.max()) / temperature)
    z = np.where(np.isnan(z), 1.0, z)          # (−inf) − (−inf): classes tied at −inf
    return z / z.sum()


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """A class drawn from ``softmax(logits / temperature)`` (the most probable one at 0)."""
    logits = np.asarray(logits, np.float64)
    if np.isnan(logits).any() or (logits == -np.inf).all():
        raise UnfoldValueError(f"the model's logits are {logits[:8]}{'…' if logits.size > 8 else ''}"
                               f" — NaN, or −inf for every symbol, so no symbol can be drawn: "
                               f"check the parameters (a NaN from training?)")
    if temperature == 0 or (logits == np.inf).any():
        return int(np.argmax(logits))
    return int(rng.choice(len(logits), p=_softmax(logits, temperature)))


def _symbol(what: str, value: Any, classes: int | None) -> int:
    """A symbol: an integer in [0, classes)."""
    value = arguments.positive_int(what, value, minimum=0)
    if classes is not None and value >= classes:
        raise UnfoldValueError(f"{what} is {value}, outside the model's {classes} symbols "
                               f"0 … {classes - 1}")
    return value


def sample(rec: Recurrence, params: Mapping[str, np.ndarray], *, length: int,
           prime: Sequence[int] = (0,), temperature: float = 1.0, end: int | None = None,
           rng: np.random.Generator | int | None = None) -> list[int]:
    """Sample up to ``length`` symbols from a language model (``unfold.models.language_model``
    or any recurrence reading token ids ``x`` and giving logits ``o``).

    The ``prime`` symbols are fed first (the last one is the input of the first sampled step);
    then each symbol is drawn from ``softmax(o / temperature)`` (``temperature=0``: the most
    probable one) and fed back. Generation stops after ``length`` symbols, when the ``end``
    symbol is drawn (it is not returned), or — for a model with a Bernoulli ``stop`` output —
    when a draw with probability ``σ(stop)`` says the sequence ends after the symbol just drawn.
    A model predicting its length (``language_model(max_length=K)``: an output ``o_tau``) first
    draws τ from ``softmax(o_tau)`` (at ``h(0)``), then runs exactly τ steps — the prime's
    included — telling each step how many remain; it stops there (or at ``length``).
    """
    length = arguments.positive_int("sample: length", length, minimum=0)
    temperature = arguments.real("sample: temperature", temperature, low=0.0)
    if isinstance(prime, (str, bytes)) or not isinstance(prime, (Sequence, np.ndarray)):
        raise UnfoldTypeError(f"sample: prime must be a list of symbols, got "
                              f"{type(prime).__name__}")
    if not isinstance(rec, Recurrence) or "x" not in rec.sequences or "o" not in rec.outputs \
            or rec.sequences["x"].shape != () or rec.sequences["x"].dtype.kind not in "iu" \
            or rec.outputs["o"].ndim != 1:
        raise RecurrenceError("sample draws from a language model: a recurrence reading token "
                              "ids x (integers) and giving logits o over its symbols "
                              "(unfold.models.language_model)")
    classes = rec.outputs["o"].shape[0]
    prime = [_symbol("sample: a prime symbol", p, classes) for p in prime]
    if not prime:
        raise UnfoldValueError("sample: give at least one prime symbol (e.g. the "
                               "start symbol)")
    if end is not None:
        end = _symbol("sample: end", end, classes)
    rng = arguments.generator("sample: rng", rng)
    stepper = Stepper(rec, params, [n for n in ("o", "stop") if n in rec.outputs])
    tau = None
    if "o_tau" in rec.outputs:
        logits = np.array(stepper.peek("o_tau"), np.float64)
        logits[0] = -np.inf                             # class 0 is no length
        tau = _draw(logits, temperature, rng)
        if "tau" in rec.contexts:
            stepper.reset({"tau": np.int64(tau)})

    def inputs(token: int, t: int) -> dict[str, np.int64]:
        fed = {"x": np.int64(token)}
        if "remaining" in rec.sequences:
            fed["remaining"] = np.int64(max(tau - t, 0))
        return fed

    for t, token in enumerate(prime[:-1], start=1):
        stepper.step(inputs(token, t))
    token, out = int(prime[-1]), []
    t = len(prime)
    while len(out) < length and (tau is None or t <= tau):
        result = stepper.step(inputs(token, t))
        token = _draw(result["o"], temperature, rng)
        if end is not None and token == end:
            break
        out.append(token)
        if "stop" in result and rng.random() < 1 / (1 + np.exp(-float(result["stop"]))):
            break
        t += 1
    return out


def decode(model: Any, params: Mapping[str, np.ndarray], x: Any, *, start: int,
           end: int | None = None, max_length: int = 100, temperature: float = 1.0,
           rng: np.random.Generator | int | None = None,
           x_lengths: Sequence[int] | None = None) -> list[int] | list[list[int]]:
    """Generate with an encoder–decoder (``unfold.models.encoder_decoder``): encode ``x``
    ((n_x, n_in), or token ids (n_x,); with a batch axis after time, (n_x, batch, …)) into its
    context ``C``, then run the decoder one step at a time from ``y_prev(1) = start``, each step
    drawing a symbol from ``softmax(o(t) / temperature)`` (``temperature=0``: the most probable
    one, ``argmax o(t)`` — greedy decoding) and feeding it back as the next ``y_prev``. A
    sequence stops at the ``end`` symbol (not returned) or after ``max_length`` symbols.
    ``params`` are the model's, by qualified name (``encoder.W`` …). ``x_lengths`` (one per
    example of a batch) gives inputs of different lengths, padded to ``n_x``: each example is
    encoded from its own steps only. Returns the symbols (a list per example for a batch)."""
    from .models import EncoderDecoder
    if not isinstance(model, EncoderDecoder):
        raise UnfoldTypeError(f"decode generates with an encoder–decoder "
                              f"(unfold.models.encoder_decoder), got {type(model).__name__}; "
                              f"for a language model use unfold.generate.sample")
    max_length = arguments.positive_int("decode: max_length", max_length)
    temperature = arguments.real("decode: temperature", temperature, low=0.0)
    classes = model.decoder.outputs["o"].shape[-1]
    start = _symbol("decode: start", start, classes)
    if end is not None:
        end = _symbol("decode: end", end, classes)
    rng = arguments.generator("decode: rng", rng)
    _check_mapping("decode: params", params)
    encoder_params, decoder_params = model.split(params)
    x = _as_array("decode: x", x)
    if x.ndim == 0 or len(x) == 0:
        raise FeedError(f"decode: x must be a sequence (n_x, [batch,] …) of at least one step, "
                        f"got shape {x.shape}")
    feed = {**{model.encoder.params[k]: v for k, v in encoder_params.items()}, "x": x}
    if x_lengths is not None:
        lead = len(model.encoder.sequences["x"].shape) + 2
        if x.ndim != lead:
            raise FeedError(f"decode: x_lengths are the lengths of a batch's examples; x must be "
                            f"(n_x, batch, …), got shape {x.shape}")
        feed["mask"] = model.masks(x_lengths, [1] * len(x_lengths), n_x=len(x))["encoder.mask"]
        if feed["mask"].shape[1] != x.shape[1]:
            raise FeedError(f"decode: {feed['mask'].shape[1]} x_lengths for a batch of "
                            f"{x.shape[1]}")
    encoded = model.encoder.unfold(len(x), mask=x_lengths is not None)
    (context,) = evaluate([model.context_of(encoded)], feed)
    batched = context.ndim == len(model.decoder.contexts["C"].shape) + 1
    batch = context.shape[0] if batched else 1
    stepper = Stepper(model.decoder, decoder_params, ["o"])
    stepper.reset({"C": context})
    token = np.full(batch, start, np.int64)
    out: list[list[int]] = [[] for _ in range(batch)]
    done = np.zeros(batch, bool)
    for _ in range(max_length):
        logits = np.reshape(stepper.step({"y_prev": token if batched else token[0]})["o"],
                            (batch, -1))
        token = np.array([_draw(row, temperature, rng) for row in logits], np.int64)
        for i in np.flatnonzero(~done):
            if end is not None and token[i] == end:
                done[i] = True
            else:
                out[i].append(int(token[i]))
        if done.all():
            break
    return out if batched else out[0]


def greedy_decode(model: Any, params: Mapping[str, np.ndarray], x: Any, *, start: int,
                  end: int | None = None, max_length: int = 100,
                  x_lengths: Sequence[int] | None = None) -> list[int] | list[list[int]]:
    """Greedy decoding with an encoder–decoder: ``decode`` choosing ``argmax o(t)`` at every
    step (the test-time counterpart of teacher forcing)."""
    return decode(model, params, x, start=start, end=end, max_length=max_length,
                  temperature=0.0, x_lengths=x_lengths)
