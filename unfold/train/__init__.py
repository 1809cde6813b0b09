"""Training recurrent networks: optimisers, gradient clipping, initialisation, a training loop
with truncated BPTT over long streams, and safe parameter files.

    rec = unfold.models.rnn(m, n, k)
    params = unfold.train.init_params(rec, seed=0)
    trainer = unfold.train.Trainer(rec, params, unfold.train.Adam(1e-2), clip=1.0)
    history = trainer.fit(batches, steps=500)          # batches: feeds {"x": …, "y": …}
    unfold.train.save_params("model.npz", params)
    unfold.train.save_training("run.npz", trainer)     # resume: load_training("run.npz", t)
    unfold.train.save_model("run.npz", trainer)        # whole: trainer = load_model("run.npz")
"""
from __future__ import annotations

from .checkpoint import (CheckpointError, load_checkpoint, load_params, save_checkpoint,
                         save_params)
from .init import GATE_BIASES, init_params, orthogonal
from .loop import (History, Record, Trainer, load_training, save_training, stream_chunks,
                   truncated_gradients)
from .optim import (SGD, Adam, Momentum, NonFiniteError, Optimizer, clip_by_norm,
                    clip_elementwise, global_norm)
from .snapshot import load_model, save_model

__all__ = ["Trainer", "History", "Record", "stream_chunks", "truncated_gradients", "SGD",
           "Momentum", "Adam", "Optimizer", "NonFiniteError", "clip_by_norm",
           "clip_elementwise", "global_norm", "init_params", "orthogonal", "GATE_BIASES",
           "save_params", "load_params", "save_training", "load_training", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "save_model", "load_model"]
