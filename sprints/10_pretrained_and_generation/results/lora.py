"""LoRA (Hu et al. 2021): fine-tune a frozen linear layer through a low-rank update.

A linear layer computes y = x W^T + b with W of shape (out, in). LoRA keeps W frozen and
learns two small matrices, A (r, in) and B (out, r), with r much smaller than in and out:

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T          x (..., in) -> y (..., out)
      = x (W + (alpha / r) B A)^T + b                          (without dropout)

B starts at zero, so at step 0 the wrapped model computes exactly what the base model does.
Only A and B train: for GPT-2 small's attention c_attn (768 -> 2304) at r = 8 that is
8 * 768 + 2304 * 8 = 24,576 numbers instead of 1,769,472.

Because the update is a matrix of W's shape, it can be folded into W after training
(``merge``): the merged layer is an ordinary ``nn.Linear`` and costs nothing extra at
inference. ``unmerge`` subtracts it again.

Names follow Hugging Face peft (``base_layer``, ``lora_A``, ``lora_B``, ``lora_dropout``)
and ``target_modules`` are matched as peft matches them, so ``save_adapter`` writes files
that ``peft.PeftModel.from_pretrained(GPT2LMHeadModel, directory)`` loads.
"""

from __future__ import annotations

import json
import math
import os
from importlib import import_module
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

_utils = import_module("sprints.08_gpt2_assembly.results.utils")

# c_proj names both attn.c_proj and mlp.c_proj: these three cover every linear of a block.
DEFAULT_TARGETS = ("c_attn", "c_proj", "c_fc")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
PEFT_PREFIX = "base_model.model."  # how peft's PeftModelForCausalLM names what it wraps


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * lora_B(lora_A(lora_dropout(x)))``, with ``base`` frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if rank < 1 or not alpha > 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"LoRA needs rank >= 1, alpha > 0 and dropout in [0, 1); got rank {rank}, "
                f"alpha {alpha}, dropout {dropout}"
            )
        self.base_layer = base
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **factory)  # weight (r, in)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **factory)  # (out, r)
        # peft's default: A like nn.Linear's own init (Kaiming uniform), B = 0, so that the
        # update B A starts at 0 and training starts from the base model exactly.
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        for p in base.parameters():
            p.requires_grad_(False)
        self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        y = self.base_layer(x)  # (..., in) -> (..., out)
        if self.merged:  # the update already lives in base_layer.weight
            return y
        # (..., in) -> (..., r) -> (..., out): two thin matmuls, never the (out, in) product
        return y + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def delta_weight(self) -> Tensor:
        """(alpha / r) B A, shape (out, in): what ``merge`` adds to the base weight."""
        b, a = self.lora_B.weight.float(), self.lora_A.weight.float()
        return (b @ a) * self.scaling  # (out, r) @ (r, in) -> (out, in)

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged; unmerge() it first")
        weight = self.base_layer.weight
        weight.copy_((weight.float() + self.delta_weight()).to(weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            raise RuntimeError("this LoRA layer is not merged; there is nothing to unmerge")
        weight = self.base_layer.weight
        weight.copy_((weight.float() - self.delta_weight()).to(weight.dtype))
        self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}"


# ----- wrapping a GPT ---------------------------------------------------------------------
def _matches(name: str, target: str) -> bool:
    # peft's rule for a list of target_modules: the whole name, or its last dotted parts.
    return name == target or name.endswith("." + target)


def find_targets(model: nn.Module, targets: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the linear layers inside the transformer blocks that ``targets`` select.

    Each target is a module-name suffix (``c_attn``, ``attn.c_proj``, ``mlp.c_fc``...); a
    target that selects nothing, or selects a layer that is not a block's ``nn.Linear``
    (an embedding, the tied ``lm_head``), is an error that lists the valid names.
    """
    targets = list(targets)
    if not targets:
        raise ValueError("give at least one LoRA target, e.g. c_attn")
    linears = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ".h." in f".{name}"
    }
    suffixes = sorted({".".join(n.split(".")[-2:]) for n in linears} | {
        n.split(".")[-1] for n in linears
    })
    chosen = set()
    for target in targets:
        hits = [name for name, _ in model.named_modules() if _matches(name, target)]
        bad = [name for name in hits if name not in linears]
        if not hits or bad:
            what = f"selects {bad[:2]}, which are not block linears" if bad else "selects nothing"
            raise ValueError(
                f"LoRA target {target!r} {what}; choose among {', '.join(suffixes)} "
                "(c_proj means both attn.c_proj and mlp.c_proj)"
            )
        chosen.update(hits)
    return sorted(chosen, key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")])


def apply_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    dropout: float = 0.0,
    targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
) -> nn.Module:
    """Freeze every parameter of ``model`` and wrap the selected linears in ``LoRALinear``
    (in place; returns the model). Afterwards only the adapters' A and B require grad."""
    names = find_targets(model, targets)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        # A new module starts in training mode; follow the model's, or an eval()-ed model
        # would apply the adapter's dropout.
        wrapper = LoRALinear(base, rank, alpha, dropout).train(base.training)
        setattr(parent, child, wrapper)
    model.lora_config = {
        "r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": list(targets)
    }
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def count_trainable(model: nn.Module) -> int:
    """Numbers that receive gradients (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain ``nn.Linear`` back: the
    result is an ordinary GPT (same state_dict keys as before ``apply_lora``)."""
    for name, layer in lora_layers(model).items():
        if not layer.merged:
            layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.base_layer)
    if hasattr(model, "lora_config"):
        del model.lora_config
    return model


# ----- saving and loading adapters (peft's file layout) -----------------------------------
def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapters alone, under peft's key names:
    ``base_model.model.transformer.h.0.attn.c_attn.lora_A.weight`` (r, in) and ``lora_B`` (out, r).
    """
    out = {}
    for name, layer in lora_layers(model).items():
        for part in ("lora_A", "lora_B"):
            tensor = getattr(layer, part).weight.detach()
            out[f"{PEFT_PREFIX}{name}.{part}.weight"] = tensor.contiguous().clone()
    return out


def save_adapter(
    model: nn.Module, directory: str | os.PathLike, base_model_name_or_path: str | None = None
) -> Path:
    """Write ``adapter_model.safetensors`` + ``adapter_config.json`` (peft's LoRA format).

    ``fan_in_fan_out`` is true because Hugging Face's GPT-2 stores these layers as Conv1D
    (weight (in, out)); the A and B matrices themselves have the same shapes either way.
    """
    from safetensors.torch import save_file

    if not lora_layers(model):
        raise ValueError("this model has no LoRA layers to save; call apply_lora first")
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "bias": "none",
        "fan_in_fan_out": True,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        **model.lora_config,
    }
    tensors = adapter_state_dict(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _utils.atomic_write(
        directory / ADAPTER_CONFIG,
        lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n", "utf-8"),
    )
    _utils.atomic_write(
        directory / ADAPTER_WEIGHTS,
        lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}),
    )
    return directory


def load_adapter(model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Wrap ``model`` as ``adapter_config.json`` says and load ``adapter_model.safetensors``
    (written by ``save_adapter`` or by peft for GPT-2); every tensor must fit."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_file, weights_file = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    if not (config_file.is_file() and weights_file.is_file()):
        raise FileNotFoundError(
            f"{directory} holds no LoRA adapter: expected {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}"
        )
    config: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        kind = config.get("peft_type")
        raise ValueError(f"{config_file} is not a LoRA adapter (peft_type {kind!r})")
    apply_lora(model, int(config["r"]), float(config["lora_alpha"]),
               float(config.get("lora_dropout", 0.0)), config["target_modules"])
    saved = load_file(weights_file)
    own = adapter_state_dict(model)
    if set(saved) != set(own) or any(saved[k].shape != own[k].shape for k in own):
        missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
        raise ValueError(
            f"the adapter in {directory} does not fit this model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]} (was it trained on a model of another size?)"
        )
    for name, layer in lora_layers(model).items():
        for part in ("lora_A", "lora_B"):
            getattr(layer, part).weight.data.copy_(saved[f"{PEFT_PREFIX}{name}.{part}.weight"])
    return model
