"""Weight-only int8 quantization for generation: 8-bit weights, float activations.

A decoding step multiplies one token's activations (1, C) by every weight matrix once, so
its time is the time to *read* the weights from memory (notes/05_decoding_speed.md).
Storing each weight in 1 byte instead of 4 (float32) or 2 (bfloat16) cuts that traffic.

Per output channel (one row of an ``nn.Linear`` weight W, shape (out, in)):

    s[j] = max_i |W[j, i]| / 127          one float scale per row, (out,)
    q[j, i] = round(W[j, i] / s[j])        int8 in [-127, 127], (out, in)
    W[j, i] ~ q[j, i] * s[j]               error at most s[j] / 2 per weight

and a linear layer computes ``y = (x @ q.T) * s + b``: the scale factors out of the dot
product of each row, so the matmul can run on the int8 values and scale once at the end.

Toy row: W[j] = [0.50, -1.27, 0.02]  ->  s = 1.27 / 127 = 0.01,
q = [50, -127, 2], and q * s = [0.50, -1.27, 0.02] (exact here; in general within s/2).

The scales are rounded to float16 first, the format llama.cpp's q8_0 blocks store theirs
in, so that ``export_gguf --dtype q8_0`` writes exactly these weights (every 32-weight
block of a row gets the row's scale) and llama.cpp computes with the same numbers.

Activations stay float32 (or bfloat16): only weights are quantized, so nothing about the
model's inputs needs calibrating. LayerNorms, biases and the position table (a few
thousand numbers per layer) stay in float.
"""

from __future__ import annotations

import warnings
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_devices = import_module("sprints.01_setup_and_basics.results.devices")

QMAX = 127  # symmetric: -127..127, so that q and -q are both representable


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (AVX-512 VNNI or AVX-VNNI): int8 dot products summed in
    int32. Read from /proc/cpuinfo (Linux); elsewhere assumed absent, the safe choice."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


# fbgemm's one-row int8 kernel without VNNI needs 7-bit activations (see Int8Linear.forward).
REDUCE_RANGE = not cpu_has_vnni()


def quantize_per_channel(weight: Tensor) -> tuple[Tensor, Tensor]:
    """weight (out, in) float -> (q int8 (out, in), scales float32 (out,)), see module doc."""
    if weight.dim() != 2:
        raise ValueError(
            f"per-channel int8 needs a 2-D weight (out, in), got {tuple(weight.shape)}")
    w = weight.detach().float()
    amax = w.abs().amax(dim=1)  # (out,)
    # float16 scales (q8_0's); a row of zeros gets the smallest normal float16, never 0/0.
    target = (amax / QMAX).clamp(min=torch.finfo(torch.float16).tiny)
    scales = target.half()
    # Round the scale up, never down, so that |w| / s <= 127 and no weight is clipped:
    # every weight then lies within s/2 of q * s.
    up = torch.nextafter(scales, torch.full_like(scales, float("inf")))
    scales = torch.where(scales.float() < target, up, scales).float()
    if not torch.isfinite(scales).all():
        raise ValueError("a weight row's largest value exceeds float16's range (127 * 65504)")
    q = torch.round(w / scales[:, None]).clamp(-QMAX, QMAX).to(torch.int8)  # (out, in)
    return q, scales


def dequantize(q: Tensor, scales: Tensor) -> Tensor:
    """(out, in) int8 and (out,) scales -> the float32 weight they stand for."""
    return q.float() * scales[:, None]


def _int8_activation_kernel_ok() -> bool:
    """fbgemm, PyTorch's x86 int8 GEMM library, is built in on x86-64 CPUs."""
    return "fbgemm" in torch.backends.quantized.supported_engines


def pack_for_int8_activations(q: Tensor, scales: Tensor, bias: Tensor | None):
    """fbgemm's packed form of (q, scales, bias) for ``torch.ops.quantized.linear_dynamic``,
    or None where fbgemm is missing (ARM, MPS, CUDA)."""
    if q.device.type != "cpu" or not _int8_activation_kernel_ok():
        return None
    if torch.backends.quantized.engine != "fbgemm":
        torch.backends.quantized.engine = "fbgemm"
    zero_points = torch.zeros(q.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # PyTorch has announced a replacement for qint8 tensors
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch._make_per_channel_quantized_tensor(q, scales.double(), zero_points, 0)
        return torch.ops.quantized.linear_prepack(
            qweight, None if bias is None else bias.float())


class Int8Linear(nn.Module):
    """``nn.Linear`` with int8 weights and per-output-channel scales (inference only).

    Three kernels. Several rows at once (a prompt, an evaluation): weight-only, the float
    activations times the int8 weights converted to their dtype, scaled after the matmul.
    On a CPU with bfloat16 hardware (AVX-512 BF16 or AMX), float32 rows are multiplied in
    bfloat16 instead, about 3.7 times faster for a 512-token prompt: every int8 value is
    exact in bfloat16 (it holds integers up to 256), the rows are rounded to bfloat16's 8
    significant bits, the sums are float32 and the result is rounded to bfloat16 once,
    finer steps than the weights' own int8 rounding (a relative error of about 0.3% of the
    largest output, against about 1% from int8 weights).
    One row (a decoding step) on an x86 CPU: that row is itself quantized to int8 with one
    scale (as llama.cpp's q8_0 does per 32 values) and fbgemm's int8 x int8 GEMM with int32
    sums runs, at the speed of reading the int8 weights (notes/05_decoding_speed.md).
    ``int8_activations=False`` keeps every row weight-only in the activations' own dtype:
    the exact reference.
    """

    def __init__(self, q: Tensor, scales: Tensor, bias: Tensor | None,
                 int8_activations: bool = True) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.register_buffer("q", q)  # (out, in) int8
        self.register_buffer("scales", scales)  # (out,) in the activations' dtype
        self.register_buffer("bias", bias)  # (out,) or None
        # fbgemm's own copy of q, the scales and the bias (an opaque packed object)
        self.packed = (pack_for_int8_activations(q, scales.float(), bias)
                       if int8_activations else None)
        # float32 rows through bfloat16 hardware (see the class doc)
        self.bf16_rows = (int8_activations and q.device.type == "cpu"
                          and _devices.cpu_has_fast_bf16())

    @classmethod
    def from_linear(cls, linear: nn.Linear, dtype: torch.dtype = torch.float32,
                    int8_activations: bool = True) -> Int8Linear:
        q, scales = quantize_per_channel(linear.weight)
        bias = None if linear.bias is None else linear.bias.detach().to(dtype)
        device = linear.weight.device
        return cls(q.to(device), scales.to(device, dtype), bias, int8_activations)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2d = x.reshape(-1, self.in_features)  # (..., in) -> (N, in)
        if self.packed is not None and x2d.size(0) == 1 and x2d.device.type == "cpu":
            # (1, in) -> (1, out), float32 in and out, bias included. With VNNI the
            # products are summed in int32 and the activations get all 8 bits; without it
            # (AVX2 only) fbgemm sums pairs of u8 x s8 products in saturating int16, so the
            # activations must use 7 bits (reduce_range) or large sums clip.
            y = torch.ops.quantized.linear_dynamic(x2d.float(), self.packed, REDUCE_RANGE)
            return y.to(x.dtype).view(*shape[:-1], self.out_features)
        # x @ (q * s).T == (x @ q.T) * s: the scales apply to the output columns
        if self.bf16_rows and x2d.dtype == torch.float32 and x2d.device.type == "cpu":
            y = F.linear(x2d.bfloat16(), self.q.to(torch.bfloat16)).float() * self.scales
        else:
            y = F.linear(x2d, self.q.to(x2d.dtype)) * self.scales
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        kernel = "int8 activations for one row" if self.packed is not None else "weight-only"
        if self.bf16_rows:
            kernel += ", bfloat16 products for several rows"
        return f"in_features={self.in_features}, out_features={self.out_features}, {kernel}"


class Int8Embedding(nn.Module):
    """The token embedding, stored as int8 rows with one scale per token. A tied GPT reuses
    the same (q, scales) as its output projection (an ``Int8Linear`` sharing the buffers)."""

    def __init__(self, q: Tensor, scales: Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = q.shape
        self.register_buffer("q", q)  # (V, C) int8
        self.register_buffer("scales", scales)  # (V,)

    def forward(self, idx: Tensor) -> Tensor:
        # (B, T) -> (B, T, C): gather the rows, then scale each by its token's scale
        return self.q[idx].to(self.scales.dtype) * self.scales[idx].unsqueeze(-1)


@torch.no_grad()
def quantize_int8(model: nn.Module, dtype: torch.dtype | None = None,
                  int8_activations: bool = True) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` of a sprint 8 GPT and its token embedding by
    int8 versions; the rest (LayerNorms, biases, positions) is cast to ``dtype`` (default:
    the model's current dtype), the dtype the activations will have. Returns the model.

    The tied output projection keeps sharing the embedding's int8 matrix, so the model's
    size drops to about a quarter of float32's (see ``weight_bytes``).
    """
    dtype = dtype or next(model.parameters()).dtype
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"int8 weights need float activations, got dtype {dtype}")
    wte = model.transformer.wte
    tied = model.lm_head.weight is wte.weight
    q, scales = quantize_per_channel(wte.weight)
    scales = scales.to(wte.weight.device, dtype)
    q = q.to(wte.weight.device)
    model.transformer.wte = Int8Embedding(q, scales)
    if tied:
        # the same buffers, not a copy
        model.lm_head = Int8Linear(q, scales, None, int8_activations)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear.from_linear(child, dtype, int8_activations))
    model.to(dtype)  # floats only: int8 buffers keep their dtype (to() skips integers)
    return model.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (a shared one counted once)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


__all__ = ["quantize_per_channel", "dequantize", "Int8Linear", "Int8Embedding",
           "quantize_int8", "weight_bytes"]
