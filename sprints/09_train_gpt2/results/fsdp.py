"""Fully sharded data parallel (FSDP2, ``torch.distributed.fsdp.fully_shard``) for train_gpt2:
for models whose weights, gradients and AdamW moments do not fit one device.

DDP keeps a whole copy of the model, its gradients and its optimizer state on every process
and all-reduces the gradients. FSDP keeps 1/N of each on each of N processes: before a block
runs, its weights are all-gathered from the shards, and after its backward the gradients are
reduce-scattered, so each process ends the step holding the gradient of its own shard, and
the optimizer updates only that shard. The arithmetic is the same as DDP's, so the losses
are the same (tests/test_sprint09.py compares two FSDP processes with one plain process).

Units: each transformer block is one FSDP unit (gathered just for its own forward and
backward); the root unit holds the rest: the embeddings, the final LayerNorm and the output
layer, which are one tied matrix and must therefore live in the same unit.

Checkpoints hold the FULL state (every weight whole, AdamW moments keyed like a one-process
optimizer), gathered onto rank 0, so an FSDP checkpoint loads into a one-process run, a DDP
run or FSDP on another number of processes.
"""

from __future__ import annotations

import sys

import torch
from torch import nn


def shard_model(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """Shard ``model`` (sprint 8's GPT) in place over all processes and return it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(device.type, (world_size,))
    for block in model.transformer.h:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # The chunked loss calls model.hidden_states(), not forward(): register it so that the
    # root unit gathers its weights (embeddings, ln_f) around that call too.
    register_fsdp_forward_method(model, "hidden_states")
    return model


def is_sharded(model: nn.Module) -> bool:
    if "torch.distributed.fsdp" not in sys.modules:  # never imported: nothing is sharded
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """FSDP's counterpart of DDP's ``no_sync()``: skip the reduce-scatter on the micro-steps
    of gradient accumulation that are not the last."""
    model.set_requires_gradient_sync(enabled)


def _option(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_model_state(model: nn.Module) -> dict:
    """All weights whole, on the CPU, on rank 0 (an empty dict elsewhere). A collective."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_option(cpu_offload=True))


def _index_of_names(model: nn.Module, optimizer) -> dict[str, int]:
    """Parameter name -> the integer a one-process ``optimizer.state_dict()`` would use
    (positions in the order of the param groups; each tied weight once, under its first name)."""
    names = {}
    for name, p in model.named_parameters():  # named_parameters skips the tied duplicate
        names.setdefault(id(p), name)
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    return {name: i for i, name in enumerate(order)}


def full_optimizer_state(model: nn.Module, optimizer) -> dict:
    """The AdamW state of all shards, gathered on rank 0 and keyed like a one-process
    ``torch.optim.AdamW.state_dict()`` (integer ids), so any run can load it. A collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=_option(cpu_offload=True))
    if not by_name:
        return {}
    index = _index_of_names(model, optimizer)
    groups = [dict(g, params=[index[n] for n in g["params"]]) for g in by_name["param_groups"]]
    return {"state": {index[n]: s for n, s in by_name["state"].items()}, "param_groups": groups}


def load_full_optimizer_state(model: nn.Module, optimizer, state: dict) -> None:
    """Undo ``full_optimizer_state`` into a sharded model's optimizer (every rank passes the
    whole dict; each keeps its shard). A collective."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    name_of = {i: n for n, i in _index_of_names(model, optimizer).items()}
    groups = [dict(g, params=[name_of[i] for i in g["params"]]) for g in state["param_groups"]]
    by_name = {"state": {name_of[int(i)]: s for i, s in state["state"].items()},
               "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, by_name, options=_option())
