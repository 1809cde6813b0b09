"""Saving and loading parameters — and whole training states — as ``.npz`` files, safely.

A checkpoint is a tree: dicts with string keys (any string: ``"file"``, ``"a/b"``, ``""``),
lists, numeric numpy arrays, and plain JSON values (numbers, strings, booleans, None). It is stored
as an ``.npz`` zip: one ``.npy`` member per array, and a manifest ``unfold.json`` holding the
tree with each array replaced by its member's name. A parameter with a plain name (letters,
digits, ``_``) is stored as ``<name>.npy``, so ``numpy.load`` reads a parameter file too.

Writing is atomic and checked first: every value is validated before anything touches the disk,
the file is written beside the target under a temporary name with the user's normal permissions
(those of the file it replaces, or the umask's), flushed, and renamed over the target
(``os.replace``): a crash mid-write leaves the old file intact. A symlink is followed: the file it
points to is replaced (a symlink loop, a FIFO or a device is refused; ``~`` is the home folder).
Reading never unpickles, refuses any member that is not a numeric array, and any whose header
declares more data than the member holds (before allocating it). Errors name the user's path (never a temporary one) and subclass both ``CheckpointError``
(a ``ValueError``) and, for file-system failures, the ``OSError`` that occurred
(``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``…).
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import zipfile
from typing import Any, Iterable, Mapping

import numpy as np

from .. import arguments
from ..errors import UnfoldError, UnfoldTypeError
from ..graph import Node
from ..ops.base import unmasked
from ..recurrence import Recurrence

MANIFEST = "unfold.json"
FORMAT = "unfold-checkpoint"
VERSION = 1
_PLAIN = re.compile(r"[A-Za-z0-9_]{1,200}")


def _numeric(array: np.ndarray) -> bool:
    """Bool, integer, float or complex — what a checkpoint stores (never objects or records)."""
    return array.dtype.kind in "biufc" and array.dtype.fields is None


class CheckpointError(UnfoldError, ValueError):
    """A parameter file is unreadable, or does not match the model it is loaded for."""


_OS_ERRORS: dict[type, type] = {}


def _os_error(exc: OSError, message: str) -> CheckpointError:
    """A ``CheckpointError`` that is also the ``OSError`` subclass ``exc`` is."""
    base = type(exc)
    cls = _OS_ERRORS.get(base)
    if cls is None:
        cls = _OS_ERRORS[base] = type(f"Checkpoint{base.__name__}", (CheckpointError, base),
                                      {"__doc__": f"A checkpoint file failed with "
                                                  f"{base.__name__}.", "__module__": __name__})
    error = cls(message)
    error.errno = exc.errno
    return error


def _reason(exc: OSError) -> str:
    """What went wrong, without the file name (which may be the temporary file's)."""
    return exc.strerror or str(exc) or type(exc).__name__


# --- the tree ⇄ arrays and a manifest -------------------------------------------------------------

def _encode(tree: Any, arrays: list[np.ndarray], where: str) -> Any:
    """The manifest's JSON for ``tree``: ``{"d": {…}}`` a dict, ``{"l": […]}`` a list,
    ``{"a": i}`` the array ``arrays[i]``, ``{"v": x}`` a JSON value."""
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            if not isinstance(key, str):
                raise UnfoldTypeError(f"checkpoint: the key {key!r} at {where or 'the top'} is "
                                      f"a {type(key).__name__}; names must be strings")
            out[key] = _encode(value, arrays, f"{where}[{key!r}]")
        return {"d": out}
    if isinstance(tree, (list, tuple)):
        return {"l": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(tree)]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return {"v": tree}
    if isinstance(tree, (np.ndarray, np.generic)):
        array = np.asarray(unmasked(tree, f"checkpoint: {where}", CheckpointError))
        if not _numeric(array):
            raise CheckpointError(f"checkpoint: {where} is an array of {array.dtype}; only "
                                  f"numeric arrays (bool, int, float, complex) are saved — "
                                  f"nothing was written")
        arrays.append(array)
        return {"a": len(arrays) - 1}
    raise UnfoldTypeError(f"checkpoint: {where} is a {type(tree).__name__}; a checkpoint holds "
                          f"numpy arrays, numbers, strings, lists and dicts — nothing was "
                          f"written")


def _members(encoded: Any, arrays: list[np.ndarray]) -> list[str]:
    """The member name of each array: ``<name>.npy`` for a plain-named parameter (at
    ``["params"][name]``), ``~<i>.npy`` for the rest (``~`` never occurs in a plain name)."""
    names = [f"~{i}.npy" for i in range(len(arrays))]
    params = encoded["d"].get("params", {}).get("d", {})
    for name, value in params.items():
        if "a" in value and _PLAIN.fullmatch(name):
            names[value["a"]] = f"{name}.npy"
    return names


def _replace_arrays(encoded: Any, members: list[str]) -> Any:
    if "d" in encoded:
        return {"d": {k: _replace_arrays(v, members) for k, v in encoded["d"].items()}}
    if "l" in encoded:
        return {"l": [_replace_arrays(v, members) for v in encoded["l"]]}
    if "a" in encoded:
        return {"a": members[encoded["a"]]}
    return encoded


def _decode(encoded: Any, read, where: str = "the manifest") -> Any:
    if not isinstance(encoded, dict) or len(encoded) != 1:
        raise CheckpointError(f"{where} is malformed")
    (tag, value), = encoded.items()
    if tag == "d" and isinstance(value, dict):
        return {k: _decode(v, read, f"{where}[{k!r}]") for k, v in value.items()}
    if tag == "l" and isinstance(value, list):
        return [_decode(v, read, f"{where}[{i}]") for i, v in enumerate(value)]
    if tag == "a" and isinstance(value, str):
        return read(value)
    if tag == "v" and (value is None or isinstance(value, (bool, int, float, str))):
        return value
    raise CheckpointError(f"{where} is malformed")


# --- writing ----------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, tree: Mapping[str, Any]) -> str:
    """Write ``tree`` (see the module docstring) to ``path`` atomically; returns the path."""
    user_path = _user_path(path)
    if not isinstance(tree, Mapping):
        raise UnfoldTypeError(f"checkpoint: the tree to save must be a dict, got "
                              f"{type(tree).__name__}")
    arrays: list[np.ndarray] = []
    try:
        encoded = _encode(tree, arrays, "")
        members = _members(encoded, arrays)
        manifest = json.dumps({"format": FORMAT, "version": VERSION,
                               "tree": _replace_arrays(encoded, members)})
    except RecursionError:
        raise CheckpointError("checkpoint: the tree to save is nested too deeply (or holds "
                              "itself); nothing was written") from None

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for member, array in zip(members, arrays):
                with zf.open(member, "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)
            zf.writestr(MANIFEST, manifest)

    _atomic_write(user_path, write)
    return user_path


def _user_path(path: Any) -> str:
    """``path`` as a string, ``~`` expanded; not a FIFO or a device (see
    ``arguments.file_path``)."""
    return arguments.file_path("checkpoint", path, CheckpointError)


def _atomic_write(user_path: str, write) -> None:
    """``write(file)`` into a temporary file beside the target, then rename it over the target.
    The target is where ``user_path`` leads (through symlinks); its folder is created if
    missing. The new file keeps the mode of the file it replaces, or gets the umask's."""
    try:
        target = os.path.realpath(user_path, strict=True)
    except FileNotFoundError:         # a new file, or a symlink to one
        target = os.path.realpath(user_path)
    except OSError as exc:            # a symlink loop
        raise _os_error(exc, f"cannot save to {user_path!r}: {_reason(exc)}") from None
    if os.path.isdir(target):
        raise _os_error(IsADirectoryError(21, "Is a directory"),
                        f"cannot save to {user_path!r}: it is a directory; give a file path "
                        f"such as {os.path.join(user_path, 'model.npz')!r}")
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, f"cannot save to {user_path!r}: its folder {folder!r} cannot be "
                             f"created ({_reason(exc)})") from None
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = None                   # a new file: os.open's 0o666 less the umask
    tmp = None
    try:
        while tmp is None:
            candidate = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(6)}"
                                             f".tmp")
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                tmp = candidate
            except FileExistsError:
                continue
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise _os_error(exc, f"cannot save to {user_path!r}: {_reason(exc)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    try:                              # make the rename durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# --- reading ----------------------------------------------------------------------------------------

def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The tree saved by ``save_checkpoint`` (or, for a plain ``numpy.savez`` file of arrays,
    ``{"params": {name: array}}``). Raises ``CheckpointError`` on a corrupt, truncated or
    hostile file, and one that is also the ``OSError`` on a missing or unreadable one."""
    user_path = _user_path(path)
    try:
        with open(user_path, "rb") as f, zipfile.ZipFile(f) as zf:
            return _read_tree(zf, user_path)
    except CheckpointError:
        raise
    except OSError as exc:
        raise _os_error(exc, f"cannot read {user_path!r}: {_reason(exc)}") from None
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError, RuntimeError,
            NotImplementedError) as exc:
        raise CheckpointError(f"cannot read {user_path!r}: the file is corrupt, truncated or "
                              f"not an .npz file ({type(exc).__name__}: {exc})") from None


_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}


def _check_size(zf: zipfile.ZipFile, member: str, user_path: str) -> None:
    """A member's header must not declare more data than the member holds (numpy would
    allocate what a hostile header declares before reading it)."""
    with zf.open(member) as f:
        try:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = _HEADERS[version](f)
        except KeyError:
            raise CheckpointError(f"{user_path!r}: member {member!r} has .npy format version "
                                  f"{version}, which unfold does not read") from None
        except ValueError as exc:
            raise CheckpointError(f"{user_path!r}: member {member!r} is not a numeric array "
                                  f"({exc})") from None
        declared = math.prod(shape) * dtype.itemsize
        held = zf.getinfo(member).file_size - f.tell()
    if declared > held:
        raise CheckpointError(f"{user_path!r}: member {member!r} declares an array of shape "
                              f"{shape} ({declared:,} bytes) but holds {held:,} bytes: the file "
                              f"is truncated or forged")


def _read_tree(zf: zipfile.ZipFile, user_path: str) -> dict[str, Any]:
    names = zf.namelist()
    used: set[str] = set()

    def read(member: str) -> np.ndarray:
        if not member.endswith(".npy") or member not in names:
            raise CheckpointError(f"{user_path!r}: member {member!r} is not an array (.npy) of "
                                  f"the file")
        used.add(member)
        _check_size(zf, member, user_path)
        with zf.open(member) as f:
            try:
                array = np.lib.format.read_array(f, allow_pickle=False)
            except ValueError as exc:
                raise CheckpointError(f"{user_path!r}: member {member!r} is not a numeric "
                                      f"array ({exc})") from None
        if not _numeric(array):
            raise CheckpointError(f"{user_path!r}: member {member!r} holds {array.dtype}, not "
                                  f"a numeric array")
        return array

    if MANIFEST not in names:                    # a plain numpy.savez file
        return {"params": {m[:-4]: read(m) for m in names}}
    try:
        manifest = json.loads(zf.read(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{user_path!r}: the manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{user_path!r}: the manifest is not an unfold checkpoint's")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{user_path!r} is a checkpoint of format version "
                              f"{manifest.get('version')!r}; this unfold reads version "
                              f"{VERSION}")
    tree = _decode(manifest.get("tree"), read, f"{user_path!r}'s manifest")
    stray = sorted(set(names) - used - {MANIFEST})
    if stray:
        raise CheckpointError(f"{user_path!r}: members {stray} are not part of the checkpoint")
    if not isinstance(tree, dict):
        raise CheckpointError(f"{user_path!r}'s manifest is malformed")
    return tree


# --- parameters ------------------------------------------------------------------------------------

def save_params(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> str:
    """Write ``params`` (name → numeric array) to ``path`` (an ``.npz`` file) atomically;
    returns the path. Any string is a valid name; non-numeric arrays are refused before anything
    is written."""
    if not isinstance(params, Mapping):
        raise UnfoldTypeError(f"save_params: params must be a dict name → array, got "
                              f"{type(params).__name__}")
    return save_checkpoint(path, {"params": {k: _as_array(k, v) for k, v in params.items()}})


def _as_array(name: Any, value: Any) -> np.ndarray:
    value = unmasked(value, f"save_params: {name!r}", CheckpointError)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"save_params: the value of {name!r} is not an array ({exc}); "
                              f"nothing was written") from None
    if not _numeric(array):
        raise CheckpointError(f"save_params: {name!r} is an array of {array.dtype}; only "
                              f"numeric arrays are saved — nothing was written")
    return array


def params_of(tree: Mapping[str, Any], user_path: str) -> dict[str, np.ndarray]:
    params = tree.get("params")
    if not isinstance(params, dict) or not all(isinstance(v, np.ndarray)
                                               for v in params.values()):
        raise CheckpointError(f"{user_path!r} holds no parameters (a dict of arrays under "
                              f"'params')")
    return params


def _expected(like: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    model_params = getattr(like, "params", None)      # a recurrence, or a joined model's
    if isinstance(model_params, Mapping):             # qualified names (encoder.W …)
        return {k: (p.shape, p.dtype) for k, p in model_params.items()}
    if isinstance(like, Mapping):
        return {k: (np.shape(v), np.asarray(v).dtype) for k, v in like.items()}
    try:
        nodes = list(like)
    except TypeError:
        nodes = None
    if nodes is None or not all(isinstance(p, Node) for p in nodes):
        raise UnfoldTypeError(f"load_params: like must be a recurrence, its param nodes or a dict "
                              f"of arrays, got {type(like).__name__}")
    return {p.name: (p.shape, p.dtype) for p in nodes}


def check_match(params: Mapping[str, np.ndarray], like: Any, user_path: str
                ) -> None:
    """Raise ``CheckpointError`` unless ``params`` has exactly the names, shapes and dtypes of
    ``like``."""
    expected = _expected(like)
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{user_path!r} does not match the model: missing {missing}, "
                              f"unexpected {extra}; was it saved from another model?")
    wrong = [f"{name!r} is {params[name].shape} {params[name].dtype} in the file but the model "
             f"expects {tuple(shape)} {dtype}" for name, (shape, dtype) in sorted(expected.items())
             if params[name].shape != tuple(shape) or params[name].dtype != dtype]
    if wrong:
        raise CheckpointError(f"{user_path!r} does not match the model: " + "; ".join(wrong))


def load_params(path: str | os.PathLike,
                like: Recurrence | Iterable[Node] | Mapping[str, np.ndarray] | None = None
                ) -> dict[str, np.ndarray]:
    """Read parameters saved by ``save_params`` (or the parameters of a training checkpoint, or
    a ``numpy.savez`` file). With ``like`` (a recurrence, its param nodes, or a dict of arrays),
    check that the file holds exactly those names with those shapes and dtypes. Raises
    ``CheckpointError`` (a ``ValueError``) on a corrupt, truncated or mismatched file."""
    user_path = _user_path(path)
    params = params_of(load_checkpoint(user_path), user_path)
    if like is not None:
        check_match(params, like, user_path)
    return params
