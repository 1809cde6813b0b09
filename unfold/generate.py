"""Running a trained recurrence one step at a time: sampling from a language model.

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
            if st.init in self.rec.contexts.values() and st.init not in feed:
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

    def step(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one step with the per-step ``inputs`` (sequence name → value at this step)."""
        feed = dict(self._params)
        feed.update(self._contexts)
        for name, value in _check_mapping("step: inputs", inputs).items():
            if name not in self.rec.sequences:
                raise RecurrenceError(f"{self.rec.name!r} has no sequence {name!r}")
            feed[self.rec.sequences[name]] = value
        for name, st in self.states.items():
            for d, leaf in st.reads.items():
                feed[leaf] = self._past[name][-d]
        values = self._program(feed)
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
    for token in prime[:-1]:
        stepper.step({"x": np.int64(token)})
    token, out = int(prime[-1]), []
    for _ in range(length):
        result = stepper.step({"x": np.int64(token)})
        logits = np.asarray(result["o"], np.float64)
        if temperature == 0:
            token = int(np.argmax(logits))
        else:
            token = int(rng.choice(len(logits), p=_softmax(logits, temperature)))
        if end is not None and token == end:
            break
        out.append(token)
        if "stop" in result and rng.random() < 1 / (1 + np.exp(-float(result["stop"]))):
            break
    return out
