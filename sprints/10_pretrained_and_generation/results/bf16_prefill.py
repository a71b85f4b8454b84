"""A bfloat16 model's prompt on a CPU without bfloat16 arithmetic: float32 matrix products.

CPUs with AMX or AVX-512 BF16 multiply bfloat16 matrices in hardware. Others (AVX2 only,
ARM without bf16 units) have PyTorch convert each bfloat16 value as it goes, and a product
with many rows, a prompt's prefill, becomes several times slower than the same product in
float32. One decoding step (one row) is memory-bound instead, and there bfloat16 wins
because it reads half the bytes. So during a prefill of at least ``MIN_ROWS`` rows each
bfloat16 ``nn.Linear`` converts its weight to float32 and multiplies in float32:

    y = F.linear(x.float(), W.float(), b.float()).to(bfloat16)      x (rows, in), W (out, in)

Converting W costs one read of W and one write of a float32 copy that lives only for that
call, small against ``rows`` multiply-adds per weight. The result is rounded to bfloat16
as the bfloat16 product's is; the two differ only in the order of float32 sums.

Measured on a 2-core AMD EPYC (AVX-512 no, AVX-512 BF16 no, AMX no), 12 matrices of
3072 x 768: with 64 rows 180 ms in bfloat16 and 40 ms converted; with 8 rows 22.9 ms and
13.8 ms; with 4 rows about even (12.2 and 13.2 ms), hence ``MIN_ROWS = 8``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from importlib import import_module

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_devices = import_module("sprints.01_setup_and_basics.results.devices")

MIN_ROWS = 8


def needed(model: nn.Module) -> bool:
    """True for a model with bfloat16 weights on a CPU that has no bfloat16 arithmetic."""
    weight = next(model.parameters(), None)
    return (weight is not None and weight.dtype == torch.bfloat16
            and weight.device.type == "cpu" and not _devices.cpu_has_fast_bf16())


def _float32_linear(module: nn.Linear, x: Tensor) -> Tensor:
    if x.numel() // module.in_features < MIN_ROWS:  # a few rows: bfloat16 reads fewer bytes
        return F.linear(x, module.weight, module.bias)
    bias = None if module.bias is None else module.bias.float()
    return F.linear(x.float(), module.weight.float(), bias).to(x.dtype)


# Threads generating with one model at once share its patch: the first block to open
# installs it, the last to close removes it (a count per model, under a lock).
_lock = threading.Lock()
_open_blocks: dict[int, int] = {}  # id(model) -> blocks open on it


def _set_patch(model: nn.Module, on: bool) -> None:
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.dtype == torch.bfloat16:
            if on:
                module.forward = partial(_float32_linear, module)  # shadows Linear.forward
            else:
                vars(module).pop("forward", None)  # back to nn.Linear.forward


@contextmanager
def float32_linears(model: nn.Module) -> Iterator[None]:
    """Inside the block, the model's bfloat16 ``nn.Linear`` layers multiply in float32 (see
    the module doc) where ``needed(model)``; elsewhere, and after the block, nothing changes."""
    if not needed(model):
        yield
        return
    key = id(model)
    with _lock:
        _open_blocks[key] = _open_blocks.get(key, 0) + 1
        if _open_blocks[key] == 1:
            _set_patch(model, True)
    try:
        yield
    finally:
        with _lock:
            _open_blocks[key] -= 1
            if _open_blocks[key] == 0:
                del _open_blocks[key]
                _set_patch(model, False)


__all__ = ["MIN_ROWS", "float32_linears", "needed"]
