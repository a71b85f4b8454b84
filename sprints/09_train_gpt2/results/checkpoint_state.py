"""What a train_gpt2 checkpoint holds, and how a run continues from one.

A checkpoint is sprint 8's format (``utils.save_checkpoint``: written to a temporary file, then
``os.replace``d, read back with ``weights_only=True``) filled with everything an exact resume
needs: weights, optimizer moments, step, tokens seen, the RNG states of every process, the
tokenizer (a character vocabulary is part of the model) and the settings.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import torch

from . import fsdp
from .settings import plain_args
from .train_step import TrainingError

_utils = import_module("sprints.08_gpt2_assembly.results.utils")
_tokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer")


def gather_training_state(model, optimizer) -> tuple[dict, dict]:
    """(model state, optimizer state), each whole, for a checkpoint.

    Under FSDP every process holds a shard: this is then a collective (every rank calls it)
    that gathers the full dicts onto rank 0, keyed exactly like a one-process run's.
    """
    if not fsdp.is_sharded(model):
        return model.state_dict(), optimizer.state_dict()
    optimizer_state = {name: fsdp.full_optimizer_state(model, opt)
                       for name, opt in optimizer.optimizers.items()}
    return fsdp.full_model_state(model), optimizer_state


def save_state(path: Path, model_state: dict, optimizer_state: dict, config: dict, step: int,
               tokens_seen: int, best_val: float, tokenizer, args, elapsed: float,
               rank_rngs: list | None = None) -> None:
    """Atomic (sprint 8's save_checkpoint: temp file + os.replace). ``rank_rngs``: every
    process's RNG states under torchrun (index = rank), None for a single process."""
    extra = {"tokenizer": _tokenizer.tokenizer_to_record(tokenizer), "best_val_loss": best_val,
             "elapsed_s": elapsed, "args": plain_args(args)}
    if rank_rngs is not None:
        extra["rank_rng_states"] = rank_rngs
    _utils.save_checkpoint(
        path, model=model_state, optimizer=optimizer_state, scheduler=None, step=step,
        config=config, data_position={"step": step, "tokens_seen": tokens_seen, "seed": args.seed},
        rng_states=rank_rngs[0] if rank_rngs is not None else _utils.rng_states(),
        extra=extra,
    )


def save_guarded(path: Path, *state) -> None:
    """save_state, turning any failure into a TrainingError that says the old file survived."""
    try:
        save_state(path, *state)
    except Exception as error:
        raise TrainingError(f"could not save checkpoint {path} ({type(error).__name__}: "
                            f"{error}); the previous {path.name} is left intact. Free disk "
                            "space or fix --out-dir, then --resume.") from error


@dataclass
class Progress:
    """Where a run stands: what the loop carries from step to step and what a resume restores."""

    step: int = 0
    tokens_seen: int = 0
    best_val: float = math.inf
    elapsed_before: float = 0.0  # seconds spent by the runs this one continues


def restore_weights(ckpt: dict, model, source: Path) -> None:
    """The checkpoint's weights into the (not yet sharded) model. Refuses (CheckpointError) a
    checkpoint of another model configuration."""
    _utils.restore_checkpoint(ckpt, model=model, source=source)


def restore_progress(ckpt: dict, model, optimizer, source: Path, seed: int, rank: int,
                     world_size: int) -> Progress:
    """Load the optimizer state and RNG states from ``ckpt`` and return its progress (the
    weights are loaded first, by ``restore_weights``, before the model is sharded)."""
    if fsdp.is_sharded(model):
        state = ckpt.get("optimizer") or {}
        if set(state) != set(optimizer.optimizers):
            raise _utils.CheckpointError(
                f"the optimizer state in {source} has parts {sorted(state)}, this run's "
                f"optimizer has {sorted(optimizer.optimizers)}; resume with the same "
                "--optimizer")
        for name, opt in optimizer.optimizers.items():
            fsdp.load_full_optimizer_state(model, opt, state[name])
    else:
        _utils.restore_checkpoint(ckpt, optimizer=optimizer, source=source)
    progress = Progress(step=int(ckpt["step"]),
                        tokens_seen=int(ckpt["data_position"]["tokens_seen"]),
                        best_val=float(ckpt["extra"].get("best_val_loss", math.inf)),
                        elapsed_before=float(ckpt["extra"].get("elapsed_s", 0.0)))
    saved_rngs = ckpt["extra"].get("rank_rng_states")
    if saved_rngs is not None and len(saved_rngs) == world_size:
        _utils.set_rng_states(saved_rngs[rank])  # this rank's own stream
    else:
        # One process, or another number of processes than the run that saved: rank 0's
        # state (exact for one process; with dropout and several processes the masks then
        # differ from an uninterrupted run). The other ranks re-seed so that no two ranks
        # share one dropout stream.
        _utils.set_rng_states(ckpt["rng_states"])
        if rank > 0:
            torch.manual_seed(seed + 1000 * (rank + 1) + progress.step)
        saved_by = len(saved_rngs) if saved_rngs else 1
        if rank == 0 and saved_by != world_size:
            print(f"warning: {source} holds the RNG states of {saved_by} process(es), this "
                  f"run has {world_size}: it continues correctly, but not bit for bit like an "
                  "uninterrupted run", file=sys.stderr)
    return progress


def gather_rank_rngs(world_size: int) -> list | None:
    """Every rank's RNG states (each draws its own dropout masks); None for one process.
    A collective: every rank must call it at the same step."""
    if world_size == 1:
        return None
    import torch.distributed as dist

    rank_rngs = [None] * world_size
    dist.all_gather_object(rank_rngs, _utils.rng_states())
    return rank_rngs
