"""Saving and loading parameters as ``.npz`` files, safely.

``save_params`` writes to a temporary file beside the target and renames it over the target
(``os.replace`` is atomic): a crash mid-write leaves the old file intact. ``load_params`` never
unpickles, and checks what it reads against what the model expects."""
from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Iterable, Mapping

import numpy as np

from ..errors import UnfoldError
from ..graph import Node
from ..recurrence import Recurrence


class CheckpointError(UnfoldError, ValueError):
    """A parameter file is unreadable, or does not match the model it is loaded for."""


def save_params(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> str:
    """Write ``params`` (name → array) to ``path`` (an ``.npz`` file) atomically; returns the
    path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in params.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _expected(like) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    if isinstance(like, Recurrence):
        like = list(like.params.values())
    if isinstance(like, Mapping):
        return {k: (np.shape(v), np.asarray(v).dtype) for k, v in like.items()}
    return {p.name: (p.shape, p.dtype) for p in like}


def load_params(path: str | os.PathLike,
                like: Recurrence | Iterable[Node] | Mapping[str, np.ndarray] | None = None
                ) -> dict[str, np.ndarray]:
    """Read parameters saved by ``save_params``. With ``like`` (a recurrence, its param nodes, or
    a dict of arrays), check that the file holds exactly those names with those shapes and
    dtypes. Raises ``CheckpointError`` (a ``ValueError``) on a corrupt, truncated or mismatched
    file."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            params = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"cannot read parameters from {path!r}: the file is corrupt, "
                              f"truncated or not an .npz file ({type(exc).__name__}: {exc})"
                              ) from exc
    if like is None:
        return params
    expected = _expected(like)
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path!r} does not match the model: missing {missing}, "
                              f"unexpected {extra}; was it saved from another model?")
    wrong = [f"{name!r} is {params[name].shape} {params[name].dtype} in the file but the model "
             f"expects {tuple(shape)} {dtype}" for name, (shape, dtype) in sorted(expected.items())
             if params[name].shape != tuple(shape) or params[name].dtype != dtype]
    if wrong:
        raise CheckpointError(f"{path!r} does not match the model: " + "; ".join(wrong))
    return params
