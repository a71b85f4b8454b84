"""`GPTConfig`: every hyperparameter that decides the GPT's shapes, in one dataclass.

A model is fully described by this small record, so it is what a checkpoint stores
(``to_dict()``) and what ``GPT(config)`` needs to rebuild the same network. Named presets
give GPT-2's four released sizes and a few small models that train on a laptop CPU.

It also converts to and from Hugging Face's GPT-2 ``config.json`` (field names
``n_positions``, ``layer_norm_epsilon``, ...) for ``GPT.from_pretrained`` / ``save_pretrained``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

POSITION_ENCODINGS = ("learned", "sinusoidal")
# Our activation name -> Hugging Face GPT2Config.activation_function, and back (HF has three
# names for the tanh approximation, all the same function).
ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu"}
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                  "gelu_fast": "gelu_tanh", "gelu": "gelu"}


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # GPT-2's byte-level BPE: 50,000 merges + 256 bytes + <|endoftext|>
    block_size: int = 1024  # longest context (number of position embeddings)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768  # width C; each head has C // n_head dimensions
    dropout: float = 0.0  # one rate for embeddings, attention weights and residual branches
    bias: bool = True  # biases in the Linear layers and LayerNorms (GPT-2 has them)
    position_encoding: str = "learned"  # "learned" (GPT-2) or "sinusoidal" (sprint 5)
    layer_norm_epsilon: float = 1e-5
    # "gelu_tanh": GPT-2's tanh approximation (HF's "gelu_new"); "gelu": the exact erf GELU.
    # Both are GPT-2-compatible in HF's format; the exact one is 4-5x faster on some CPUs,
    # whose tanh kernel is slow (notes/12_speedrun.md in sprint 9).
    activation: str = "gelu_tanh"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head "
                f"({self.n_head}) so every head gets n_embd // n_head dimensions; "
                "change one of them"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"GPTConfig.position_encoding must be one of {POSITION_ENCODINGS}, "
                f"got {self.position_encoding!r}"
            )
        if self.position_encoding == "sinusoidal" and self.n_embd % 2 != 0:
            raise ValueError(
                f"GPTConfig: sinusoidal positions pair sin/cos dimensions, so n_embd must be "
                f"even, got {self.n_embd}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"GPTConfig.activation must be one of {tuple(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        if not self.layer_norm_epsilon > 0:
            raise ValueError(
                f"GPTConfig.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    # ----- presets -------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """``GPTConfig.from_preset("gpt2")``; keyword overrides replace single fields,
        e.g. ``from_preset("tiny", vocab_size=65)`` for a character vocabulary."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    # ----- plain dicts (checkpoints) -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict (ints, floats, bools, strings), safe for weights_only loads."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"GPTConfig has no field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**data)

    # ----- Hugging Face GPT-2 config.json ----------------------------------------------------
    def to_hf_dict(self) -> dict[str, Any]:
        """The ``config.json`` that ``transformers.GPT2LMHeadModel`` reads."""
        if self.position_encoding != "learned":
            raise ValueError(
                "Hugging Face GPT-2 has learned position embeddings only; a model with "
                "position_encoding='sinusoidal' cannot be exported to its format "
                "(save it with save_checkpoint instead)"
            )
        if not self.bias:
            raise ValueError(
                "Hugging Face GPT-2 always has biases; a model built with bias=False "
                "cannot be exported to its format (save it with save_checkpoint instead)"
            )
        hf = {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.block_size,
            "n_ctx": self.block_size,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": None,  # None means 4 * n_embd, as here
            "activation_function": ACTIVATIONS[self.activation],  # HF's name for it
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": self.dropout,
            "initializer_range": 0.02,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True,
        }
        # GPT-2's one special token <|endoftext|> (id 50256) starts and ends documents;
        # a model with another vocabulary (characters) has no such id.
        eot = 50256 if self.vocab_size >= 50257 else None
        hf["bos_token_id"] = hf["eos_token_id"] = eot
        return hf

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], dropout: float = 0.0) -> GPTConfig:
        """Read a Hugging Face GPT-2 ``config.json``; refuse variants this GPT does not
        implement instead of silently computing something else."""
        model_type = hf.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ValueError(f"config.json is for model_type {model_type!r}, expected 'gpt2'")
        n_embd = hf["n_embd"]
        checks = [
            (hf.get("n_inner") in (None, 4 * n_embd), "n_inner must be None or 4 * n_embd"),
            (
                hf.get("activation_function", "gelu_new") in HF_ACTIVATIONS,
                "activation_function must be GELU's tanh approximation ('gelu_new') or the "
                "exact GELU ('gelu')",
            ),
            (
                not hf.get("scale_attn_by_inverse_layer_idx", False),
                "scale_attn_by_inverse_layer_idx is not supported",
            ),
            (hf.get("scale_attn_weights", True), "scale_attn_weights=False is not supported"),
            (not hf.get("add_cross_attention", False), "cross-attention is not supported"),
            (
                hf.get("tie_word_embeddings", True),
                "untied input/output embeddings are not supported",
            ),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("unsupported GPT-2 variant in config.json: " + "; ".join(problems))
        return cls(
            vocab_size=hf["vocab_size"],
            block_size=hf.get("n_positions", hf.get("n_ctx", 1024)),
            n_layer=hf["n_layer"],
            n_head=hf["n_head"],
            n_embd=n_embd,
            dropout=dropout,
            bias=True,
            position_encoding="learned",
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
            activation=HF_ACTIVATIONS[hf.get("activation_function", "gelu_new")],
        )


# GPT-2's four released sizes (Radford et al. 2019; widths/depths as in the released weights),
# and small models for 2-core CPU training. Every field left out keeps its default.
PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    # CPU-sized: pass vocab_size=... for a character tokenizer.
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64),
    "small-cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),
    "medium-cpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
}
