"""Exercise 1: the parameter count of a GPT-2 config, by formula (notes/02_config.md,
notes/03_weight_tying.md)."""


def gpt2_param_count(vocab_size: int, block_size: int, n_embd: int, n_layer: int,
                     tied: bool = True) -> int:
    """Parameters of a GPT-2 with biases everywhere, 4x MLP, tied or untied output head."""
    raise NotImplementedError(
        "hint: embeddings V*C + T*C; per block two LayerNorms (2C each), qkv C*3C+3C, proj C*C+C, "
        "MLP C*4C+4C and 4C*C+C; final LayerNorm 2C; an untied head adds V*C")
