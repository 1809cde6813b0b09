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
from .errors import RecurrenceError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError
from .evaluate import compile, evaluate
from .graph import topological
from .ops.base import INPUT
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
        names = list(rec.outputs) if outputs is None else list(outputs)
        unknown = [n for n in names if n not in rec.outputs]
        if unknown:
            raise RecurrenceError(f"{rec.name!r} has no outputs {unknown}; it has "
                                  f"{sorted(rec.outputs)}")
        self.output_names = names
        self.states = rec.states
        self._params = {rec.params[k]: np.asarray(v) for k, v in params.items()
                        if k in rec.params}
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
    z = o / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """A class drawn from ``softmax(logits / temperature)`` (the most probable one at 0)."""
    logits = np.asarray(logits, np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    return int(rng.choice(len(logits), p=_softmax(logits, temperature)))


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
    prime = [arguments.positive_int("sample: a prime symbol", p, minimum=0) for p in prime]
    if not prime:
        raise UnfoldValueError("sample: give at least one prime symbol (e.g. the "
                               "start symbol)")
    if end is not None:
        end = arguments.positive_int("sample: end", end, minimum=0)
    rng = arguments.generator("sample: rng", rng)
    if not isinstance(rec, Recurrence) or "x" not in rec.sequences or "o" not in rec.outputs:
        raise RecurrenceError("sample draws from a language model: a recurrence reading token "
                              "ids x and giving logits o (unfold.models.language_model)")
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
           rng: np.random.Generator | int | None = None) -> list[int] | list[list[int]]:
    """Generate with an encoder–decoder (``unfold.models.encoder_decoder``): encode ``x``
    ((n_x, n_in), or token ids (n_x,); with a batch axis after time, (n_x, batch, …)) into its
    context ``C``, then run the decoder one step at a time from ``y_prev(1) = start``, each step
    drawing a symbol from ``softmax(o(t) / temperature)`` (``temperature=0``: the most probable
    one, ``argmax o(t)`` — greedy decoding) and feeding it back as the next ``y_prev``. A
    sequence stops at the ``end`` symbol (not returned) or after ``max_length`` symbols.
    ``params`` are the model's, by qualified name (``encoder.W`` …). Returns the symbols (a list
    per example for a batch)."""
    if not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise UnfoldValueError(f"decode: max_length must be an integer ≥ 1, got {max_length!r}")
    if not temperature >= 0:
        raise UnfoldValueError(f"decode: temperature must be ≥ 0, got {temperature!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    encoder_params, decoder_params = model.split(params)
    x = np.asarray(x)
    encoded = model.encoder.unfold(len(x))
    (context,) = evaluate([model.context_of(encoded)],
                          {**{model.encoder.params[k]: v for k, v in encoder_params.items()},
                           "x": x})
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
                  end: int | None = None, max_length: int = 100) -> list[int] | list[list[int]]:
    """Greedy decoding with an encoder–decoder: ``decode`` choosing ``argmax o(t)`` at every
    step (the test-time counterpart of teacher forcing)."""
    return decode(model, params, x, start=start, end=end, max_length=max_length,
                  temperature=0.0)
