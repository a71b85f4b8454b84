"""GPT-2: token + position embeddings, a stack of pre-norm blocks, a final LayerNorm and an
output projection that shares its weight with the token embedding.

    idx (B, T) token ids
      -> wte(idx) + wpe(positions)            (B, T, C)   C = n_embd
      -> dropout -> n_layer x GPTDecoderBlock (B, T, C)
      -> ln_f -> lm_head                      (B, T, vocab_size) logits
      -> cross-entropy with targets (B, T)    scalar loss (if targets are given)

Attribute names are Hugging Face's (``transformer.wte``, ``transformer.h[i]``, ``lm_head``...)
so HF GPT-2 weights load by name (see hf_conversion.py for the four transposed ones).

Every forward pass sees the whole sequence, positions 0..T-1 (nanoGPT's model). Sprint 10's
KV cache feeds only the new tokens through these same modules, in its own function
(``sprints/10_pretrained_and_generation/results/cached_forward.py``); nothing here changes
for it.
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import hf_conversion
from .config import GPTConfig
from .gpt_decoder_block import GPTDecoderBlock, LayerNorm, set_fused
from .positional_encoding import build_position_embedding

INIT_STD = 0.02  # GPT-2's initializer_range


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, fused: bool = True) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(
                f"GPT needs a GPTConfig, got {type(config).__name__}; e.g. "
                "GPT(GPTConfig.from_preset('gpt2'))"
            )
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token -> vector
                wpe=build_position_embedding(config),  # position -> vector
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(
                    GPTDecoderBlock(config, fused=fused) for _ in range(config.n_layer)
                ),
                ln_f=LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the output projection IS the token embedding
        # (one Parameter, two uses). A token's input vector and the direction whose dot
        # product scores it as the next token are the same; it saves 38.6M of GPT-2's
        # 124M parameters.
        self.lm_head.weight = self.transformer.wte.weight
        set_fused(self, fused)
        if self.lm_head.weight.is_meta:
            return  # built under torch.device("meta") for its shapes: nothing to initialize
        self.apply(self._init_weights)
        # GPT-2's scaled init: every block adds two outputs to the residual stream (attn and
        # mlp, both ending in c_proj), so its variance grows with 2 * n_layer additions;
        # shrinking those projections by 1/sqrt(2 * n_layer) keeps the sum's scale constant.
        residual_std = INIT_STD / math.sqrt(2 * config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        # LayerNorms start as the identity map: weight 1, bias 0 (their own init).

    # ----- forward -------------------------------------------------------------------------
    def _check_token_range(self, ids: Tensor, name: str, skip: int | None = None) -> None:
        """Ids outside [0, vocab_size) would fail deep inside the embedding (or as a device
        assert on CUDA); the usual cause is a tokenizer that does not match the model.
        ``skip``: a value allowed besides the vocabulary (-100, the loss's "ignore" mark)."""
        if ids.numel() == 0 or torch.compiler.is_compiling():
            return
        if skip is not None:
            ids = ids.masked_fill(ids == skip, 0)
        low, high = torch.stack([ids.min(), ids.max()]).tolist()  # one device->host copy
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"{name} holds token ids from {low} to {high}, but this model's vocabulary has "
                f"ids 0 to {self.config.vocab_size - 1}; encode the text with the tokenizer "
                "the model was trained with"
            )

    def check_idx(self, idx: Tensor) -> None:
        """Raise a ValueError that says what to do unless ``idx`` is a (B, T) tensor of
        integer token ids of this vocabulary with 1 <= T <= block_size. ``hidden_states``
        calls it; so does sprint 10's cached forward (cached_forward.py), for the new tokens.
        """
        if idx.dim() != 2:
            raise ValueError(
                f"idx must be a (batch, time) tensor of token ids, got shape "
                f"{tuple(idx.shape)}; add a batch dimension with idx[None] for one sequence"
            )
        if idx.dtype not in (torch.long, torch.int32):
            raise ValueError(
                f"idx must hold integer token ids (torch.long), got dtype {idx.dtype}; "
                "convert with idx.long()"
            )
        T = idx.size(1)
        self._check_token_range(idx, "idx")
        if T == 0:
            raise ValueError("idx has no tokens (T = 0)")
        if T > self.config.block_size:
            raise ValueError(
                f"{T} positions exceed block_size {self.config.block_size}; crop the "
                f"context to its last {self.config.block_size} tokens"
            )

    def hidden_states(self, idx: Tensor) -> Tensor:
        """idx (B, T) -> the final LayerNorm's output (B, T, C): the model up to ``lm_head``.

        Sprint 9's chunked loss multiplies these by ``lm_head.weight`` itself, a slice at a
        time, so that the full (B, T, vocab_size) logits never exist at once.
        """
        self.check_idx(idx)
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)  # (T,) positions 0..T-1
        tok_emb = self.transformer.wte(idx)  # (B, T) -> (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T,) -> (T, C), broadcast over B
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)  # (B, T, C)
        return self.transformer.ln_f(x)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) -> (logits (B, T, vocab_size), mean cross-entropy or None).

        ``targets`` (B, T): the next token of every position; -100 marks positions to skip.
        ``logits_to_keep``: k > 0 computes the logits of the last k positions only,
        (B, k, vocab_size). Generation needs just the last one, and ``lm_head`` is about a
        third of GPT-2 small's FLOPs, so this saves most of that third on long prompts.
        """
        if logits_to_keep < 0 or (logits_to_keep and targets is not None):
            raise ValueError(
                f"logits_to_keep must be 0 (all positions) or positive, and 0 when targets "
                f"are given (the loss needs every position); got {logits_to_keep}"
            )
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(
                    f"targets must have idx's shape {tuple(idx.shape)}, got "
                    f"{tuple(targets.shape)}"
                )
            self._check_token_range(targets, "targets", skip=-100)
        x = self.hidden_states(idx)  # (B, T, C)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]  # (B, T, C) -> (B, k, C)
        logits = self.lm_head(x)  # (B, T or k, C) -> (B, T or k, vocab_size)
        loss = None
        if targets is not None:
            # (B, T, V) -> (B*T, V) against (B*T,): mean over positions not marked -100.
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100
            )
        return logits, loss

    # ----- bookkeeping -------------------------------------------------------------------
    def num_parameters(self, exclude_position_embeddings: bool = False) -> int:
        """Trainable numbers, the tied wte/lm_head matrix counted once (as GPT-2's "124M")."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields shared ones once
        if exclude_position_embeddings:
            n -= sum(p.numel() for p in self.transformer.wpe.parameters())
        return n

    def set_fused(self, fused: bool) -> GPT:
        """True: torch's fused kernels; False: the from-scratch reference of sprints 6 and 7."""
        set_fused(self, fused)
        return self

    def configure_optimizers(
        self,
        weight_decay: float = 0.1,
        learning_rate: float = 6e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        fused: bool | None = None,
    ) -> torch.optim.AdamW:
        """AdamW with weight decay on the 2-D weights (matmuls, embeddings) only: decaying
        biases and LayerNorm gains towards 0 only fights their job of shifting and scaling."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        extra = {}
        if fused is not None and "fused" in inspect.signature(torch.optim.AdamW).parameters:
            extra["fused"] = fused
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, **extra)

    # ----- Hugging Face format -----------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        dropout: float = 0.0,
        fused: bool = True,
        revision: str | None = None,
        cache_dir: str | None = None,
    ) -> GPT:
        """Load HF GPT-2 weights: a local directory with ``config.json`` +
        ``model.safetensors``, or a Hub name (``"gpt2"``, ``"gpt2-medium"``...) when online."""
        directory = hf_conversion.resolve_pretrained_dir(name_or_path, revision, cache_dir)
        hf_config, hf_state = hf_conversion.read_pretrained(directory)
        config = GPTConfig.from_hf_dict(hf_config, dropout=dropout)
        model = cls(config, fused=fused)
        model.load_state_dict(hf_conversion.hf_to_state_dict(hf_state, model))
        return model

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` in HF GPT-2's format, loadable with
        ``transformers.GPT2LMHeadModel.from_pretrained(directory)``."""
        return hf_conversion.write_pretrained(self, directory)

    # ----- own checkpoints ---------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, map_location: Any = "cpu", fused: bool = True
    ) -> tuple[GPT, dict[str, Any]]:
        """Rebuild the model a ``save_checkpoint`` file describes; returns (model, checkpoint)."""
        from .utils import CheckpointError, load_checkpoint, restore_checkpoint

        ckpt = load_checkpoint(path, map_location=map_location)
        if not isinstance(ckpt.get("config"), dict):
            raise CheckpointError(f"{path} stores no GPTConfig dict under 'config'")
        model = cls(GPTConfig.from_dict(ckpt["config"]), fused=fused)
        restore_checkpoint(ckpt, model=model, source=path)
        return model, ckpt
