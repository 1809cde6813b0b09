"""Encoder–decoder (sequence-to-sequence) architectures (section 10.4, Fig. 10.12): an encoder
reads ``x(1) … x(n_x)``, a context ``C`` summarises it, a decoder emits ``y(1) … y(n_y)`` from
``C`` — two recurrences joined by ``Recurrence.unfold(bind=…)``, of lengths that may differ."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import FeedError, RecurrenceError, UnfoldKeyError, UnfoldTypeError, UnfoldValueError
from ..feed import _as_array
from ..graph import Node
from ..ops.base import named
from ..recurrence import Recurrence, Unfolded
from ._parts import Scope, _check_choice, affine, builder, input_sequence, readout
from .sequence_length import CELLS

#: how the context is made of the encoder's states h(1) … h(n_x)
CONTEXTS = ("final", "mean")


class EncoderDecoder:
    """An encoder and a decoder recurrence, and the context ``C`` joining them (Fig. 10.12).

    ``unfold(n_x, n_y)`` is the decoder unfolded over ``n_y`` steps with its context input ``C``
    bound to the encoder's ``C`` over ``n_x`` steps: one graph, trained and differentiated as a
    whole (gradients reach the encoder only through ``C``). Parameters are namespaced by the
    recurrence that declares them: ``params`` maps ``encoder.W``, ``decoder.W`` … to nodes, and
    the joined graph is fed by those names.

    ``context`` is ``"final"`` (``C = h(n_x)``, the encoder's last state), ``"mean"``
    (``C = (1/n_x) Σ_t h(t)``), or a function of the list of encoder states ``[h(1) … h(n_x)]``
    returning a node of the decoder's ``C`` shape.

    **Padded batches.** ``unfold(n_x, n_y, mask=True)`` takes inputs and outputs of different
    lengths in one batch: sequences padded to ``n_x`` and ``n_y`` steps, with the masks
    ``encoder.mask`` (n_x, batch) and ``decoder.mask`` (n_y, batch), 1 on real steps — made by
    ``EncoderDecoder.masks(x_lengths, y_lengths)``. Each example is then exactly its unpadded
    self: its context is made of its own ``n_x`` states (a padded encoder step carries the state:
    ``h(n_x)`` is the last real one, and ``"mean"`` averages the real steps only; a function
    context sees the padded steps as repeats of the last real state), and only its own ``n_y``
    steps add to the loss. ``Trainer(model, …, mask=True)`` trains on such batches.
    """

    def __init__(self, encoder: Recurrence, decoder: Recurrence,
                 context: str | Callable[[list[Node]], Node] = "final", state: str = "h",
                 name: str = "encoder_decoder") -> None:
        for what, rec in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(rec, Recurrence):
                raise UnfoldTypeError(f"EncoderDecoder: the {what} must be a Recurrence, got "
                                      f"{type(rec).__name__}")
        if not callable(context):
            _check_choice("context", context, CONTEXTS)
        if "C" not in decoder.contexts:
            raise RecurrenceError(f"encoder–decoder: the decoder {decoder.name!r} needs a context "
                                  f"input C (decoder.context('C', shape)) to receive the summary")
        if state not in encoder.states:
            raise RecurrenceError(f"encoder–decoder: the encoder {encoder.name!r} has no state "
                                  f"{state!r}; its states are {sorted(encoder.states)}")
        if encoder.name == decoder.name:
            raise RecurrenceError(f"encoder–decoder: both recurrences are named "
                                  f"{encoder.name!r}; their parameters are namespaced by "
                                  f"recurrence, so give them distinct names")
        self.encoder, self.decoder, self.context, self.state = encoder, decoder, context, state
        self.name = name

    def check(self) -> None:
        """Validate both recurrences (what ``Trainer`` asks of a model)."""
        for rec in self.recurrences:
            rec.check()

    # --- the model's variables -------------------------------------------------------------------

    @property
    def recurrences(self) -> tuple[Recurrence, Recurrence]:
        return self.encoder, self.decoder

    @property
    def params(self) -> dict[str, Node]:
        """Every parameter, by qualified name (``encoder.W``, ``decoder.V`` …)."""
        return {f"{rec.name}.{name}": p for rec in self.recurrences
                for name, p in rec.params.items()}

    @property
    def sequences(self) -> dict[str, Node]:
        """The sequences to feed: the encoder's (``x``) and the decoder's (``y_prev``, ``y``),
        under their own names — qualified where the two recurrences share one."""
        names = [n for rec in self.recurrences for n in rec.sequences]
        return {(n if names.count(n) == 1 else f"{rec.name}.{n}"): node
                for rec in self.recurrences for n, node in rec.sequences.items()}

    def split(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Qualified parameters → (the encoder's, the decoder's), under their own names."""
        if not isinstance(params, Mapping):
            raise UnfoldTypeError(f"{self.name!r}: params must be a dict qualified name → array "
                                  f"(encoder.W …), got {type(params).__name__}")
        parts: tuple[dict, dict] = ({}, {})
        for key, value in params.items():
            if not isinstance(key, str):
                raise UnfoldKeyError(f"{key!r} is not a parameter name of {self.name!r}; its "
                                     f"parameters are {sorted(self.params)}")
            owner, _, name = key.partition(".")
            for part, rec in zip(parts, self.recurrences):
                if owner == rec.name and name in rec.params:
                    part[name] = value
                    break
            else:
                raise UnfoldKeyError(f"{key!r} is not a parameter of {self.name!r}; its "
                                     f"parameters are {sorted(self.params)}")
        return parts

    # --- unfolding -------------------------------------------------------------------------------

    def context_of(self, encoded: Unfolded) -> Node:
        """The node ``C`` of an unfolded encoder (masked or not)."""
        states = encoded.over_time(self.state)
        if callable(self.context):
            C = self.context(states)
        elif self.context == "final":
            C = encoded.final(self.state)
        elif encoded.mask is None:
            C = _sum(states) / float(len(states))
        else:                   # the mean over each example's real steps: Σ m(t) h(t) / Σ m(t)
            real = [ops.cast(encoded.at("mask", t), states[0].dtype)
                    for t in range(1, len(states) + 1)]
            C = _sum([m * h for m, h in zip(real, states)]) / _sum(real)
        return named(C, "C")

    def unfold(self, n_x: int, n_y: int, *, mask: bool = False) -> Unfolded:
        """The joined graph: the encoder over ``n_x`` steps, the decoder over ``n_y`` — with
        ``mask=True``, both padded (fed ``encoder.mask`` and ``decoder.mask``; see the class)."""
        encoded = self.encoder.unfold(n_x, mask=mask)
        return self.decoder.unfold(n_y, bind={"C": self.context_of(encoded)}, mask=mask)

    @staticmethod
    def masks(x_lengths: Sequence[int], y_lengths: Sequence[int], n_x: int | None = None,
              n_y: int | None = None) -> dict[str, np.ndarray]:
        """The padding masks of a batch whose example ``i`` has ``x_lengths[i]`` input and
        ``y_lengths[i]`` output steps: ``{"encoder.mask": (n_x, batch), "decoder.mask": (n_y,
        batch)}``, 1 on real steps (``n_x``, ``n_y``: the padded lengths, the longest by
        default)."""
        out = {}
        for what, lengths, steps in (("encoder", x_lengths, n_x), ("decoder", y_lengths, n_y)):
            if isinstance(lengths, (str, bytes)) or not isinstance(lengths,
                                                                   (Sequence, np.ndarray)):
                raise UnfoldTypeError(f"masks: the {what}'s lengths must be a list of step "
                                      f"counts, got {type(lengths).__name__}")
            sizes = [arguments.positive_int(f"masks: a length of the {what}", n) for n in lengths]
            if not sizes:
                raise UnfoldValueError("masks: give the lengths of at least one example")
            steps = max(sizes) if steps is None else \
                arguments.positive_int(f"masks: the {what}'s padded length", steps)
            if max(sizes) > steps:
                raise UnfoldValueError(f"masks: a {what} length {max(sizes)} exceeds the padded "
                                       f"length {steps}")
            out[f"{what}.mask"] = (np.arange(steps)[:, None] < np.array(sizes)[None, :]) \
                .astype(np.float64)
        if out["encoder.mask"].shape[1] != out["decoder.mask"].shape[1]:
            raise UnfoldValueError(f"masks: {out['encoder.mask'].shape[1]} input lengths but "
                                   f"{out['decoder.mask'].shape[1]} output lengths; give one of "
                                   f"each per example")
        return out

    def lengths(self, feed: Mapping[str, Any]) -> tuple[int, int]:
        """``(n_x, n_y)``: the lengths of the encoder's and the decoder's fed sequences."""
        if not isinstance(feed, Mapping):
            raise UnfoldTypeError(f"{self.name!r}: a feed is a dict name → array, got "
                                  f"{type(feed).__name__}")
        out = []
        for rec in self.recurrences:
            fed = [k for k in feed if isinstance(k, str) and
                   (k in rec.sequences or k.startswith(f"{rec.name}.") and
                    k.partition(".")[2] in rec.sequences)]
            if not fed:
                raise UnfoldKeyError(f"{self.name!r}: the feed has none of the sequences "
                                     f"{sorted(rec.sequences)} of the {rec.name}")
            first = _as_array(f"sequence {fed[0]!r}", feed[fed[0]])
            if first.ndim == 0:
                raise FeedError(f"sequence {fed[0]!r} is fed a scalar; a sequence is an array "
                                f"(steps, [batch,] …)")
            out.append(len(first))
        return out[0], out[1]

    def __repr__(self) -> str:
        return f"<EncoderDecoder {self.encoder.name!r} → {self.decoder.name!r}>"


def _sum(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else ops.add_n(nodes)


def teacher_forced(y: Any, start: int) -> np.ndarray:
    """The decoder's inputs under teacher forcing: the true previous symbols, ``y_prev(1) =
    start`` and ``y_prev(t) = y(t−1)`` — ``y`` of shape (n_y, [batch])."""
    start = arguments.positive_int("teacher_forced: start (a symbol)", start, minimum=0)
    y = _as_array("teacher_forced: y", y)
    if y.ndim == 0 or len(y) == 0 or y.dtype.kind not in "iu":
        raise FeedError(f"teacher_forced: y must be symbols (integers) of shape (n_y, [batch]), "
                        f"got {y.dtype} of shape {y.shape}")
    return np.concatenate([np.full((1,) + y.shape[1:], start, y.dtype), y[:-1]])


@builder
def encoder_decoder(n_in: int, n_hidden: int, n_y: int, *, encoder_cell: str = "gru",
                    decoder_cell: str = "gru", context: str | Callable = "final",
                    variant: str = "book", inputs: str = "vectors",
                    dtype: Any = np.float64) -> EncoderDecoder:
    """A sequence-to-sequence model (Fig. 10.12; Cho et al., 2014) over an output vocabulary of
    ``n_y`` symbols (including whatever start and end symbols the data use)::

        encoder:  h(t) = cell_e(x(t), h(t−1)),   t = 1 … n_x,   h(0) = 0
                  C    = h(n_x)                      (context="final";  "mean": (1/n_x) Σ_t h(t))
        decoder:  s(0) = tanh(b_C + W_C C)
                  s(t) = cell_d([1_{y_prev(t)}; C], s(t−1)),   t = 1 … n_y
                  o(t) = c + V s(t),   L = Σ_t −log softmax(o(t))_{y(t)}

    ``y_prev(t)`` is the symbol before ``y(t)``: under teacher forcing (training) the true one,
    ``teacher_forced(y, start)``; at test time the model's own previous choice
    (``unfold.generate.greedy_decode``). The context is both the decoder's initial state and an
    input at every step, so the decoder sees the input sequence only through ``C``. The cells are
    ``"rnn"``, ``"lstm"``, ``"gru"`` (gated cells in the book's ``variant`` or ``"common"``).

    Recurrences ``encoder`` (sequence ``x``: (n_x, [batch,] n_in), or token ids with
    ``inputs="tokens"``) and ``decoder`` (sequences ``y_prev``, ``y``: (n_y, [batch]) ids;
    context ``C``). Parameters, qualified: ``encoder.U``, ``encoder.W``, ``encoder.b`` (and the
    cell's gates, named as in ``unfold.models.lstm_cell`` / ``gru_cell``: ``encoder.U_f``,
    ``encoder.W_f``, ``encoder.b_f`` …), ``decoder.W_C`` (n_hidden×n_hidden), ``decoder.b_C``,
    ``decoder.U`` (n_hidden×(n_y + n_hidden): its first n_y columns read the one-hot
    ``y_prev(t)``, the last n_hidden read ``C``; so do the gates' ``decoder.U_f`` …),
    ``decoder.W``, ``decoder.b`` (and gates), ``decoder.V`` (n_y×n_hidden), ``decoder.c``.

    The decoder's state is named ``h`` (the book's ``s`` above): ``s(0)`` is the initial value
    of the cell's ``h``. An LSTM decoder also has its internal state ``s`` (``lstm_cell``'s, not
    the book's ``s`` of this figure), which starts at zeros; ``o(t)`` reads the LSTM's output
    ``h(t)``. Padded batches of different lengths: ``EncoderDecoder`` (``mask=True``).
    """
    for what, cell in (("encoder_cell", encoder_cell), ("decoder_cell", decoder_cell)):
        _check_choice(what, cell, ("rnn", "lstm", "gru"))
    n_in, n_hidden, n_y = (arguments.positive_int(f"encoder_decoder: {what}", n) for what, n in
                           (("n_in", n_in), ("n_hidden", n_hidden), ("n_y", n_y)))
    def options(cell: str) -> dict[str, str]:
        return {"variant": variant} if cell in ("lstm", "gru") else {}

    encoder = Recurrence("encoder")
    CELLS[encoder_cell](encoder, input_sequence(encoder, n_in, inputs, dtype), n_hidden,
                        **options(encoder_cell))
    decoder = Recurrence("decoder")
    C = decoder.context("C", (n_hidden,), dtype)
    previous = ops.one_hot(decoder.sequence("y_prev", (), np.int64), n_y, dtype)
    start = ops.tanh(affine(decoder, n_hidden, "b_C", {"W_C": C}))
    s = CELLS[decoder_cell](Scope(decoder, lambda n: n, inits={"h": start}),
                            ops.concat([previous, C], axis=0), n_hidden, **options(decoder_cell))
    readout(decoder, s, n_y)
    return EncoderDecoder(encoder, decoder, context)
