"""Hugging Face GPT-2 <-> this GPT: a name map and four transposes.

Our parameter names already are Hugging Face's (``transformer.h.0.attn.c_attn.weight``...),
so converting is mostly copying. Three differences remain:

1. Four weights are stored transposed. HF's GPT-2 keeps OpenAI's ``Conv1D`` layer, which
   computes ``x @ W + b`` with W of shape (in, out); ``nn.Linear`` computes ``x @ W.T + b``
   with W of shape (out, in). So ``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc`` and
   ``mlp.c_proj`` weights are transposed both ways. (Embeddings, LayerNorms and biases have
   the same layout in both.)
2. HF files may hold buffers that are not weights: ``attn.bias`` (a 1024 x 1024 causal mask)
   and ``attn.masked_bias``; we skip them. Files converted from OpenAI's original
   ``gpt2`` weights name keys without the ``transformer.`` prefix (``h.0.ln_1.weight``).
3. ``lm_head.weight`` is the token embedding (tied); files may leave it out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .utils import atomic_write

TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HF_WEIGHTS = "model.safetensors"
HF_CONFIG = "config.json"


def _is_transposed(key: str) -> bool:
    return ".".join(key.split(".")[-3:]) in TRANSPOSED


def _is_mask_buffer(key: str) -> bool:
    # "h.0.attn.bias" is a buffer; "h.0.attn.c_attn.bias" is a real weight.
    parts = key.split(".")
    return len(parts) >= 2 and parts[-2] == "attn" and parts[-1] in ("bias", "masked_bias")


def hf_to_state_dict(hf_state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """HF GPT-2 tensors -> a state_dict for ``model`` (a ``GPT``), checked key by key."""
    out: dict[str, Tensor] = {}
    for key, tensor in hf_state.items():
        if _is_mask_buffer(key):
            continue
        if not (key.startswith("transformer.") or key.startswith("lm_head.")):
            key = "transformer." + key  # OpenAI-converted files: "h.0.ln_1.weight"
        out[key] = tensor.t() if _is_transposed(key) else tensor
    wte = out.get("transformer.wte.weight")
    lm_head = out.pop("lm_head.weight", None)
    if lm_head is not None and wte is not None and not torch.equal(lm_head, wte):
        raise ValueError(
            "this checkpoint's lm_head.weight differs from its token embedding wte.weight; "
            "GPT-2 ties the two and so does this GPT, so an untied model cannot be loaded"
        )
    own = model.state_dict()
    expected = {k for k in own if k != "lm_head.weight"}  # tied: loaded through wte
    missing = sorted(expected - set(out))
    unexpected = sorted(set(out) - expected)
    wrong = [
        f"{k}: file {tuple(out[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(expected & set(out))
        if out[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            "the Hugging Face weights do not fit the GPT built from their config.json: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes {wrong[:5]}"
        )
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def state_dict_to_hf(model: nn.Module) -> dict[str, Tensor]:
    """This GPT's weights in HF GPT-2 layout (``lm_head.weight`` left out: it is tied)."""
    out = {}
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight":
            continue
        tensor = tensor.detach()
        # safetensors stores plain contiguous tensors and refuses shared storage: copy.
        out[key] = (tensor.t() if _is_transposed(key) else tensor).contiguous().clone()
    return out


def resolve_pretrained_dir(
    name_or_path: str | os.PathLike, revision: str | None = None, cache_dir: str | None = None
) -> Path:
    """A local directory as it is, otherwise a Hub repo id downloaded with huggingface_hub."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(
            f"{path} is a file; pass the directory that holds {HF_CONFIG} and {HF_WEIGHTS}"
        )
    name = str(name_or_path)
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id=name,
                allow_patterns=[HF_CONFIG, HF_WEIGHTS],
                revision=revision,
                cache_dir=cache_dir,
            )
        )
    except Exception as error:  # no network, unknown repo, bad id: one piece of advice
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise OSError(
            f"{name!r} is not a local directory, and downloading it from the Hugging Face Hub "
            f"failed ({type(error).__name__}: {first_line}). If this machine is offline, "
            f"download the model where there is a network, e.g. `hf download {name} "
            f"{HF_CONFIG} {HF_WEIGHTS} --local-dir ./{name.split('/')[-1]}`, copy that "
            "directory here and pass its path: GPT.from_pretrained('./path/to/dir')"
        ) from error


def read_pretrained(directory: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(config.json as a dict, the weight tensors) of an HF GPT-2 directory."""
    config_file = directory / HF_CONFIG
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} has no {HF_CONFIG}; is it a Hugging Face model?")
    hf_config = json.loads(config_file.read_text(encoding="utf-8"))
    weights_file = directory / HF_WEIGHTS
    if weights_file.is_file():
        from safetensors.torch import load_file

        return hf_config, load_file(weights_file)
    legacy = directory / "pytorch_model.bin"
    if legacy.is_file():  # older repos; weights_only keeps the pickle from running code
        return hf_config, torch.load(legacy, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{directory} has no {HF_WEIGHTS} (nor pytorch_model.bin)")


def write_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` that ``GPT2LMHeadModel`` loads."""
    from safetensors.torch import save_file

    hf_config = model.config.to_hf_dict()  # refuses sinusoidal / bias-free models, clearly
    hf_config["torch_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    tensors = state_dict_to_hf(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(
        directory / HF_CONFIG,
        lambda tmp: Path(tmp).write_text(json.dumps(hf_config, indent=2) + "\n", "utf-8"),
    )
    atomic_write(
        directory / HF_WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"})
    )
    return directory
