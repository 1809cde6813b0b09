"""A model saved whole: what rebuilds it (the builder of ``unfold.models`` and its arguments), its
parameters, the optimiser (kind, hyper-parameters, moments, step count), the trainer's options and
history — so that ``load_model`` gives back a trainer that goes on exactly as the saved one would.

    save_model("run.npz", trainer)            # trainer of a model built by unfold.models
    trainer = load_model("run.npz")           # rebuilt: trainer.rec, trainer.params, …
    trainer.fit(batches, steps=100)           # bit for bit the uninterrupted run
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import UnfoldError, UnfoldTypeError, UnfoldValueError
from . import optim
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .loop import Trainer

#: the Trainer options a saved model records
TRAINER_OPTIONS = frozenset({"clip", "clip_mode", "mask", "carry", "nonfinite"})
#: the optimisers a saved model may name
OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Momentum, optim.Adam)}


def save_model(path: str | os.PathLike, trainer: Trainer) -> str:
    """Write the trainer's whole state and what rebuilds its model to ``path`` (an ``.npz``
    checkpoint, atomically; its ``params`` also load with ``load_params``). The model must have
    been built by a builder of ``unfold.models`` (it carries ``model.spec``); a hand-built
    recurrence is saved with ``save_training`` and rebuilt by its own code."""
    if not isinstance(trainer, Trainer):
        raise UnfoldTypeError(f"save_model: expected a Trainer, got {type(trainer).__name__}")
    spec = getattr(trainer.rec, "spec", None)
    if spec is None:
        raise UnfoldValueError(
            f"save_model: {trainer.rec.name!r} was not built by a builder of unfold.models with "
            f"arguments that can be written (a function argument cannot), so nothing could "
            f"rebuild it; use save_training(path, trainer) and rebuild the model yourself")
    state = trainer.state()
    state["model"] = spec
    state["optimizer_config"] = trainer.optimizer.config()
    state["trainer"] = {"clip": trainer.clip, "clip_mode": trainer.clip_mode,
                        "mask": trainer.mask, "carry": trainer.carries,
                        "nonfinite": trainer.nonfinite}
    return save_checkpoint(path, state)


def load_model(path: str | os.PathLike) -> Trainer:
    """The trainer ``save_model`` saved: its model rebuilt from the builder and arguments, its
    optimiser from kind and hyper-parameters, then the parameters, moments, step count, history
    and stream restored. Raises ``CheckpointError`` for a file that is not a saved model."""
    from ..models import rebuild

    tree = load_checkpoint(path)
    where = repr(str(path))
    missing = [k for k in ("model", "optimizer_config", "trainer", "params", "optimizer")
               if k not in tree]
    if missing:
        raise CheckpointError(f"{where} is not a saved model (no {missing}); a file of "
                              f"save_training loads with load_training into a trainer you build")
    for key in ("model", "optimizer_config", "trainer", "params", "optimizer"):
        if not isinstance(tree[key], dict):
            raise CheckpointError(f"{where}: {key!r} is a {type(tree[key]).__name__}, not the "
                                  f"dict a saved model holds there; the file is corrupt")
    config = dict(tree["optimizer_config"])
    kind = config.pop("type", None)
    if kind not in OPTIMIZERS:
        raise CheckpointError(f"{where}: unknown optimiser {kind!r} (known: "
                              f"{sorted(OPTIMIZERS)})")
    unknown = sorted(set(tree["trainer"]) - TRAINER_OPTIONS)
    if unknown:
        raise CheckpointError(f"{where}: unknown trainer options {unknown} (known: "
                              f"{sorted(TRAINER_OPTIONS)})")
    try:
        model = rebuild(tree["model"])
        optimizer = OPTIMIZERS[kind](**config)
        params = {k: np.array(v) for k, v in tree["params"].items()}   # writable copies
        trainer = Trainer(model, params, optimizer, **tree["trainer"])
    except (UnfoldError, TypeError) as exc:
        raise CheckpointError(f"{where}: cannot rebuild the model, its optimiser or its trainer: "
                              f"{exc}") from None
    try:
        trainer.load_state(tree)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    return trainer
