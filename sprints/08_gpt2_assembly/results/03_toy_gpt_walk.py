"""The whole GPT on numbers small enough to read: every intermediate of one forward pass,
computed by hand from the model's own weights, then checked against ``model(idx, targets)``.

A one-layer GPT from model.py with vocabulary V = 10, width C = 4, two heads of 2 dimensions
(``--n-head 1`` for one head of 4) reads T = 3 tokens. Its weights are seeded random numbers
rounded to one decimal (biases too, smaller), so each printed step can be followed with a
pencil; the LayerNorm gains are 1 and their biases 0, as GPT-2 starts. Everything runs in
float64, so the hand computation and the model agree to rounding (the script asserts 1e-6).

    uv run python -m sprints.08_gpt2_assembly.results.03_toy_gpt_walk
    uv run python -m sprints.08_gpt2_assembly.results.03_toy_gpt_walk --n-head 1 --show-weights

The printed steps (shapes for the batch of B = 1 sequence; the rows printed are its T rows):

    ids (B, T) -> wte rows + wpe rows (B, T, C) -> ln_1 -> q, k, v (B, nh, T, hs)
    -> scores, scaled, masked, softmax (B, nh, T, T) -> weights @ v (B, nh, T, hs)
    -> heads joined (B, T, C) -> c_proj -> + residual -> ln_2 -> c_fc (B, T, 4C) -> GELU
    -> c_proj (B, T, C) -> + residual -> ln_f -> logits (B, T, V) -> softmax -> loss
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from importlib import import_module
from typing import Any

TOKENS = (3, 1, 4)  # the input ids ...
TARGETS = (1, 4, 1)  # ... and the next token of each: the text is "3 1 4 1"
VOCAB, WIDTH = 10, 4


def toy_model(seed: int = 0, n_head: int = 2) -> Any:
    """Sprint 8's GPT (V=10, C=4, one layer, ``n_head`` heads) in float64, its weights
    N(0, 0.5) rounded to one decimal, biases N(0, 0.1) rounded, LayerNorms the identity."""
    import torch

    model_lib = import_module("sprints.08_gpt2_assembly.results.model")
    config_lib = import_module("sprints.08_gpt2_assembly.results.config")
    config = config_lib.GPTConfig(vocab_size=VOCAB, block_size=8, n_layer=1, n_head=n_head,
                                  n_embd=WIDTH, dropout=0.0, bias=True)
    model = model_lib.GPT(config).double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # the tied wte/lm_head matrix comes once
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                continue  # LayerNorm: weight 1, bias 0
            scale = 0.1 if name.endswith("bias") else 0.5
            p.copy_((torch.randn(p.shape, generator=g, dtype=torch.float64) * scale).round(
                decimals=1))
    return model


def fmt(t: Any, per_line: int = 8) -> str:
    """A 1-D or 2-D tensor as rows of fixed-width numbers (4 decimals); rows longer than
    ``per_line`` values continue on the next line."""
    rows = t.tolist() if t.dim() == 2 else [t.tolist()]
    lines = []
    for row in rows:
        # round(v, 4) + 0.0: no "-0.0000" for a value that rounds to zero
        cells = ["    -inf" if v == -math.inf else f"{round(v, 4) + 0.0:8.4f}" for v in row]
        for start in range(0, len(cells), per_line):
            lead = "  [" if start == 0 else "   "
            tail = "]" if start + per_line >= len(cells) else ","
            lines.append(lead + ",".join(cells[start:start + per_line]) + tail)
    return "\n".join(lines)


def _layer_norm(x: Any, ln: Any) -> Any:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dim; var is the biased one
    (divide by C), as torch's LayerNorm."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / (var + ln.eps).sqrt() * ln.weight + ln.bias


def walk(model: Any, tokens: tuple[int, ...] = TOKENS, targets: tuple[int, ...] = TARGETS,
         show: Callable[[str], None] = print) -> dict[str, Any]:
    """One forward pass written out step by step with ``model``'s weights; ``show`` gets each
    printed block. Returns every intermediate (batch dim included) and the model's own
    ``logits``/``loss`` as ``model_logits``/``model_loss``; raises AssertionError if the hand
    computation and the model differ by more than 1e-6."""
    import torch

    cfg = model.config
    B, T, C, nh = 1, len(tokens), cfg.n_embd, cfg.n_head
    hs = C // nh
    block = model.transformer.h[0]
    idx = torch.tensor([tokens])  # (B, T)
    tgt = torch.tensor([targets])  # (B, T)
    s: dict[str, Any] = {}

    def step(key: str, title: str, value: Any, shape: str) -> None:
        s[key] = value
        body = value[0] if value.dim() >= 2 else value  # the one sequence of the batch
        if body.dim() == 3:  # (nh, T, ...): one block per head
            text = "\n".join(f" head {h}:\n{fmt(body[h])}" for h in range(body.size(0)))
        else:
            text = fmt(body)
        show(f"{title}  shape {shape} = {tuple(value.shape)}\n{text}")

    with torch.no_grad():
        show(f"token ids {list(tokens)}, targets (the next ids) {list(targets)}  "
             f"shape (B, T) = {tuple(idx.shape)}")
        wte, wpe = model.transformer.wte.weight, model.transformer.wpe.weight
        step("tok_emb", "1) token embedding rows wte[ids]", wte[idx], "(B, T, C)")
        step("pos_emb", "2) position embedding rows wpe[0..T-1]", wpe[:T][None], "(1, T, C)")
        x = s["tok_emb"] + s["pos_emb"]
        step("x0", "3) x = token + position", x, "(B, T, C)")

        # --- attention: x + c_proj(attention(ln_1(x)))
        h = _layer_norm(x, block.ln_1)
        step("ln_1", "4) ln_1(x): each row to mean 0, variance 1", h, "(B, T, C)")
        qkv = h @ block.attn.c_attn.weight.T + block.attn.c_attn.bias  # (B, T, 3C)
        q, k, v = qkv.split(C, dim=-1)
        # (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs): head j owns dims j*hs..(j+1)*hs-1
        q, k, v = (z.view(B, T, nh, hs).transpose(1, 2) for z in (q, k, v))
        step("q", "5) queries q = (ln_1 @ W_q + b_q), split into heads", q, "(B, nh, T, hs)")
        step("k", "   keys k", k, "(B, nh, T, hs)")
        step("v", "   values v", v, "(B, nh, T, hs)")
        scores = q @ k.transpose(-2, -1)  # (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T)
        step("scores", "6) scores q @ k^T (row = query position, column = key position)",
             scores, "(B, nh, T, T)")
        scaled = scores / math.sqrt(hs)
        step("scaled", f"7) scaled by 1/sqrt(hs) = 1/sqrt({hs}) = {1 / math.sqrt(hs):.4f}",
             scaled, "(B, nh, T, T)")
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # True above the diagonal
        masked = scaled.masked_fill(future, -math.inf)
        step("masked", "8) causal mask: a query never sees a later key (-inf)", masked,
             "(B, nh, T, T)")
        att = torch.softmax(masked, dim=-1)
        step("att", "9) attention weights softmax(row): each row sums to 1", att,
             "(B, nh, T, T)")
        y = att @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
        step("att_v", "10) weighted values att @ v", y, "(B, nh, T, hs)")
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, nh*hs = C)
        step("heads", "11) heads joined side by side", y, "(B, T, C)")
        attn_out = y @ block.attn.c_proj.weight.T + block.attn.c_proj.bias
        step("attn_out", "12) attention output c_proj(heads)", attn_out, "(B, T, C)")
        x = x + attn_out
        step("x1", "13) residual x = x + attention output", x, "(B, T, C)")

        # --- MLP: x + c_proj(gelu(c_fc(ln_2(x))))
        h = _layer_norm(x, block.ln_2)
        step("ln_2", "14) ln_2(x)", h, "(B, T, C)")
        fc = h @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias
        step("c_fc", "15) c_fc: C -> 4C", fc, "(B, T, 4C)")
        gelu = 0.5 * fc * (1 + torch.tanh(math.sqrt(2 / math.pi) * (fc + 0.044715 * fc**3)))
        step("gelu", "16) GELU (tanh form): negatives squashed towards 0", gelu, "(B, T, 4C)")
        mlp_out = gelu @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
        step("mlp_out", "17) MLP output c_proj: 4C -> C", mlp_out, "(B, T, C)")
        x = x + mlp_out
        step("x2", "18) residual x = x + MLP output", x, "(B, T, C)")

        # --- head: ln_f, then the tied output layer (the token embedding again)
        h = _layer_norm(x, model.transformer.ln_f)
        step("ln_f", "19) ln_f(x)", h, "(B, T, C)")
        logits = h @ wte.T  # (B, T, C) @ (C, V) -> (B, T, V): a dot product with every row
        step("logits", "20) logits = ln_f @ wte^T (weight tying)", logits, "(B, T, V)")
        probs = torch.softmax(logits, dim=-1)
        step("probs", "21) next-token probabilities softmax(logits)", probs, "(B, T, V)")
        picked = probs[0, torch.arange(T), tgt[0]]  # (T,) probability of each target
        s["target_probs"] = picked
        loss = -picked.log().mean()
        s["loss"] = loss
        show("22) loss = mean over positions of -log p(target)\n"
             + "\n".join(f"  position {t}: p(target {targets[t]}) = {picked[t].item():.4f}, "
                         f"-log p = {-picked[t].log().item():.4f}" for t in range(T))
             + f"\n  loss = {loss.item():.4f}   (a uniform guess would give ln(10) = "
               f"{math.log(VOCAB):.4f})")

        model_logits, model_loss = model(idx, tgt)
        s["model_logits"], s["model_loss"] = model_logits, model_loss
    diff = (logits - model_logits).abs().max().item()
    assert diff < 1e-6, f"hand-computed logits differ from model(idx) by {diff:.3g}"
    assert abs(loss.item() - model_loss.item()) < 1e-6, (loss.item(), model_loss.item())
    show("check: the hand-computed logits and loss equal model(idx, targets) to 1e-6: yes")
    return s


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description="Every step of a tiny GPT's forward pass (V=10, C=4, T=3), computed by "
                    "hand and checked against the model.")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rounded weights")
    parser.add_argument("--n-head", type=int, choices=(1, 2, 4), default=2,
                        help="attention heads (C=4 is split into n-head heads)")
    parser.add_argument("--show-weights", action="store_true",
                        help="also print every weight matrix and bias")
    args = parser.parse_args(argv)

    model = toy_model(args.seed, args.n_head)
    print(f"GPT: vocab_size={VOCAB}, n_embd={WIDTH}, n_layer=1, n_head={args.n_head} "
          f"(head size {WIDTH // args.n_head}), float64, seed {args.seed}")
    if args.show_weights:
        for name, p in model.named_parameters():
            print(f"{name}  shape {tuple(p.shape)}\n{fmt(p)}")
    print()
    return walk(model, show=lambda text: print(text + "\n"))


if __name__ == "__main__":
    main()
