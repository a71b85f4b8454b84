"""Which precision to train in (``--dtype``), chosen per device and, on a CPU, per instruction
set, because bfloat16 only pays where the hardware multiplies bf16 matrices.

bfloat16 here means autocast: the weights and the optimizer stay float32, and the matmuls
run in bf16. float16 is not offered: its 5-bit exponent needs loss scaling, which bf16 (float32's
8-bit exponent) does not.
"""

from __future__ import annotations

import contextlib
from importlib import import_module

import torch

_devices = import_module("sprints.01_setup_and_basics.results.devices")

def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``--dtype`` -> a torch dtype; ``auto`` picks what measured faster for this device.

    Measured on a 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no), one training step
    of the earlier speedrun's 2 x 192 model: 82.7 ms float32, 46.9 ms bf16 autocast (with the
    math attention kernel, see ``autocast``); the 2 x 96 speedrun (240 steps of 64 x 64) took
    16.8 / 15.7 s in float32 against 11.7 / 10.8 s in bf16; at 6 x 384 with GPT-2's
    vocabulary bf16 was faster too (README). Without bf16 hardware bf16 is emulated and
    slower than float32, so auto keeps float32 there.
    """
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        check_bf16(device)
        return torch.bfloat16
    return torch.bfloat16 if bf16_is_fast(device) else torch.float32  # MPS: float32


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls beat float32 here: CUDA GPUs with bf16, CPUs with AMX or AVX-512
    BF16 (not MPS: not measured)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _devices.cpu_has_fast_bf16()


def check_bf16(device: torch.device) -> None:
    """bfloat16 autocast must exist on the device (old NVIDIA GPUs and old macOS lack it)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("--dtype bfloat16: this GPU has no bfloat16 support (it needs an "
                         "Ampere or newer GPU); use --dtype float32")
    if device.type == "mps":
        newer = getattr(torch.backends.mps, "is_macos_or_newer", None)
        if newer is not None and not newer(14, 0):
            raise ValueError("--dtype bfloat16 on MPS needs macOS 14 or newer; use --dtype "
                             "float32")


def autocast(device: torch.device, dtype: torch.dtype):
    """The context every forward runs under: nothing for float32, autocast otherwise.

    On a CPU in bf16 it also selects PyTorch's "math" attention (two matmuls and a softmax)
    instead of its CPU flash-attention kernel, whose bf16 backward is slow: forward + backward
    of the speedrun's attention (24 x 4 heads x 64 x 32) took 6.9 ms with the flash kernel and
    2.8 ms with math on a 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no; float32
    flash: 3.1 ms). The backward runs the kernel its forward chose.
    """
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if device.type != "cpu":
        return torch.autocast(device.type, dtype=dtype)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast("cpu", dtype=dtype))
    stack.enter_context(sdpa_kernel(SDPBackend.MATH))
    return stack
