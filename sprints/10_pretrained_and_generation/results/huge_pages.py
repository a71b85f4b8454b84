"""Move a model's large CPU tensors into memory backed by 2 MB pages (Linux), for decoding.

A decoding step streams every weight from memory once (notes/05_decoding_speed.md). The
CPU translates each virtual address through its TLB, a small cache of page-table entries:
with ordinary 4 KB pages, GPT-2 small's 500 MB of float32 weights span 122,000 pages, far
more than the TLB holds, so the stream keeps stopping for page-table walks. With 2 MB pages
the same weights span 250 pages.

Linux gives a process 2 MB pages ("transparent huge pages") where it asks for them with
``madvise(MADV_HUGEPAGE)``, when /sys/kernel/mm/transparent_hugepage/enabled says
``[madvise]`` (a common default). PyTorch's CPU allocator does not ask (unless the
environment variable THP_MEM_ALLOC_ENABLE=1 is set before it starts); numpy does, for
every array of 4 MB or more. So ``use_huge_pages(model)`` copies each large parameter and
buffer into a numpy-allocated block and points the tensor at it (``param.data = ...``): the
same Parameter objects, values and sharing (a tied embedding stays one matrix), no extra
memory once the old blocks are freed. Where the kernel already uses huge pages for
everything (``[always]``) or never does, or on other systems, nothing is copied.

Measured on GPT-2 small float32 decoding with numba_step.py: see the sprint 10 README.
"""

from __future__ import annotations

import functools
import platform
import threading
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

MIN_BYTES = 64 << 10  # smaller tensors (LayerNorms, biases) are not worth moving
_ALIGN = 64  # bytes: every tensor in a block starts on a cache line
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
# storage address -> the numpy block behind it, for as long as some tensor uses that block
_BLOCKS: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


@functools.cache  # a fact of the running system: read its file once
def helps() -> bool:
    """True where copying helps: Linux with transparent huge pages on request only, and a
    numpy that requests them."""
    if platform.system() != "Linux":
        return False
    try:
        mode = _THP.read_text()
    except OSError:
        return False
    advises = getattr(np._core.multiarray, "_get_madvise_hugepage", lambda: False)()
    return "[madvise]" in mode and bool(advises)


def on_huge_pages(t: torch.Tensor) -> bool:
    """Whether ``t`` lives in a block that use_huge_pages allocated."""
    return t.untyped_storage().data_ptr() in _BLOCKS


def _candidates(model: nn.Module):
    """(module, "_parameters" or "_buffers", name, tensor) of every large CPU tensor not yet
    moved; a tensor held by two modules (a tied embedding) is listed twice."""
    for module in model.modules():
        for kind in ("_parameters", "_buffers"):
            for name, t in getattr(module, kind).items():
                if (t is not None and t.device.type == "cpu" and t.is_contiguous()
                        and t.numel() * t.element_size() >= MIN_BYTES and not on_huge_pages(t)):
                    yield module, kind, name, t


def empty_like(t: torch.Tensor) -> torch.Tensor:
    """An uninitialized tensor shaped like ``t`` in its own huge-page block (a KV cache's
    keys or values), or ``torch.empty_like(t)`` where huge pages do not help."""
    if not helps() or t.device.type != "cpu":
        return torch.empty_like(t)
    return _new_block(t.numel() * t.element_size()).view(t.dtype).view(t.shape)


def _new_block(nbytes: int) -> torch.Tensor:
    """``nbytes`` uninitialized bytes (uint8) allocated by numpy, which asks for huge pages;
    registered so that ``on_huge_pages`` recognizes every tensor carved from them."""
    block = np.empty(nbytes, dtype=np.uint8)
    base = torch.from_numpy(block)  # its storage keeps ``block`` alive
    _BLOCKS[base.untyped_storage().data_ptr()] = block
    return base


@torch.no_grad()
def use_huge_pages(model: nn.Module) -> int:
    """Move every CPU parameter and buffer of at least MIN_BYTES into one huge-page block
    (numpy asks the kernel for 2 MB pages for it). Tensors already there stay; returns the
    bytes moved (0 where ``helps()`` is False)."""
    if not helps():
        return 0
    with _LOCK:
        found = list(_candidates(model))
        offsets, total = {}, 0  # one slot per distinct storage view (shared ones once)
        for _, _, _, t in found:
            key = (t.data_ptr(), t.dtype, tuple(t.shape))
            if key not in offsets:
                offsets[key] = total
                total += -(-t.numel() * t.element_size() // _ALIGN) * _ALIGN
        if total == 0:
            return 0
        base = _new_block(total)
        new = {}
        for key, offset in offsets.items():
            _, dtype, shape = key
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            new[key] = base[offset: offset + nbytes].view(dtype).view(shape)
        copied = set()
        for module, kind, name, t in found:
            if on_huge_pages(t):  # a tied Parameter met again: moved the first time
                continue
            key = (t.data_ptr(), t.dtype, tuple(t.shape))
            if key not in copied:  # a buffer shared by two modules is copied once
                new[key].copy_(t)
                copied.add(key)
            if kind == "_parameters":
                t.data = new[key]  # the same Parameter object, new memory
            else:
                module._buffers[name] = new[key]
        return total


__all__ = ["use_huge_pages", "empty_like", "on_huge_pages", "helps", "MIN_BYTES"]
