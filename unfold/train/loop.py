"""The training loop: one compiled program (loss and every parameter gradient) per unfolding
length, reused at every step; a progress bar; a per-step history; truncated back-propagation
through time over long streams, with the state carried from chunk to chunk."""
from __future__ import annotations

import csv
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from ..errors import FeedError, RecurrenceError
from ..evaluate import Program, compile
from ..grad import grad
from ..recurrence import Recurrence
from .optim import Optimizer, clip_by_norm, clip_elementwise, global_norm


@dataclass
class Record:
    """One training step: the mean loss per loss term and example, ‖g‖ before clipping, and the
    wall time since training started."""

    step: int
    loss: float
    grad_norm: float
    seconds: float


class History(list):
    """The per-step records of a training run (a list of ``Record``)."""

    @property
    def losses(self) -> np.ndarray:
        return np.array([r.loss for r in self])

    def to_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "loss", "grad_norm", "seconds"])
            writer.writeheader()
            writer.writerows(asdict(r) for r in self)

    def to_json(self) -> list[dict]:
        return [asdict(r) for r in self]

    def smoothed(self, window: int = 50) -> float:
        """The mean loss of the last ``window`` steps."""
        return float(np.mean(self.losses[-window:])) if self else float("nan")


class Trainer:
    """Trains the parameters of a recurrence.

    ``params`` (name → array) are updated in place. For each unfolding length the recurrence is
    unfolded once and ``[L, ∇θ₁ L, …, ∇θₙ L, final states]`` compiled once; every step then only
    evaluates that program. The loss used for the update (and recorded) is the mean over loss
    terms and examples (``L`` divided by batch × terms; with a ``mask``, by the real steps).

    ``clip`` bounds the gradient before the update: by its global norm (``clip_mode="norm"``,
    the default) or element by element (``"value"``), section 10.11.1.

    With ``carry=True`` the recurrence must have been built with ``carry=True`` (each state
    ``h`` starting from a context input ``h0``): the final states of a step are then fed as the
    initial states of the next (``fit_stream``), which is truncated BPTT over a long stream.
    """

    def __init__(self, rec: Recurrence, params: dict[str, np.ndarray], optimizer: Optimizer, *,
                 clip: float | None = None, clip_mode: str = "norm", mask: bool = False,
                 carry: bool = False) -> None:
        if clip_mode not in ("norm", "value"):
            raise ValueError(f"clip_mode must be 'norm' or 'value', got {clip_mode!r}")
        missing = set(rec.params) - set(params)
        if missing:
            raise KeyError(f"no initial value for params {sorted(missing)} of {rec.name!r}; "
                           f"use unfold.train.init_params(rec)")
        self.rec, self.params, self.optimizer = rec, params, optimizer
        self.clip, self.clip_mode, self.mask = clip, clip_mode, mask
        self.carried_states = list(rec.states) if carry else []
        for name in self.carried_states:
            if f"{name}0" not in rec.contexts:
                raise RecurrenceError(f"carry=True needs the initial value of state {name!r} as "
                                      f"an input {name}0: build the model with carry=True")
        self.carry: dict[str, np.ndarray] | None = None
        self.history = History()
        self._programs: dict[tuple[int, bool], tuple[Program, list[str], int]] = {}
        self._start = time.perf_counter()

    # --- one program per length ------------------------------------------------------------------

    def program(self, steps: int, grads: bool = True) -> tuple[Program, list[str], int]:
        """The compiled ``[L, ∇L…, final states…]`` of the ``steps``-step unfolding (without the
        gradients when ``grads`` is false), the names of the parameters in gradient order, and
        the number of loss terms per example. Built once per length, then reused."""
        cached = self._programs.get((steps, grads))
        if cached is None:
            net = self.rec.unfold(steps, mask=self.mask)
            names = [p.name for p in net.params] if grads else []
            derivatives = grad(net.loss, net.params) if grads else []
            finals = [net.final(s) for s in self.carried_states]
            cached = (compile([net.loss, *derivatives, *finals]), names, len(net.losses()))
            self._programs[(steps, grads)] = cached
        return cached

    def _steps_and_batch(self, feed: Mapping[str, Any]) -> tuple[int, int]:
        for name, node in self.rec.sequences.items():
            if name in feed:
                array = np.asarray(feed[name])
                return array.shape[0], (array.shape[1] if array.ndim == node.ndim + 2 else 1)
        raise FeedError(f"the feed has none of the sequences {sorted(self.rec.sequences)} of "
                        f"{self.rec.name!r}")

    def _run(self, feed: Mapping[str, Any], grads: bool
             ) -> tuple[float, dict[str, np.ndarray], float]:
        steps, batch = self._steps_and_batch(feed)
        program, names, terms = self.program(steps, grads)
        full = dict(feed)                   # params and carried states by node: a program
        full.update({self.rec.params[k]: v for k, v in self.params.items()})   # may not read all
        if self.carried_states:
            if self.carry is None:
                self.carry = self._zeros(batch)
            full.update({self.rec.contexts[f"{s}0"]: v for s, v in self.carry.items()})
        out = program(full)
        count = float(np.sum(feed["mask"])) * terms / steps if self.mask else batch * terms
        if self.carried_states:
            self.carry = dict(zip(self.carried_states, out[1 + len(names):]))
        return float(out[0]), dict(zip(names, out[1:1 + len(names)])), count

    def totals(self, feed: Mapping[str, Any]) -> tuple[float, dict[str, np.ndarray], float]:
        """``L`` and ``∇θ L`` for one batch (sequences (τ, [batch,] …)), totals over steps and
        examples, and the number of loss terms they sum. With ``carry``, the carried states are
        fed (zeros when ``self.carry`` is None) and the final ones kept in ``self.carry``."""
        return self._run(feed, grads=True)

    def gradients(self, feed: Mapping[str, Any]) -> tuple[float, dict[str, np.ndarray]]:
        """The mean loss per loss term and example, and its gradients; nothing is updated."""
        loss, grads, count = self.totals(feed)
        return loss / count, {k: g / count for k, g in grads.items()}

    def _zeros(self, batch: int) -> dict[str, np.ndarray]:
        states = self.rec.states
        return {s: np.zeros((batch,) + states[s].shape, states[s].dtype)
                for s in self.carried_states}

    def evaluate_stream(self, x: np.ndarray, y: np.ndarray, *, chunk: int, batch: int = 1
                        ) -> float:
        """The mean loss per loss term over a whole stream (held-out text), walked as
        ``fit_stream`` walks it, the state carried across chunks; no gradients, no update."""
        saved, self.carry = self.carry, None
        total = count = 0.0
        try:
            for feed in stream_chunks(x, y, chunk, batch):
                loss, _, n = self._run(feed, grads=False)
                total, count = total + loss, count + n
        finally:
            self.carry = saved
        return total / count

    def check_gradients(self, feed: Mapping[str, Any], samples: int = 16, eps: float = 1e-5,
                        seed: int = 0) -> dict[str, float]:
        """Spot-check ``∇θ L`` of one batch against central differences ``(L(θ + ε) −
        L(θ − ε)) / 2ε`` at ``samples`` parameter elements drawn at random (in proportion to
        each parameter's size): a gradient check of a real batch at the cost of ``2 × samples``
        evaluations. Use float64 parameters. Returns the largest absolute error and the largest
        relative error ``|a − n| / max(|a|, |n|, 10⁻³ max|∇θ L|)`` (elements far smaller than
        the gradient are compared on the gradient's scale, where rounding dominates). Nothing is
        updated; the carried state is left as it was."""
        saved = self.carry
        try:
            _, analytic, _ = self._run(feed, grads=True)
            scale = 1e-3 * max(float(np.abs(g).max()) for g in analytic.values())
            rng = np.random.default_rng(seed)
            names = sorted(self.params)
            sizes = np.array([self.params[k].size for k in names], float)
            worst_abs = worst_rel = 0.0
            for _ in range(samples):
                name = names[rng.choice(len(names), p=sizes / sizes.sum())]
                array = self.params[name]
                index = tuple(int(rng.integers(d)) for d in array.shape)
                old = array[index]
                values = []
                for delta in (eps, -eps):
                    array[index] = old + delta
                    self.carry = saved
                    values.append(self._run(feed, grads=False)[0])
                array[index] = old
                numeric = (values[0] - values[1]) / (2 * eps)
                exact = float(analytic[name][index])
                error = abs(numeric - exact)
                worst_abs = max(worst_abs, error)
                worst_rel = max(worst_rel, error / max(abs(numeric), abs(exact), scale, 1e-300))
        finally:
            self.carry = saved
        return {"checked": samples, "max_abs_error": worst_abs, "max_rel_error": worst_rel}

    # --- updates ---------------------------------------------------------------------------------

    def step(self, feed: Mapping[str, Any]) -> float:
        """One update on one batch; returns the mean loss and appends a ``Record``."""
        loss, grads = self.gradients(feed)
        if self.clip is None:
            norm = global_norm(grads)
        elif self.clip_mode == "norm":
            grads, norm = clip_by_norm(grads, self.clip)
        else:
            norm = global_norm(grads)
            grads = clip_elementwise(grads, self.clip)
        self.optimizer.update(self.params, grads)
        self.history.append(Record(len(self.history) + 1, loss, norm,
                                   time.perf_counter() - self._start))
        return loss

    def fit(self, batches: Iterable[Mapping[str, Any]], steps: int, *, progress: bool = True,
            desc: str = "train") -> History:
        """Run ``steps`` updates on batches drawn from ``batches`` (an iterable of feeds, cycled
        as needed), with a progress bar showing steps/s and the running loss."""
        from tqdm.auto import tqdm

        source = iter(batches)
        interactive = sys.stderr.isatty()           # a log file gets a line every few seconds
        bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=True,
                   dynamic_ncols=True, mininterval=0.1 if interactive else 5.0)
        running = None
        try:
            for i in range(steps):
                try:
                    feed = next(source)
                except StopIteration:
                    source = iter(batches)
                    feed = next(source, None)
                    if feed is None:
                        raise ValueError("fit: batches ran out; give a list of feeds (cycled) "
                                         "or an endless generator") from None
                loss = self.step(feed)
                running = loss if running is None else 0.95 * running + 0.05 * loss
                bar.update(1)
                if i % 10 == 0 or i == steps - 1:
                    bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        finally:
            bar.close()
        return self.history

    def fit_stream(self, x: np.ndarray, y: np.ndarray, *, chunk: int, batch: int, steps: int,
                   progress: bool = True, desc: str = "train") -> History:
        """Truncated BPTT over one long stream: ``x`` and ``y`` are cut into ``batch`` parallel
        streams, walked ``chunk`` steps at a time; the state at the end of each chunk starts the
        next (so information flows forward across chunks) but gradients stop at chunk
        boundaries. At the end of the stream the state is reset and the walk starts again
        (epochs); each call starts at the beginning of the stream."""
        if not self.carried_states:
            raise RecurrenceError("fit_stream carries the state between chunks: create the "
                                  "Trainer with carry=True (and the model with carry=True)")
        return self.fit(self._chunks(x, y, chunk, batch), steps, progress=progress, desc=desc)

    def _chunks(self, x, y, chunk, batch) -> Iterator[dict[str, np.ndarray]]:
        while True:                     # epoch after epoch, each from a zero state
            self.carry = None
            yield from stream_chunks(x, y, chunk, batch)


def stream_chunks(x: np.ndarray, y: np.ndarray, chunk: int, batch: int
                  ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds ``{"x": (k, batch, …), "y": (k, batch, …)}`` walking ``batch`` equal parts of a
    stream in parallel, ``chunk`` steps at a time (the last chunk may be shorter)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"stream_chunks: x has {len(x)} steps but y has {len(y)}")
    per = len(x) // batch
    if per < 1:
        raise ValueError(f"stream_chunks: a stream of {len(x)} steps cannot feed {batch} rows")
    xs = np.swapaxes(x[:per * batch].reshape((batch, per) + x.shape[1:]), 0, 1)
    ys = np.swapaxes(y[:per * batch].reshape((batch, per) + y.shape[1:]), 0, 1)
    for start in range(0, per, chunk):
        yield {"x": xs[start:start + chunk], "y": ys[start:start + chunk]}


def truncated_gradients(trainer: Trainer, feed: Mapping[str, Any], chunk: int
                        ) -> tuple[float, dict[str, np.ndarray]]:
    """Σ over chunks of ``chunk`` steps of the loss and gradients of one batch of sequences,
    the state carried across chunks: the gradient of truncated BPTT (``rec.unfold(τ,
    truncate=chunk)`` computes the same one in a single graph). With ``chunk ≥ τ`` it is full
    BPTT. Loss and gradients are totals (not means)."""
    steps = trainer._steps_and_batch(feed)[0]
    trainer.carry = None
    total, grads = 0.0, {}
    for start in range(0, steps, chunk):
        part = {k: (np.asarray(v)[start:start + chunk] if k in trainer.rec.sequences or
                    k == "mask" else v) for k, v in feed.items()}
        loss, g, _ = trainer.totals(part)
        total += loss
        for k, v in g.items():
            grads[k] = grads[k] + v if k in grads else v
    return total, grads
