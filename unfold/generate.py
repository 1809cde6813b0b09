"""Running a trained recurrence one step at a time: sampling from a language model.

The folded graph of a ``Recurrence`` is itself evaluable: its state reads ``h(t−d)`` are
placeholders. ``Stepper`` compiles the step once (the state updates and the outputs) and feeds it,
step after step, the previous states it keeps — the recurrence run as the book's Fig. 10.2
draws it, folded, with the black square as a Python variable."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .errors import RecurrenceError
from .evaluate import compile, evaluate
from .recurrence import Recurrence


class Stepper:
    """One step of ``rec`` at a time: ``step({"x": x_t}) -> {"o": o(t), …}``.

    ``params`` feeds the parameters; ``outputs`` names the outputs to return (all by default).
    The states start at their initial values (zeros, or the contexts given to ``reset``)."""

    def __init__(self, rec: Recurrence, params: Mapping[str, np.ndarray],
                 outputs: Sequence[str] | None = None) -> None:
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
        self._contexts = {self.rec.contexts[k]: v for k, v in (contexts or {}).items()}
        feed = dict(self._params)
        feed.update(self._contexts)
        self._past = {}
        for name, st in self.states.items():
            depth = max(st.reads) if st.reads else 1
            if any(st.init is c for c in self.rec.contexts.values()) and st.init not in feed:
                init = np.zeros(st.shape, st.dtype)
            else:
                (init,) = evaluate([st.init], feed)
            self._past[name] = [init] * depth           # most recent last

    def state(self, name: str) -> np.ndarray:
        """The current value of state ``name`` (``h(t)`` after ``t`` steps)."""
        return self._past[name][-1]

    def step(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one step with the per-step ``inputs`` (sequence name → value at this step)."""
        feed = dict(self._params)
        feed.update(self._contexts)
        for name, value in inputs.items():
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
    if not prime:
        raise ValueError("sample: give at least one prime symbol (e.g. the start symbol)")
    if temperature < 0:
        raise ValueError(f"sample: temperature must be ≥ 0, got {temperature!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
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
