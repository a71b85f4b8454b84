"""The language-modelling loss, computed without materialising the full logits.

The objective: for every position t, the model's distribution over the next token,
p(x_{t+1} | x_{<=t}) = softmax(h_t W^T), should put high probability on the token that came:

    loss = mean_t  -log softmax(h_t W^T)[x_{t+1}]          h: (N, C), W: (V, C), N = B*T

With GPT-2's V = 50,257 and N = 16 * 256 = 4,096, the logits h W^T are a (4096, 50257) matrix:
823 MB in float32, written, read back by softmax, by its backward, ... several times a step.
``linear_cross_entropy`` walks over N in chunks and, because the loss is the last thing the
graph computes, also works out its gradients right there (d loss / d logits = softmax - onehot):

    for each chunk c:  logits_c = h_c W^T                  (n_c, V)   matmul 1
                       p_c = softmax(logits_c)              (n_c, V)   loss_c = -log p_c[target]
                       g_c = (p_c - onehot_c) / N
                       dh_c = g_c W                         (n_c, C)   matmul 2
                       dW  += g_c^T h_c                     (V, C)     matmul 3

Three matmuls, as autograd would do, but only one (n_c, V) block alive at a time. The backward
pass just scales the stored dh and dW by the incoming gradient (1.0 for a plain loss).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IGNORE_INDEX = -100


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, targets, chunk_size, compute_dtype):
        n = h.shape[0]
        need_grad_h, need_grad_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_grad = need_grad_h or need_grad_w  # a frozen head (LoRA) skips the (V, C) product
        hc = h.to(compute_dtype)
        wc = weight.to(compute_dtype)
        valid = targets != IGNORE_INDEX
        count = max(int(valid.sum()), 1)
        safe_targets = torch.where(valid, targets, torch.zeros_like(targets))
        all_valid = bool(valid.all())
        loss_sum = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = (torch.empty(h.shape, dtype=compute_dtype, device=h.device) if need_grad_h
                  else None)
        grad_w = (torch.zeros(weight.shape, dtype=torch.float32, device=h.device)
                  if need_grad_w else None)
        for s, e in _chunks(n, chunk_size):
            logits = hc[s:e] @ wc.T  # (n_c, C) @ (C, V) -> (n_c, V)
            # The softmax kernel sums the exponentials in float32 whatever its dtype. When
            # gradients are needed it returns compute_dtype (bf16 under autocast): the
            # gradient feeds bf16 matmuls anyway, and skipping a float32 copy of the (n_c, V)
            # block halves the memory traffic, the bottleneck here. Evaluation (no grad) keeps
            # float32 probabilities, so the reported validation loss is not rounded to bf16.
            probs = torch.softmax(logits, dim=-1,
                                  dtype=compute_dtype if need_grad else torch.float32)
            del logits
            rows = torch.arange(e - s, device=h.device)
            t = safe_targets[s:e]
            p_target = probs[rows, t].float()
            v = valid[s:e]
            # -log p; clamp only guards log(0) when a probability underflows.
            nll = -torch.log(p_target.clamp_min(torch.finfo(torch.float32).tiny))
            loss_sum += nll.masked_fill(~v, 0.0).sum() if not all_valid else nll.sum()
            if not need_grad:
                continue
            probs[rows, t] = (p_target - 1.0).to(probs.dtype)  # d(-log p_t)/d logits = p - onehot
            if not all_valid:
                probs[~v] = 0.0  # ignored positions contribute nothing
            g = probs  # (n_c, V), compute_dtype
            if need_grad_h:
                grad_h[s:e] = g @ wc  # (n_c, V) @ (V, C) -> (n_c, C)
            if not need_grad_w:
                continue
            if compute_dtype == torch.float32:
                grad_w.addmm_(g.T, hc[s:e])  # (V, n_c) @ (n_c, C) -> (V, C)
            else:
                grad_w += g.T @ hc[s:e]
        if need_grad:
            ctx.save_for_backward(grad_h, grad_w)
            ctx.scale = 1.0 / count
            ctx.dtypes = (h.dtype, weight.dtype)
        return loss_sum / count

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors  # either may be None (not needed)
        scale = grad_out * ctx.scale
        h_dtype, w_dtype = ctx.dtypes
        return ((grad_h * scale).to(h_dtype) if grad_h is not None else None,
                (grad_w * scale).to(w_dtype) if grad_w is not None else None, None, None, None)


def linear_cross_entropy(h: Tensor, weight: Tensor, targets: Tensor, chunk_size: int = 2048,
                         compute_dtype: torch.dtype | None = None) -> Tensor:
    """Mean cross-entropy of logits ``h @ weight.T`` (h (N, C), weight (V, C), targets (N,))
    without building all N x V logits at once. ``compute_dtype`` is the dtype of the matmuls
    (bfloat16 under autocast). The softmax kernel accumulates in float32; it returns float32
    probabilities when no gradient is needed (evaluation), and ``compute_dtype`` ones (bf16
    under autocast) when training. -100 targets are skipped."""
    if compute_dtype is None:
        compute_dtype = (torch.get_autocast_dtype(h.device.type)
                         if torch.is_autocast_enabled(h.device.type) else h.dtype)
    with torch.autocast(h.device.type, enabled=False):
        return _LinearCrossEntropy.apply(h, weight, targets, chunk_size, compute_dtype)


class LanguageModelLoss(nn.Module):
    """Wraps a GPT so that ``forward(x, y)`` returns the mean next-token loss.

    DistributedDataParallel wraps this module (its forward is what DDP hooks into).
    ``chunk_size`` > 0 uses ``linear_cross_entropy``; 0 uses the GPT's own forward.
    """

    def __init__(self, model: nn.Module, chunk_size: int = 0):
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.chunk_size <= 0:
            _, loss = self.model(x, y)
            return loss
        h = self.model.hidden_states(x)  # (B, T, C): sprint 8's GPT up to ln_f
        B, T, C = h.shape
        # (B, T, C) -> (B*T, C) rows against (B*T,) targets
        return linear_cross_entropy(h.reshape(B * T, C), self.model.lm_head.weight,
                                    y.reshape(B * T), self.chunk_size)
