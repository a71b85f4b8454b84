"""Solution 1: count GPT-2's parameters piece by piece."""


def gpt2_param_count(vocab_size: int, block_size: int, n_embd: int, n_layer: int,
                     tied: bool = True) -> int:
    c = n_embd
    embeddings = vocab_size * c + block_size * c  # wte + wpe
    attention = (c * 3 * c + 3 * c) + (c * c + c)  # c_attn + c_proj
    mlp = (c * 4 * c + 4 * c) + (4 * c * c + c)  # c_fc + c_proj
    block = 2 * (2 * c) + attention + mlp  # ln_1 and ln_2: a weight and a bias each
    head = 0 if tied else vocab_size * c  # tied: the head reuses wte
    return embeddings + n_layer * block + 2 * c + head
