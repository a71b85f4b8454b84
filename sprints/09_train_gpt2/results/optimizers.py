"""Optimizers for GPT training: AdamW with decay on 2-D weights only, optionally Muon.

Weight decay pulls weights toward zero. Matrices (linear layers, embeddings) benefit from that
regularisation; biases and LayerNorm gains are 1-D shift/scale parameters where decay only
fights the model, so they get none (the GPT-2 / nanoGPT convention).

Muon (``torch.optim.Muon``) orthogonalises the momentum of a 2-D hidden weight matrix with a
few Newton-Schulz iterations, so every direction of the update moves at a similar rate. It is
meant only for the hidden matrices of the transformer blocks; embeddings, the output head and
all 1-D parameters stay on AdamW.
"""

from __future__ import annotations

import math
import sys

import torch
from torch import nn

# torch.optim.Muon's defaults (Keller Jordan's quintic Newton-Schulz coefficients).
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)


def skip_dynamo_import() -> None:
    """Keep ``torch.optim`` from importing TorchDynamo (torch.compile's tracer) when the run
    does not compile: 5-7 s of a 45 s speedrun on this machine.

    Several ``torch.optim.Optimizer`` methods are wrapped by ``torch._disable_dynamo``, which
    imports ``torch._dynamo`` at their first call only to build the "do not trace me" version
    of the method. Pre-seeding the cache attribute that wrapper looks up (the method itself)
    makes the call go straight to the method. Without torch.compile nothing traces, so
    nothing changes but the start-up time. Call it only when not compiling.
    """
    if "torch._dynamo" in sys.modules:
        return
    for cls in (torch.optim.Optimizer, torch.optim.AdamW, torch.optim.Adam):
        for attr in vars(cls).values():
            code = getattr(attr, "__code__", None)
            inner = getattr(attr, "__wrapped__", None)
            if code is not None and inner is not None and code.co_qualname.startswith(
                    "_disable_dynamo.<locals>.inner"):
                setattr(inner, "__dynamo_disable", inner)


class AdamWNoDynamo(torch.optim.AdamW):
    """torch.optim.AdamW, with ``step`` entered without its decorator
    ``_use_grad_for_differentiable``, whose only jobs are ``import torch._dynamo`` (several
    seconds here) to insert a graph break for torch.compile, and no_grad. Same update, same
    state_dict; used only when nothing is compiled."""

    def step(self, closure=None):
        with torch.no_grad():
            return _ADAMW_STEP(self, closure)


_ADAMW_STEP = getattr(torch.optim.AdamW.step, "__wrapped__", None)


def newton_schulz(g: torch.Tensor, steps: int = 5, eps: float = 1e-7,
                  coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Approximate orthogonalisation U V^T of each matrix in a batch g (k, A, B), computed in
    ``dtype`` (torch.optim.Muon uses bfloat16; the iteration only needs a rough answer).

    The same iteration as torch.optim.Muon's ``_zeropower_via_newtonschulz``:
    X <- a X + (b G + c G^2) X with G = X X^T, after scaling X to spectral norm <= 1.
    """
    a, b, c = coefficients
    x = g.to(dtype)
    wide = x.size(-2) > x.size(-1)
    if wide:
        x = x.mT  # iterate on the short side: (k, A, B) -> (k, B, A)
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT  # (k, r, r)
        update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2
        x = torch.baddbmm(x, update, x, beta=a)  # a X + (b G + c G^2) X
    return x.mT if wide else x


class BatchedMuon(torch.optim.Optimizer):
    """torch.optim.Muon's update rule, with the Newton-Schulz iteration run once per SHAPE
    (all same-shaped matrices stacked into one batched matmul), in ``ns_dtype``.

    On a 2-core Xeon torch's Muon cost 24 ms per step for the speedrun model's 16 small
    matrices: 16 x 5 iterations of tiny bf16 matmuls, where the per-call overhead dominates.
    Batched, the 16 matrices are 4 stacks. Same momentum (Nesterov), same learning-rate
    adjustment (``"original"``: lr * sqrt(max(1, A / B))), same decoupled weight decay.
    ``ns_dtype``: float32, or bfloat16 where bf16 matmuls are fast (a GPU, a CPU with AMX or
    AVX-512 BF16): 15.1 -> 4.5 ms per step for the speedrun's matrices on a 2-core AMD EPYC
    (AVX-512 yes, AVX-512 BF16 yes, AMX no).
    """

    def __init__(self, params, lr: float = 0.02, weight_decay: float = 0.0,
                 momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 eps: float = 1e-7, ns_dtype: torch.dtype = torch.float32):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                        nesterov=nesterov, ns_steps=ns_steps, eps=eps)
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype  # not in the state_dict: a speed choice of this machine
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon is for 2-D matrices, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mom = group["lr"], group["momentum"]
            by_shape: dict[tuple, list] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - mom)
                update = p.grad.lerp(buf, mom) if group["nesterov"] else buf
                by_shape.setdefault(tuple(p.shape), []).append((p, update))
            for (rows, cols), items in by_shape.items():
                ortho = newton_schulz(torch.stack([u for _, u in items]), group["ns_steps"],
                                      group["eps"], dtype=self.ns_dtype)  # (k, rows, cols)
                adjusted = lr * math.sqrt(max(1.0, rows / cols))
                for (p, _), o in zip(items, ortho, strict=True):
                    p.mul_(1 - lr * group["weight_decay"])
                    p.add_(o.to(p.dtype), alpha=-adjusted)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: 2-D (and higher) tensors with decay, everything else without."""
    seen: set[int] = set()
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """2-D weights inside the transformer blocks (not embeddings, not the output head)."""
    return p.dim() == 2 and ".h." in f".{name}"


class CombinedOptimizer:
    """Several optimizers stepped together, with one state_dict (for checkpoints)."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        # A property, not a list made once: Optimizer.load_state_dict replaces the group dicts,
        # and a stale list would keep setting the learning rate on dicts nobody reads.
        return [g for o in self.optimizers.values() for g in o.param_groups]

    def step(self) -> None:
        for opt in self.optimizers.values():
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.optimizers):
            raise ValueError(f"optimizer state has parts {sorted(state)}, "
                             f"expected {sorted(self.optimizers)}")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float,
                    betas: tuple[float, float], muon_lr: float = 0.02,
                    fused: bool | None = None, avoid_dynamo: bool = False,
                    ns_dtype: torch.dtype = torch.float32,
                    ns_steps: int = 5) -> CombinedOptimizer:
    """``name`` is "adamw" or "muon" (``BatchedMuon``, torch.optim.Muon's rule, on the hidden
    matrices + AdamW on the rest). ``avoid_dynamo``: see ``AdamWNoDynamo`` (not with
    torch.compile). ``ns_dtype``, ``ns_steps``: Muon's Newton-Schulz precision and iteration
    count (``BatchedMuon``).

    Every param group gets ``lr_scale`` = its base lr / ``lr`` so that the training loop can set
    ``group["lr"] = schedule(step) * group["lr_scale"]`` for all groups alike.
    """
    # fused=True: the whole AdamW update in one kernel per parameter (train_gpt2's choice, 4%
    # faster on the Xeon, 6% slower on the EPYC: README); otherwise foreach: one multi-tensor
    # kernel per stage instead of a Python loop over the parameters.
    kwargs = {"fused": True} if fused else {"foreach": True}
    adamw_cls = torch.optim.AdamW
    if avoid_dynamo and _ADAMW_STEP is not None:
        skip_dynamo_import()
        adamw_cls = AdamWNoDynamo
    if name == "adamw":
        adamw = adamw_cls(param_groups(model, weight_decay), lr=lr, betas=betas, **kwargs)
        for g in adamw.param_groups:
            g["lr_scale"] = 1.0
        return CombinedOptimizer({"adamw": adamw})
    if name != "muon":
        raise ValueError(f"unknown optimizer {name!r}; use adamw or muon")
    hidden = [p for n, p in model.named_parameters() if is_hidden_matrix(n, p)]
    hidden_ids = {id(p) for p in hidden}
    rest = [p for n, p in model.named_parameters() if id(p) not in hidden_ids]
    seen: set[int] = set()
    decay, no_decay = [], []
    for p in rest:
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    muon = BatchedMuon(hidden, lr=muon_lr, weight_decay=weight_decay, ns_dtype=ns_dtype,
                       ns_steps=ns_steps)
    adamw = adamw_cls(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas, **kwargs)
    for g in muon.param_groups:
        g["lr_scale"] = muon_lr / lr
    for g in adamw.param_groups:
        g["lr_scale"] = 1.0
    return CombinedOptimizer({"muon": muon, "adamw": adamw})
