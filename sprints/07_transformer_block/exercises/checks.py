"""Checks for the sprint 7 exercises; references: nn.LayerNorm, F.gelu,
nn.TransformerEncoderLayer."""

import torch
import torch.nn.functional as F
from torch import nn

from sprints.check import expect_close


def check_ex01_layer_norm(m):
    for shape, eps in [((2, 8), 1e-5), ((2, 3, 16), 1e-3)]:
        ours, ref = m.LayerNorm(shape[-1], eps=eps), nn.LayerNorm(shape[-1], eps=eps)
        with torch.no_grad():
            for p in (ref.weight, ref.bias):
                p.copy_(torch.randn_like(p))
            ours.weight.copy_(ref.weight)
            ours.bias.copy_(ref.bias)
        x = torch.randn(shape) * 3 + 1
        expect_close(f"LayerNorm({shape[-1]}, eps={eps}) on x of shape {shape}, random weight "
                     "and bias", ours(x), ref(x))


def check_ex02_gelu(m):
    x = torch.linspace(-6, 6, 49)
    expect_close("gelu_tanh(linspace(-6, 6, 49))", m.gelu_tanh(x), F.gelu(x, approximate="tanh"))


def check_ex03_pre_norm_block(m):
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True).eval()
    x = torch.randn(2, 5, 16)
    mask = nn.Transformer.generate_square_subsequent_mask(5)

    def attn(h):
        return layer.self_attn(h, h, h, attn_mask=mask, need_weights=False)[0]

    def ffn(h):
        return layer.linear2(F.gelu(layer.linear1(h)))

    with torch.no_grad():
        expect_close("pre_norm_block(x (2, 5, 16), parts of nn.TransformerEncoderLayer(norm_first"
                     "=True), causal)", m.pre_norm_block(x, layer.norm1, attn, layer.norm2, ffn),
                     layer(x, src_mask=mask))


def check_ex04_layer_norm_backward(m):
    for shape, eps in [((3, 5), 1e-5), ((2, 4, 6), 1e-2)]:
        x = (torch.randn(shape, dtype=torch.float64) * 2 + 1).requires_grad_()
        weight = torch.randn(shape[-1], dtype=torch.float64, requires_grad=True)
        bias = torch.randn(shape[-1], dtype=torch.float64, requires_grad=True)
        out = F.layer_norm(x, shape[-1:], weight, bias, eps)
        grad_out = torch.randn_like(out)
        out.backward(grad_out)
        got = m.layer_norm_backward(x.detach(), weight.detach(), grad_out, eps)
        call = f"layer_norm_backward(x of shape {shape}, eps={eps})"
        for name, g, ref in zip(["grad_x", "grad_weight", "grad_bias"], got,
                                [x.grad, weight.grad, bias.grad], strict=True):
            expect_close(f"{name} of {call} against autograd through F.layer_norm", g, ref,
                         atol=1e-9)


CHECKS = [check_ex01_layer_norm, check_ex02_gelu, check_ex03_pre_norm_block,
          check_ex04_layer_norm_backward]
