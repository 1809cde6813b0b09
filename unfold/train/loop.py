"""The training loop: one compiled program (loss and every parameter gradient) per unfolding
length, reused at every step; a progress bar; a per-step history; truncated back-propagation
through time over long streams, with the whole history a step reads carried from chunk to chunk;
steps with a non-finite loss or gradient skipped (or refused); and the training state —
parameters, optimiser moments, history, position in a stream — saved and restored exactly."""
from __future__ import annotations

import csv
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from .. import arguments
from ..errors import (FeedError, RecurrenceError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError,
                      as_raised)
from ..evaluate import Program, compile
from ..feed import _as_array
from ..graph import Node
from ..grad import grad
from ..recurrence import Recurrence, Unfolded
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .optim import (NonFiniteError, Optimizer, check_params, clip_by_norm, clip_elementwise,
                    global_norm)

CLIP_MODES = ("norm", "value")
NONFINITE = ("skip", "raise")


@dataclass
class Record:
    """One training step: the mean loss per loss term and example, ‖g‖ before clipping, the
    wall time since training started, and whether the step was skipped (a non-finite loss or
    gradient: nothing was updated)."""

    step: int
    loss: float
    grad_norm: float
    seconds: float
    skipped: bool = False


_COLUMNS = {"step": np.int64, "loss": np.float64, "grad_norm": np.float64,
            "seconds": np.float64, "skipped": np.bool_}


class History(list):
    """The per-step records of a training run (a list of ``Record``)."""

    @property
    def losses(self) -> np.ndarray:
        return np.array([r.loss for r in self])

    @property
    def skipped(self) -> list[int]:
        """The steps that were skipped (their loss or gradient was not finite)."""
        return [r.step for r in self if r.skipped]

    def to_csv(self, path: str) -> None:
        path = arguments.file_path("History.to_csv", path)
        try:
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(_COLUMNS))
                writer.writeheader()
                writer.writerows(asdict(r) for r in self)
        except OSError as exc:
            raise as_raised(exc, f"History.to_csv: cannot write {path!r}: "
                                 f"{exc.strerror or exc}") from None

    def to_json(self) -> list[dict]:
        return [asdict(r) for r in self]

    def smoothed(self, window: int = 50) -> float:
        """The mean loss of the last ``window`` steps that were not skipped."""
        window = arguments.positive_int("History.smoothed: window", window)
        losses = [r.loss for r in self[-window:] if not r.skipped]
        return float(np.mean(losses)) if losses else float("nan")

    def columns(self) -> dict[str, np.ndarray]:
        """The records as one array per field (what a training checkpoint stores)."""
        return {k: np.array([getattr(r, k) for r in self], dtype) for k, dtype in
                _COLUMNS.items()}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> "History":
        if not isinstance(columns, Mapping) or set(columns) != set(_COLUMNS):
            raise CheckpointError(f"a training history has the columns {list(_COLUMNS)}")
        arrays = {k: np.asarray(columns[k]) for k in _COLUMNS}
        if len({a.shape for a in arrays.values()}) != 1 or arrays["step"].ndim != 1 or \
                any(a.dtype.kind not in "biuf" for a in arrays.values()):
            raise CheckpointError("the columns of a training history must be 1-D arrays of "
                                  "numbers, of one length")
        return cls(Record(int(s), float(l), float(n), float(t), bool(k)) for s, l, n, t, k in
                   zip(*(arrays[k] for k in _COLUMNS)))


@dataclass(eq=False)
class _Compiled:
    """A program ``[L, terms, ∇L…, final history…]`` and the unfolding it was built from."""

    program: Program
    net: Unfolded
    names: list[str]                    # the parameters, in gradient order


class Trainer:
    """Trains the parameters of a recurrence — or of a joined model (``unfold.models.
    encoder_decoder``: recurrences joined by ``bind``, see below).

    ``params`` (name → writable float array, exactly the recurrence's parameters with their
    shapes and dtypes) are updated in place. For each unfolding length the recurrence is
    unfolded once and ``[L, ∇θ₁ L, …, ∇θₙ L, …]`` compiled once; every step then only evaluates
    that program. The loss used for the update (and recorded) is the mean over loss terms and
    examples: ``L`` divided by the number of terms it sums (with a ``mask``, the real steps of
    each sequence that are taken — one per sequence for a loss at ``steps="last"``).

    ``clip`` bounds the gradient before the update: by its global norm (``clip_mode="norm"``,
    the default) or element by element (``"value"``), section 10.11.1.

    **Non-finite steps.** A batch whose mean loss or any gradient is NaN or infinite — or whose
    update would make a parameter non-finite — changes nothing: the parameters, the optimiser's
    moments and step count, and the carried state stay bit-identical, and the step is recorded
    with ``skipped=True``. ``nonfinite="skip"`` (the default) warns (``RuntimeWarning``) and goes
    on; ``nonfinite="raise"`` raises ``NonFiniteError`` (a ``FloatingPointError``).

    **Streams.** With ``carry=True`` the state at the end of one step's batch is carried into
    the next (``fit_stream``): truncated BPTT over a long stream. Everything the step reads of
    the past is carried — ``h(τ), h(τ−1), …, h(τ+1−D)`` for a state read up to D steps back
    (``rec.past(h, D)``) — and fed to the next chunk's unfolding (``unfold(k, history=True)``),
    so that chunk after chunk equals ``rec.unfold(τ, truncate=k)`` exactly. The first chunk of
    a stream starts from the states' inits (a state whose init is a context input the feed does
    not give, such as the ``h0`` of a model built with ``carry=True``, starts at zeros).
    Streaming refuses backward states (their value at the end of a chunk depends on the next
    chunk) and, over more than one chunk, losses taken at chosen steps (``steps="last"``: the
    steps of a chunk are not those of the stream).

    **Joined models and trees.** Any object with ``name``, ``params`` (qualified name → node:
    ``encoder.W``, ``decoder.W``), ``sequences`` (name → node), ``check()``, ``lengths(feed)``
    (what a feed asks to unfold, a tuple) and ``unfold(*lengths)`` (the graph, with ``loss`` and
    ``terms``) trains the same way: ``params`` are keyed by the qualified names, one program is
    compiled per tuple of lengths. An encoder–decoder takes ``mask=True`` (padded batches of
    different input and output lengths: ``EncoderDecoder.masks``). A recursive net
    (``unfold.models.recursive_net``) is trained on batches ``{"trees": [tree, …], "x": …,
    "y": …}``: its ``lengths`` is the forest, and the entries it lists in ``structure``
    (``"trees"``) shape the graph instead of being fed. ``carry`` is a single recurrence's option.

    Programs are kept for the ``PROGRAMS`` most recently used lengths (or forests: batches of
    random trees each ask for their own graph), older ones dropped.
    """

    #: how many compiled programs (one per unfolding length, or forest) a trainer keeps
    PROGRAMS = 64

    def __init__(self, rec: Recurrence, params: dict[str, np.ndarray], optimizer: Optimizer, *,
                 clip: float | None = None, clip_mode: str = "norm", mask: bool = False,
                 carry: bool = False, nonfinite: str = "skip") -> None:
        if not isinstance(rec, Recurrence) and not _is_joined(rec):
            raise UnfoldTypeError(f"Trainer: the model must be a Recurrence or a joined model "
                                  f"(unfold.models.encoder_decoder), got {type(rec).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise UnfoldTypeError(f"Trainer: optimizer must be an unfold.train optimiser (SGD, "
                                  f"Momentum, Adam), got {type(optimizer).__name__}")
        rec.check()
        _check_model_params(rec, params)
        self.rec, self.params, self.optimizer = rec, params, optimizer   # updated in place
        self.clip = None if clip is None else arguments.positive("clip", clip)
        self.clip_mode = arguments.choice("clip_mode", clip_mode, CLIP_MODES)
        self.mask = arguments.flag("mask", mask)
        self.carries = arguments.flag("carry", carry)
        self.nonfinite = arguments.choice("nonfinite", nonfinite, NONFINITE)
        if not isinstance(rec, Recurrence) and (self.carries or self.mask and not _takes_mask(rec)):
            raise UnfoldValueError(f"Trainer: {'carry' if self.carries else 'mask'} is an "
                                   f"option of a single recurrence"
                                   f"{'' if self.carries else ' (or an encoder–decoder)'}, not "
                                   f"of {rec.name!r}")
        if self.carries:
            backward = sorted(s for s, st in rec.states.items() if st.backward)
            if backward:
                raise RecurrenceError(f"carry=True: the backward states {backward} of "
                                      f"{rec.name!r} cannot be carried forward — at the end of a "
                                      f"chunk a backward state depends on the next chunk")
        #: the stream state: per state, its last D values (most recent first); None at the
        #: start of a stream
        self.carry: dict[str, list[np.ndarray]] | None = None
        #: chunks of the current epoch that ``fit_stream`` has consumed, and its stream
        self.stream_position = 0
        self._stream: tuple[int, int, int] | None = None
        self.history = History()
        self._programs: dict[tuple[int, bool, bool], _Compiled] = {}
        self._start = time.perf_counter()

    # --- one program per length ------------------------------------------------------------------

    def program(self, steps: int, grads: bool = True, history: bool = False) -> _Compiled:
        """The compiled ``[L, terms, ∇L…, final history…]`` of the ``steps``-step unfolding
        (without the gradients when ``grads`` is false; reading the past from history inputs
        when ``history``). Built once per length, then reused."""
        key = (steps, grads, history)
        cached = self._programs.pop(key, None)
        if cached is not None:
            self._programs[key] = cached                # the most recently used, last
        else:
            while len(self._programs) >= self.PROGRAMS:
                self._programs.pop(next(iter(self._programs)))
            if isinstance(self.rec, Recurrence):
                net = self.rec.unfold(steps, mask=self.mask, history=history)
                finals = [n for s, st in self.rec.states.items() if not st.backward
                          for n in net.final_history(s)]
            else:                                   # a joined model: steps are its lengths
                options = {"mask": True} if self.mask else {}
                net, finals = self.rec.unfold(*steps, **options), []
            params = list(self.rec.params.values())
            derivatives = grad(net.loss, params) if grads else []
            cached = self._programs[key] = _Compiled(
                compile([net.loss, net.terms, *derivatives, *finals]), net,
                list(self.rec.params) if grads else [])
        return cached

    def _steps_and_batch(self, feed: Mapping[Any, Any]) -> tuple[int, int | None]:
        """The length of the sequences fed, and their batch size (None: one unbatched
        sequence)."""
        for name, node in self.rec.sequences.items():
            key = name if name in feed else node if node in feed else None
            if key is None:
                continue
            array = _as_array(f"sequence {name!r}", feed[key])
            if array.ndim not in (node.ndim + 1, node.ndim + 2) or array.shape[0] == 0:
                raise FeedError(f"sequence {name!r} is fed with shape {array.shape}; feed "
                                f"(τ,) + {node.shape} for one sequence or (τ, batch) + "
                                f"{node.shape} for a batch, with τ ≥ 1")
            if array.ndim == node.ndim + 2 and array.shape[1] == 0:
                raise FeedError(f"sequence {name!r} is fed a batch of 0 examples (shape "
                                f"{array.shape}); a batch needs at least one example")
            steps = array.shape[0] if isinstance(self.rec, Recurrence) else \
                tuple(self.rec.lengths(feed))
            return steps, (array.shape[1] if array.ndim == node.ndim + 2 else None)
        raise FeedError(f"the feed has none of the sequences {sorted(self.rec.sequences)} of "
                        f"{self.rec.name!r}")

    def _run(self, feed: Any, grads: bool, carrying: bool,
             start: dict[str, list[np.ndarray]] | None
             ) -> tuple[float, dict[str, np.ndarray], float, dict[str, list[np.ndarray]] | None]:
        """Total loss, gradients and number of loss terms of one batch, and — when
        ``carrying`` — the history it ends with. ``start`` is the history it continues (None:
        the start of a stream)."""
        feed = _check_feed(feed)
        steps, batch = self._steps_and_batch(feed)
        compiled = self.program(steps, grads, history=start is not None)
        structure = getattr(self.rec, "structure", ())
        full = {k: v for k, v in feed.items()   # params and carried states by node: a program
                if not (isinstance(k, str) and k in structure)}
        full.update({self.rec.params[k]: v for k, v in self.params.items()})   # may not read all
        states = self.rec.states if carrying else {}
        if carrying and start is None:      # a stream's first chunk: a context init not given
            contexts = set(self.rec.contexts.values())                  # starts at zeros
            for st in states.values():
                if st.init in contexts and st.init not in feed and st.init.name not in feed:
                    full[st.init] = np.zeros(((batch,) if batch else ()) + st.shape, st.dtype)
        if start is not None:
            for name, values in start.items():
                carried = values[0].shape[0] if values[0].ndim > len(states[name].shape) else None
                if carried is not None and batch is not None and carried != batch:
                    raise FeedError(f"the carried state {name!r} has a batch of {carried} but "
                                    f"this batch has {batch}: a stream keeps its batch size "
                                    f"(trainer.reset_stream() starts a new stream)")
                full.update(zip(compiled.net.history(name), values))
        out = compiled.program(full)
        n = len(compiled.names)
        terms = np.asarray(out[1])
        count = float(terms.sum()) if terms.ndim else float(terms) * (batch or 1)
        end = None
        if carrying:
            finals, end = iter(out[2 + n:]), {}
            for name, st in states.items():
                if not st.backward:
                    end[name] = [next(finals) for _ in range(st.depth)]
        return float(out[0]), dict(zip(compiled.names, out[2:2 + n])), count, end

    def totals(self, feed: Mapping[str, Any]) -> tuple[float, dict[str, np.ndarray], float]:
        """``L`` and ``∇θ L`` for one batch (sequences (τ, [batch,] …)), totals over steps and
        examples, and the number of loss terms they sum. With ``carry``, the batch continues the
        stream (``self.carry``; None: it starts one), and the stream's state is kept."""
        loss, grads, count, end = self._run(feed, True, self.carries, self.carry)
        if self.carries:
            self.carry = end
        return loss, grads, count

    def gradients(self, feed: Mapping[str, Any]) -> tuple[float, dict[str, np.ndarray]]:
        """The mean loss per loss term and example, and its gradients; no parameter is
        updated."""
        loss, grads, count = self.totals(feed)
        return _mean(loss, grads, count)

    def reset_stream(self) -> None:
        """Start a new stream: the next batch starts from the states' inits."""
        self.carry, self.stream_position = None, 0

    def _check_streamable(self, what: str) -> None:
        """A recurrence can be walked chunk by chunk only if each chunk's steps are the same as
        the stream's: losses at every step, no backward state."""
        if not isinstance(self.rec, Recurrence):
            raise UnfoldTypeError(f"{what}: a stream is walked by one recurrence, not by the "
                                  f"joined model {self.rec.name!r}")
        chosen = sorted(k for k, (_, steps) in self.rec.losses.items() if steps is not None)
        if chosen:
            raise RecurrenceError(f"{what}: the losses {chosen} of {self.rec.name!r} are taken "
                                  f"at chosen steps (e.g. 'last') of the whole sequence, which "
                                  f"chunks do not know; stream only models with a loss at every "
                                  f"step, or unfold the whole sequence (truncate=k)")
        backward = sorted(s for s, st in self.rec.states.items() if st.backward)
        if backward:
            raise RecurrenceError(f"{what}: the backward states {backward} of "
                                  f"{self.rec.name!r} read the future, which a stream walked "
                                  f"chunk by chunk does not have yet; unfold the whole "
                                  f"sequence (truncate=k for truncated BPTT)")

    def evaluate_stream(self, x: np.ndarray, y: np.ndarray, *, chunk: int, batch: int = 1
                        ) -> float:
        """The mean loss per loss term over a whole stream (held-out text), walked as
        ``fit_stream`` walks it, the history carried across chunks; no gradients, no update,
        the trainer's own stream state untouched."""
        chunks = stream_chunks(x, y, chunk, batch)
        if _chunk_count(x, chunk, batch) > 1 or not isinstance(self.rec, Recurrence):
            self._check_streamable("evaluate_stream")
        carry, total, count = None, 0.0, 0.0
        for feed in chunks:
            loss, _, n, carry = self._run(feed, False, True, carry)
            total, count = total + loss, count + n
        if count == 0:
            raise FeedError("evaluate_stream: the stream has no loss term to average")
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
        samples = arguments.positive_int("check_gradients: samples", samples)
        eps = arguments.positive("check_gradients: eps", eps)
        rng = arguments.generator("check_gradients: seed", seed)
        names = sorted(k for k in self.params if self.params[k].size)
        if not names:
            raise UnfoldValueError("check_gradients: the model has no parameter element")
        _, analytic, _, _ = self._run(feed, True, self.carries, self.carry)
        scale = 1e-3 * max(float(np.abs(g).max()) if g.size else 0.0 for g in analytic.values())
        sizes = np.array([self.params[k].size for k in names], float)
        worst_abs = worst_rel = 0.0
        for _ in range(samples):
            name = names[rng.choice(len(names), p=sizes / sizes.sum())]
            array = self.params[name]
            index = tuple(int(rng.integers(d)) for d in array.shape)
            old = array[index]
            values = []
            try:
                for delta in (eps, -eps):
                    array[index] = old + delta
                    values.append(self._run(feed, False, self.carries, self.carry)[0])
            finally:
                array[index] = old
            numeric = (values[0] - values[1]) / (2 * eps)
            exact = float(analytic[name][index])
            error = abs(numeric - exact)
            worst_abs = max(worst_abs, error)
            worst_rel = max(worst_rel, error / max(abs(numeric), abs(exact), scale, 1e-300))
        return {"checked": samples, "max_abs_error": worst_abs, "max_rel_error": worst_rel}

    # --- updates ---------------------------------------------------------------------------------

    def step(self, feed: Mapping[str, Any]) -> float:
        """One update on one batch; returns the mean loss and appends a ``Record``. A non-finite
        loss or gradient changes nothing (see the class docstring)."""
        with np.errstate(all="ignore"):   # a non-finite step is reported below, by name
            loss, grads, count, end = self._run(feed, True, self.carries, self.carry)
            loss, grads = _mean(loss, grads, count)
        problem = None
        if not math.isfinite(loss):
            problem = f"the loss is {loss}"
        else:
            bad = sorted(k for k, g in grads.items() if not np.all(np.isfinite(g)))
            if bad:
                problem = f"the gradients of {bad} are not finite"
        norm = global_norm(grads)
        if problem is None:
            if self.clip is not None and self.clip_mode == "norm":
                grads, norm = clip_by_norm(grads, self.clip)
            elif self.clip is not None:
                grads = clip_elementwise(grads, self.clip)
            try:
                self.optimizer.update(self.params, grads)
            except NonFiniteError as exc:
                problem = str(exc)
        seconds = time.perf_counter() - self._start
        self.history.append(Record(len(self.history) + 1, loss, norm, seconds,
                                   skipped=problem is not None))
        if problem is not None:
            message = (f"training step {len(self.history)} skipped: {problem}; the parameters, "
                       f"the optimiser's state and the carried state are unchanged")
            if self.nonfinite == "raise":
                raise NonFiniteError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        elif self.carries:
            self.carry = end
        return loss

    def fit(self, batches: Iterable[Mapping[str, Any]], steps: int, *, progress: bool = True,
            desc: str = "train") -> History:
        """Run ``steps`` updates on batches drawn from ``batches`` (an iterable of feeds, cycled
        as needed), with a progress bar showing steps/s and the running loss."""
        from tqdm.auto import tqdm

        steps = arguments.positive_int("fit: steps", steps)
        progress = arguments.flag("fit: progress", progress)
        if isinstance(batches, Mapping):
            raise UnfoldTypeError("fit: batches must be an iterable of feeds (a list, or a "
                                  "generator), got one feed; pass [feed]")
        try:
            source = iter(batches)
        except TypeError:
            raise UnfoldTypeError(f"fit: batches must be an iterable of feeds, got "
                                  f"{type(batches).__name__}") from None
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
                        raise UnfoldValueError("fit: batches ran out; give a list of feeds "
                                               "(cycled) or an endless generator") from None
                loss = self.step(feed)
                if not self.history[-1].skipped:
                    running = loss if running is None else 0.95 * running + 0.05 * loss
                bar.update(1)
                if running is not None and (i % 10 == 0 or i == steps - 1):
                    bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        finally:
            bar.close()
        return self.history

    def fit_stream(self, x: np.ndarray, y: np.ndarray, *, chunk: int, batch: int, steps: int,
                   progress: bool = True, desc: str = "train", resume: bool = False) -> History:
        """Truncated BPTT over one long stream: ``x`` and ``y`` are cut into ``batch`` parallel
        streams, walked ``chunk`` steps at a time; the history at the end of each chunk starts
        the next (so information flows forward across chunks) but gradients stop at chunk
        boundaries. At the end of the stream the state is reset and the walk starts again
        (epochs). A call starts at the beginning of the stream, or with ``resume=True`` where
        the trainer's stream state is (the previous call's end, or a restored checkpoint)."""
        if not self.carries:
            raise RecurrenceError("fit_stream carries the state between chunks: create the "
                                  "Trainer with carry=True")
        chunk = arguments.positive_int("fit_stream: chunk", chunk)
        batch = arguments.positive_int("fit_stream: batch", batch)
        steps = arguments.positive_int("fit_stream: steps", steps)
        resume = arguments.flag("fit_stream: resume", resume)
        stream_chunks(x, y, chunk, batch)            # checks the stream before anything starts
        if _chunk_count(x, chunk, batch) > 1:
            self._check_streamable("fit_stream")
        spec = (chunk, batch, len(x))
        if not resume:
            self.reset_stream()
        elif self._stream not in (None, spec) and (self.carry is not None or
                                                   self.stream_position):
            raise UnfoldValueError(f"fit_stream(resume=True): the trainer is inside a stream "
                                   f"walked with (chunk, batch, length) = {self._stream}, not "
                                   f"{spec}; resume with the same stream, or resume=False")
        self._stream = spec
        return self.fit(self._chunks(x, y, chunk, batch), steps, progress=progress, desc=desc)

    def _chunks(self, x, y, chunk, batch) -> Iterator[dict[str, np.ndarray]]:
        count = _chunk_count(x, chunk, batch)
        while True:                     # epoch after epoch, each from the states' inits
            if self.stream_position >= count:
                self.reset_stream()
            for feed in stream_chunks(x, y, chunk, batch, start=self.stream_position):
                self.stream_position += 1
                yield feed

    # --- the training state ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything resuming needs, copied: the parameters, the optimiser's state (moments and
        step count), the history, and the stream (carried state and position). A trainer built
        alike that ``load_state``s it trains on bit for bit as this one would."""
        return {"params": {k: v.copy() for k, v in self.params.items()},
                "optimizer": self.optimizer.state(),
                "history": self.history.columns(),
                "stream": {"carry": None if self.carry is None else
                           {s: [v.copy() for v in values] for s, values in self.carry.items()},
                           "position": self.stream_position,
                           "spec": None if self._stream is None else list(self._stream)}}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state()`` (or a loaded training checkpoint): the parameters are copied
        into this trainer's arrays, in place. Everything is checked before anything changes;
        a state that does not match the model or the optimiser raises ``CheckpointError``."""
        if not isinstance(state, Mapping) or not {"params", "optimizer"} <= set(state):
            raise CheckpointError("not a training state: it needs 'params' and 'optimizer' "
                                  "(a parameter file restores with load_params)")
        params = state["params"]
        _check_match(self.params, params, "the parameters")
        optimizer = state["optimizer"]
        kind = type(self.optimizer).__name__
        if not isinstance(optimizer, Mapping) or optimizer.get("type") != kind:
            got = optimizer.get("type") if isinstance(optimizer, Mapping) else optimizer
            raise CheckpointError(f"the training state is of a {got!r} optimiser but this "
                                  f"trainer's is {kind}; build the trainer with the same kind")
        moments = optimizer.get("moments") or {}
        if not isinstance(moments, Mapping):
            raise CheckpointError(f"the optimiser's moments must be a dict slot → {{name: "
                                  f"array}}, got {type(moments).__name__}")
        for slot, values in moments.items():
            if isinstance(values, Mapping):
                _check_match({k: self.params[k] for k in values if k in self.params}, values,
                             f"the optimiser's {slot!r} moments", subset=True)
                missing = sorted(set(self.params) - set(values))
                if missing and optimizer.get("t") != 0:   # every update sets every moment
                    raise CheckpointError(f"the optimiser's {slot!r} moments have no value for "
                                          f"{missing} after {optimizer.get('t')!r} updates: the "
                                          f"state is incomplete (resuming would restart them "
                                          f"from zero)")
        history = History.from_columns(state.get("history", History().columns()))
        stream = state.get("stream") or {}
        if not isinstance(stream, Mapping):
            raise CheckpointError(f"the stream state must be a dict (carry, position, spec), "
                                  f"got {type(stream).__name__}")
        carry = stream.get("carry")
        if carry is not None:
            carry = self._checked_carry(carry)
        position = stream.get("position", 0)
        if isinstance(position, (bool, np.bool_)) or not isinstance(position, (int, np.integer)) \
                or position < 0:
            raise CheckpointError(f"the stream position must be an integer ≥ 0, got "
                                  f"{position!r}")
        spec = stream.get("spec")
        if spec is not None and not (isinstance(spec, list) and len(spec) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in spec)):
            raise CheckpointError(f"the stream's (chunk, batch, length) must be three positive "
                                  f"integers, got {spec!r}")
        try:
            self.optimizer.load_state(optimizer)
        except UnfoldValueError as exc:
            raise CheckpointError(f"the optimiser's state does not match: {exc}") from None
        for k, v in params.items():
            self.params[k][...] = v
        self.history = history
        self._start = time.perf_counter() - (history[-1].seconds if history else 0.0)
        self.carry, self.stream_position = carry, int(position)
        self._stream = None if spec is None else tuple(int(v) for v in spec)

    def _checked_carry(self, carry: Any) -> dict[str, list[np.ndarray]]:
        states = self.rec.states
        if not isinstance(carry, Mapping) or set(carry) != set(states):
            raise CheckpointError(f"the carried state must hold the states {sorted(states)}")
        out = {}
        for name, st in states.items():
            values = carry[name]
            if not isinstance(values, list) or len(values) != st.depth or not all(
                    isinstance(v, np.ndarray) and v.dtype == st.dtype and
                    st.shape in (v.shape, v.shape[1:]) for v in values):
                raise CheckpointError(f"the carried state {name!r} must be {st.depth} arrays of "
                                      f"shape [batch,] {st.shape} {st.dtype}")
            out[name] = [v.copy() for v in values]
        return out


def _is_joined(model: Any) -> bool:
    """Whether ``model`` offers what the Trainer needs of a joined model (see ``Trainer``)."""
    return all(callable(getattr(model, m, None)) for m in ("check", "lengths", "unfold")) and \
        isinstance(getattr(model, "params", None), Mapping) and \
        isinstance(getattr(model, "sequences", None), Mapping)


def _takes_mask(model: Any) -> bool:
    """Whether a joined model's ``unfold`` takes ``mask=`` (an encoder–decoder does)."""
    import inspect
    try:
        return "mask" in inspect.signature(model.unfold).parameters
    except (TypeError, ValueError):
        return False


def _check_feed(feed: Any) -> Mapping[Any, Any]:
    if not isinstance(feed, Mapping):
        raise UnfoldTypeError(f"a batch must be a feed, a dict such as {{'x': …, 'y': …}}, got "
                              f"{type(feed).__name__}")
    return feed


def _mean(loss: float, grads: dict[str, np.ndarray], count: float
          ) -> tuple[float, dict[str, np.ndarray]]:
    if count == 0:
        raise FeedError("this batch has no loss term: its mask is all zeros (no real step), so "
                        "there is nothing to average or learn from")
    return loss / count, {k: g / count for k, g in grads.items()}


def _check_model_params(rec: Any, params: Any) -> dict[str, np.ndarray]:
    """``params`` must be exactly the model's parameters (``rec.params``: a recurrence's, or a
    joined model's by qualified name), writable float arrays of the declared shapes and
    dtypes."""
    params = check_params(params, f"Trainer({rec.name!r})")
    missing, extra = sorted(set(rec.params) - set(params)), sorted(set(params) - set(rec.params))
    if missing:
        raise UnfoldKeyError(f"no initial value for params {missing} of {rec.name!r}; use "
                             f"unfold.train.init_params(rec)")
    if extra:
        raise UnfoldKeyError(f"{rec.name!r} has no params {extra} (its params are "
                             f"{sorted(rec.params)}); remove them from the dict")
    for name, node in rec.params.items():
        p = params[name]
        if p.dtype != node.dtype:
            raise UnfoldTypeError(f"param {name!r} of {rec.name!r} is declared {node.dtype} but "
                                  f"given an array of {p.dtype}; unfold.train.init_params(rec) "
                                  f"gives the declared dtypes")
        if p.shape != node.shape:
            raise UnfoldValueError(f"param {name!r} of {rec.name!r} is declared of shape "
                                   f"{node.shape} but given an array of shape {p.shape}")
    return params


def _check_match(mine: Mapping[str, np.ndarray], theirs: Any, what: str,
                 subset: bool = False) -> None:
    if not isinstance(theirs, Mapping):
        raise CheckpointError(f"{what}: expected a dict name → array")
    missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    if (missing and not subset) or extra:
        raise CheckpointError(f"{what} do not match the model: missing {missing}, unexpected "
                              f"{extra}")
    for k in theirs:
        v = theirs[k]
        if not isinstance(v, np.ndarray) or v.shape != mine[k].shape or v.dtype != mine[k].dtype:
            got = f"{v.shape} {v.dtype}" if isinstance(v, np.ndarray) else type(v).__name__
            raise CheckpointError(f"{what}: {k!r} is {got} but the model's is "
                                  f"{mine[k].shape} {mine[k].dtype}")


def save_training(path: Any, trainer: Trainer) -> str:
    """Write ``trainer.state()`` to ``path`` (an ``.npz`` checkpoint, atomically; its parameters
    also load with ``load_params``); returns the path."""
    if not isinstance(trainer, Trainer):
        raise UnfoldTypeError(f"save_training: expected a Trainer, got {type(trainer).__name__}")
    return save_checkpoint(path, trainer.state())


def load_training(path: Any, trainer: Trainer) -> Trainer:
    """Restore a training checkpoint written by ``save_training`` into ``trainer`` (built with
    the same recurrence and kind of optimiser); returns it. Resumed training then equals
    uninterrupted training, bit for bit."""
    if not isinstance(trainer, Trainer):
        raise UnfoldTypeError(f"load_training: expected a Trainer, got {type(trainer).__name__}")
    state = load_checkpoint(path)
    try:
        trainer.load_state(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{str(path)!r}: {exc}") from None
    return trainer


def _chunk_count(x: Any, chunk: int, batch: int) -> int:
    return -(-(len(x) // batch) // chunk)


def stream_chunks(x: np.ndarray, y: np.ndarray, chunk: int, batch: int, start: int = 0
                  ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds ``{"x": (k, batch, …), "y": (k, batch, …)}`` walking ``batch`` equal parts of a
    stream in parallel, ``chunk`` steps at a time (the last chunk may be shorter), from the
    ``start``-th chunk on. The stream is checked when this is called."""
    chunk = arguments.positive_int("stream_chunks: chunk", chunk)
    batch = arguments.positive_int("stream_chunks: batch", batch)
    start = arguments.positive_int("stream_chunks: start", start, minimum=0)
    x, y = _as_array("the stream x", x), _as_array("the stream y", y)
    if x.ndim == 0 or y.ndim == 0:
        raise FeedError("stream_chunks: x and y must be streams, arrays with a time axis first")
    if len(x) != len(y):
        raise FeedError(f"stream_chunks: x has {len(x)} steps but y has {len(y)}")
    per = len(x) // batch
    if per < 1:
        raise FeedError(f"stream_chunks: a stream of {len(x)} steps cannot feed {batch} rows")
    xs = np.swapaxes(x[:per * batch].reshape((batch, per) + x.shape[1:]), 0, 1)
    ys = np.swapaxes(y[:per * batch].reshape((batch, per) + y.shape[1:]), 0, 1)
    return ({"x": xs[s:s + chunk], "y": ys[s:s + chunk]}
            for s in range(start * chunk, per, chunk))


def truncated_gradients(trainer: Trainer, feed: Mapping[str, Any], chunk: int
                        ) -> tuple[float, dict[str, np.ndarray]]:
    """Σ over chunks of ``chunk`` steps of the loss and gradients of one batch of sequences,
    the history carried across chunks: the gradient of truncated BPTT (``rec.unfold(τ,
    truncate=chunk)`` computes the same one in a single graph, skip connections included). With
    ``chunk ≥ τ`` it is full BPTT. Loss and gradients are totals (not means). The trainer's own
    stream state is untouched."""
    if not isinstance(trainer, Trainer):
        raise UnfoldTypeError(f"truncated_gradients: expected a Trainer, got "
                              f"{type(trainer).__name__}")
    chunk = arguments.positive_int("truncated_gradients: chunk", chunk)
    feed = _check_feed(feed)
    if not isinstance(trainer.rec, Recurrence):
        trainer._check_streamable("truncated_gradients")
    steps = trainer._steps_and_batch(feed)[0]
    if steps > chunk:
        trainer._check_streamable("truncated_gradients")
    names, nodes = set(trainer.rec.sequences) | {"mask"}, set(trainer.rec.sequences.values())
    timed = [k for k in feed if (isinstance(k, str) and k in names) or
             (isinstance(k, Node) and k in nodes)]
    carry, total, grads = None, 0.0, {}
    for start in range(0, steps, chunk):
        part = dict(feed)
        part.update({k: _as_array(repr(k), feed[k])[start:start + chunk] for k in timed})
        loss, g, _, carry = trainer._run(part, True, True, carry)
        total += loss
        for k, v in g.items():
            grads[k] = grads[k] + v if k in grads else v
    return total, grads
