"""Checkpoints: save a training state atomically, load it safely, fail clearly.

A checkpoint is one dict saved with ``torch.save``:

    {"format": "gpt2-from-scratch/checkpoint", "format_version": 1,
     "model": state_dict, "optimizer": state_dict | None, "scheduler": state_dict | None,
     "step": int, "config": GPTConfig.to_dict(), "data_position": ..., "rng_states": ...,
     "extra": {...}}

- Atomic: the bytes go to a temporary file in the same directory, which is flushed to disk
  and then renamed over the target with ``os.replace`` (one atomic step on POSIX and
  Windows). A crash or a full disk midway leaves the previous checkpoint untouched.
- Safe: ``torch.load(..., weights_only=True)`` only rebuilds tensors and plain Python data;
  a file that tries to run code on load is rejected. Hence everything stored must be plain
  data: ``rng_states()`` turns NumPy's RNG state into lists for that reason.
- Clear: a missing, corrupt, foreign or non-fitting file raises ``CheckpointError`` saying
  which, instead of a pickle traceback or a wall of state_dict key names.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "gpt2-from-scratch/checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, foreign, or does not fit the model."""


def _plain(value: Any) -> Any:
    """Objects with a state (modules, optimizers, schedulers, configs) -> plain data."""
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        return value.to_dict()
    if hasattr(value, "state_dict") and callable(value.state_dict):
        return value.state_dict()
    return value


# What torch.load(weights_only=True) rebuilds: tensors, plain Python values and containers.
_PLAIN_LEAVES = (torch.Tensor, torch.dtype, torch.device, torch.Size)
_PLAIN_SCALARS = {type(None), bool, int, float, complex, str, bytes}
_PLAIN_CONTAINERS = {dict, OrderedDict, list, tuple}


def _find_unloadable(value: Any, where: str) -> str | None:
    """The first value ``weights_only=True`` could not read back, as "where: type", or None.

    Checked before writing, because such a value (a NumPy array or scalar, a Path, any
    custom object) saves without complaint and only fails when the checkpoint is loaded.
    """
    kind = type(value)
    if kind in _PLAIN_SCALARS or isinstance(value, _PLAIN_LEAVES):
        return None
    if kind in _PLAIN_CONTAINERS:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and type(key) not in _PLAIN_SCALARS:
                return f"{where} key {key!r}: {type(key).__name__}"
            found = _find_unloadable(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    return f"{where}: {kind.__module__}.{kind.__qualname__}"


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(temporary_path)``, then rename the finished file over ``path``.

    For any writer that takes a file name (``safetensors.torch.save_file``, ``fig.savefig``,
    a JSON dump): a crash or a full disk midway leaves the old ``path`` as it was, and the
    temporary file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | os.PathLike, **state: Any) -> Path:
    """``save_checkpoint("runs/x/ckpt.pt", model=model, optimizer=opt, step=100, config=cfg)``.

    Modules/optimizers/schedulers may be passed as objects (their ``state_dict()`` is
    stored) and a ``GPTConfig`` as itself (its ``to_dict()`` is stored). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "model" not in state:
        raise ValueError("save_checkpoint needs model=... (a module or its state_dict)")
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION}
    payload.update({key: _plain(value) for key, value in state.items()})
    unloadable = _find_unloadable(payload, "checkpoint")
    if unloadable:
        raise ValueError(
            f"cannot save {unloadable}: torch.load(weights_only=True) could not read it back; "
            "store tensors and plain Python values only (e.g. array.tolist(), str(path), "
            "int(numpy_integer))"
        )
    # The temporary file sits next to the target: os.replace is atomic only within one
    # filesystem, and a leftover ".tmp" file is easy to spot and delete.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path, map_location: Any) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, random bytes, a pickle of arbitrary objects
        raise CheckpointError(
            f"cannot read {path} as a checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); the file is corrupt, "
            "truncated, or was not written by torch.save of plain data"
        ) from error
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project (no '{FORMAT}' marker); write "
            "checkpoints with save_checkpoint, or load foreign weights another way "
            "(GPT.from_pretrained for Hugging Face GPT-2 directories)"
        )
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {ckpt['format_version']}, newer than this "
            f"code understands ({FORMAT_VERSION}); update the code"
        )
    if "model" not in ckpt:
        raise CheckpointError(f"{path} holds no 'model' weights")
    return ckpt


def _check_config(path: Path, ckpt: dict[str, Any], model: nn.Module) -> None:
    saved, current = ckpt.get("config"), getattr(model, "config", None)
    if saved is None or current is None or not hasattr(current, "to_dict"):
        return
    current = current.to_dict()
    # dropout changes no shapes and may differ between training and sampling.
    differ = {
        key: (saved.get(key), value)
        for key, value in current.items()
        if key != "dropout" and saved.get(key) != value
    }
    if differ:
        details = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in differ.items())
        raise CheckpointError(
            f"{path} was saved from a different model configuration ({details}); build the "
            "model with GPTConfig.from_dict(checkpoint['config']) first"
        )


def _load_model(path: Path, ckpt: dict[str, Any], model: nn.Module) -> None:
    state = ckpt["model"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = [
        f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
        for key in sorted(set(own) & set(state))
        if hasattr(state[key], "shape") and state[key].shape != own[key].shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} with other shapes (e.g. {wrong_shape[:3]})")
        raise CheckpointError(
            f"the weights in {path} do not fit {type(model).__name__}: " + "; ".join(parts)
        )
    model.load_state_dict(state)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``), restore whatever objects are passed,
    and return the whole dict (step, config, data_position, rng_states, extra, ...)."""
    path = Path(path)
    ckpt = _read(path, map_location)
    restore_checkpoint(ckpt, model, optimizer, scheduler, source=path)
    return ckpt


def restore_checkpoint(
    ckpt: dict[str, Any],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    source: str | os.PathLike = "checkpoint",
) -> None:
    """Put an already loaded checkpoint's states into the given objects (checked)."""
    path = Path(source)
    if model is not None:
        _check_config(path, ckpt, model)
        _load_model(path, ckpt, model)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if ckpt.get(name) is None:
            raise CheckpointError(f"{path} holds no {name} state; it cannot resume training")
        try:
            obj.load_state_dict(ckpt[name])
        except (ValueError, KeyError, RuntimeError) as error:
            raise CheckpointError(
                f"the {name} state in {path} does not fit this {type(obj).__name__} "
                f"({error}); was it saved with other parameter groups?"
            ) from error


# ----- random number generator states as plain data ---------------------------------------
def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states, storable with weights_only loading."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Undo ``rng_states()``: the next random numbers continue where they were saved."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "torch" in states:
        torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])
