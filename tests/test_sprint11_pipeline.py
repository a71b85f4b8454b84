"""A tokenizer.json byte-level BPE used everywhere after training: sprint 8's tokenizer record,
prepare_data and train_gpt2 with ``--tokenizer tokenizer.json``, and generate, finetune,
hellaswag and export_gguf from the checkpoint alone.

The tokenizer is trained here with the ``tokenizers`` library (BpeTrainer + ByteLevel) on a text
the test writes; the references are ``tokenizers.Tokenizer.from_file`` for ids, a forward pass
written out here for HellaSwag scores, and llama.cpp (llama-cpp-python) for the GGUF file.
"""

from __future__ import annotations

import argparse
import json
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.optional_deps import llama_cpp_or_skip

tok_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")
utils_mod = import_module("sprints.08_gpt2_assembly.results.utils")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
prepare_data = import_module("sprints.09_train_gpt2.results.prepare_data")
token_encoders = import_module("sprints.09_train_gpt2.results.token_encoders")
train_gpt2 = import_module("sprints.09_train_gpt2.results.train_gpt2")
hellaswag = import_module("sprints.09_train_gpt2.results.hellaswag")
generate_cli = import_module("sprints.10_pretrained_and_generation.results.generate")
generation = import_module("sprints.10_pretrained_and_generation.results.generation")
finetune = import_module("sprints.10_pretrained_and_generation.results.finetune")
export_gguf = import_module("sprints.10_pretrained_and_generation.results.export_gguf")

VOCAB = 400  # 256 byte tokens + <|endoftext|> + 143 merges
PADDED = 448  # the next multiple of 64

WORDS = ("the king and the queen walked through the garden while a quiet river ran past "
         "old stone walls; children laughed, birds sang, and nobody noticed the time. "
         "Café naïve — 日本語 3.14 it's we'll they'd\n\tindented    spaces\n").split(" ")
HELD_OUT = ("The queen's garden, 42 walls & a river —\n  naïve birds sang 日本 <|endoftext|>"
            " nobody's time\x00!")


SYLLABLES = ("ka", "lo", "mi", "ren", "tus", "bra", "quo", "zel", "ph", "ix", "ong", "ve")


def corpus_text(n_words: int, seed: int) -> str:
    """Words from WORDS and made-up ones (enough distinct pairs for VOCAB tokens)."""
    rng = np.random.default_rng(seed)
    words = [WORDS[rng.integers(len(WORDS))] if rng.random() < 0.6 else
             "".join(SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), rng.integers(1, 4)))
             for _ in range(n_words)]
    return " ".join(words)


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("bpe")
    text_file = directory / "train.txt"
    text_file.write_text(corpus_text(3000, 0), encoding="utf-8")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[tok_mod.EOT_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train([str(text_file)], trainer)
    path = directory / "tokenizer.json"
    tok.save(str(path))
    assert tok.get_vocab_size() == VOCAB
    return path


def reference(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


# ----- sprint 8: the tokenizer and its checkpoint record ----------------------------------------
def test_bpe_record_round_trips_through_a_checkpoint(bpe_file, tmp_path):
    tok = tok_mod.get_tokenizer(str(bpe_file))
    assert isinstance(tok, tok_mod.TokenizerJSON) and tok.vocab_size == VOCAB
    assert tok.eot_token_id == reference(bpe_file).token_to_id(tok_mod.EOT_TEXT)
    ckpt = tmp_path / "ckpt.pt"
    utils_mod.save_checkpoint(ckpt, model={}, step=0, extra={"tokenizer": tok.to_dict()})
    bpe_file.rename(bpe_file.with_suffix(".moved"))  # the checkpoint alone must suffice
    try:
        record = utils_mod.load_checkpoint(ckpt)["extra"]["tokenizer"]  # weights_only=True
        again = tok_mod.tokenizer_from_record(record)
        ids = reference(bpe_file.with_suffix(".moved")).encode(
            HELD_OUT, add_special_tokens=False).ids
    finally:
        bpe_file.with_suffix(".moved").rename(bpe_file)
    assert again.encode(HELD_OUT) == ids == tok.encode(HELD_OUT)
    assert tok.eot_token_id in ids  # a special token written in the text is the token
    assert again.decode(ids) == HELD_OUT
    assert again.encode_batch([HELD_OUT, "the"]) == [ids, tok.encode("the")]
    with pytest.raises(ValueError, match="outside this tokenizer's vocabulary"):
        again.decode([VOCAB])  # a padded row is no token


def test_padded_vocab_size_is_the_next_multiple_of_64():
    assert [tok_mod.padded_vocab_size(n) for n in (1, 64, 65, VOCAB, 50257)] == [
        64, 64, 128, PADDED, 50304]


def test_bad_tokenizer_arguments_say_what_to_pass(bpe_file, tmp_path):
    assert tok_mod.tokenizer_arg("char") == "char"
    assert tok_mod.tokenizer_arg(str(bpe_file)) == str(bpe_file)
    with pytest.raises(argparse.ArgumentTypeError, match="gpt2, char, or the path"):
        tok_mod.tokenizer_arg("bert")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        tok_mod.tokenizer_arg(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a tokenizer.json"):
        tok_mod.get_tokenizer(str(broken))
    from tokenizers import Tokenizer, models

    word_level = tmp_path / "words.json"
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(word_level))
    with pytest.raises(ValueError, match="only byte-level BPE"):
        tok_mod.get_tokenizer(str(word_level))
    with pytest.raises(ValueError, match="tokenizer.json BPE"):
        tok_mod.tokenizer_from_record({"type": "sentencepiece"})


# ----- sprint 9: prepare_data and train_gpt2 ----------------------------------------------------
def test_prepare_data_gives_the_ids_of_tokenizer_from_file(bpe_file, tmp_path, capsys):
    docs = [corpus_text(400 + 50 * i, 10 + i) for i in range(6)]
    docs[2] += " a NUL\x00 inside, and <|endoftext|> written as text"
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    out = tmp_path / "prepared"
    assert prepare_data.main(["--input", str(data), "--tokenizer", str(bpe_file), "--out-dir",
                              str(out), "--val-fraction", "0.5", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    tok = tok_mod.TokenizerJSON.from_file(bpe_file)
    assert manifest["tokenizer"] == tok.to_dict()  # the whole file: the data needs no other
    assert manifest["vocab_size"] == VOCAB and manifest["eot_token_id"] == tok.eot_token_id
    ref = reference(bpe_file)
    ref.encode_special_tokens = True  # in documents, "<|endoftext|>" is text (as for GPT-2)
    expected = [ref.encode(d, add_special_tokens=False).ids + [tok.eot_token_id] for d in docs]
    for split, first in (("train", 0), ("val", 1)):  # fraction 0.5: every second document
        files = sorted(out.glob(f"{split}_*.bin"))
        got = np.concatenate([np.fromfile(f, dtype="<u2") for f in files]).tolist()
        assert got == sum(expected[first::2], [])
    # the same command again: the job (identified by the file's sha256) is already done
    assert prepare_data.main(["--input", str(data), "--tokenizer", str(bpe_file), "--out-dir",
                              str(out), "--val-fraction", "0.5", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    # GPT-2's regex pre-tokenizer: the segment cache (safe cuts) applies, and gave those ids
    assert isinstance(token_encoders.make_encoder(manifest["tokenizer"]),
                      token_encoders.CachedGPT2Encoder)

    # training reads the prepared directory with the manifest's tokenizer
    run = tmp_path / "run"
    assert train_gpt2.main(["--data-dir", str(out), "--tokenizer", str(bpe_file), "--out-dir",
                            str(run), "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                            "--block-size", "16", "--batch-size", "2", "--max-steps", "1",
                            "--sample-tokens", "4", "--threads", "1", "--no-progress",
                            "--dtype", "float32"]) == 0
    ckpt = utils_mod.load_checkpoint(run / "latest.pt")
    assert ckpt["config"]["vocab_size"] == PADDED
    assert ckpt["extra"]["tokenizer"] == tok.to_dict()


def test_prepare_data_refuses_a_vocabulary_beyond_uint16(bpe_file, tmp_path):
    spec = json.loads(bpe_file.read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    vocab.update({f"x{i}": len(vocab) + i for i in range(65537 - len(vocab))})
    big = tmp_path / "big.json"
    big.write_text(json.dumps(spec), encoding="utf-8")
    data = tmp_path / "t.txt"
    data.write_text("the king", encoding="utf-8")
    with pytest.raises(prepare_data.DataError, match="65,536 ids"):
        prepare_data.prepare(prepare_data.open_corpus(data), tmp_path / "out", tokenizer=str(big),
                             progress=False)


def test_a_plain_encoder_serves_pre_tokenizers_other_than_gpt2s(bpe_file):
    spec = json.loads(bpe_file.read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["add_prefix_space"] = True  # a space before every segment: no cache
    record = {"type": "bpe", "json": json.dumps(spec)}
    encoder = token_encoders.make_encoder(record)
    assert isinstance(encoder, token_encoders.PlainBPEEncoder)
    from tokenizers import Tokenizer

    ref = Tokenizer.from_str(record["json"])
    ref.encode_special_tokens = True
    text = "the king walked\n the queen"
    assert np.frombuffer(encoder.encode(text), "<u2").tolist() == ref.encode(text).ids


@pytest.fixture(scope="module")
def trained(bpe_file, tmp_path_factory):
    """train_gpt2 --tokenizer tokenizer.json on a tiny model: (checkpoint path, its dict)."""
    directory = tmp_path_factory.mktemp("train")
    text = directory / "text.txt"
    text.write_text(corpus_text(3000, 1), encoding="utf-8")
    out = directory / "run"
    assert train_gpt2.main(["--data-file", str(text), "--tokenizer", str(bpe_file),
                            "--out-dir", str(out), "--cache-dir", str(directory / "cache"),
                            "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
                            "--block-size", "64", "--batch-size", "4", "--max-steps", "6",
                            "--eval-interval", "6", "--warmup-steps", "2", "--lr", "1e-2",
                            "--sample-tokens", "16", "--threads", "1", "--no-progress",
                            "--dtype", "float32"]) == 0
    path = out / "latest.pt"
    return path, utils_mod.load_checkpoint(path)


def test_train_gpt2_pads_the_vocabulary_and_records_the_tokenizer(bpe_file, trained):
    _, ckpt = trained
    assert ckpt["config"]["vocab_size"] == PADDED
    assert ckpt["model"]["transformer.wte.weight"].shape[0] == PADDED
    assert ckpt["extra"]["tokenizer"] == tok_mod.TokenizerJSON.from_file(bpe_file).to_dict()
    log = [json.loads(line) for line in
           (trained[0].parent / "train_log.jsonl").read_text().splitlines() if line.strip()]
    assert any("val_loss" in r for r in log)


def test_train_continues_with_the_checkpoints_tokenizer_only(bpe_file, trained, tmp_path,
                                                             capsys):
    spec = json.loads(bpe_file.read_text(encoding="utf-8"))
    spec["model"]["merges"] = spec["model"]["merges"][:-1]  # another tokenizer, same size
    other = tmp_path / "other.json"
    other.write_text(json.dumps(spec), encoding="utf-8")
    text = tmp_path / "text.txt"
    text.write_text(corpus_text(1500, 3), encoding="utf-8")
    common = ["--data-file", str(text), "--init-from", str(trained[0]), "--out-dir",
              str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--block-size",
              "32", "--batch-size", "2", "--max-steps", "1", "--sample-tokens", "4",
              "--threads", "1", "--no-progress", "--dtype", "float32"]
    assert train_gpt2.main([*common, "--tokenizer", str(other)]) == 1
    assert "not the tokenizer the checkpoint was trained with" in capsys.readouterr().err
    assert train_gpt2.main(common) == 0  # no --tokenizer: the checkpoint's own
    ckpt = utils_mod.load_checkpoint(tmp_path / "run" / "latest.pt")
    assert ckpt["extra"]["tokenizer"] == trained[1]["extra"]["tokenizer"]


# ----- sprint 10 and sprint 9's hellaswag, from the checkpoint alone ----------------------------
class PaddedRowsWin(torch.nn.Module):
    """The model with the padded rows' logits raised far above the rest."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, idx, **kwargs):
        logits, loss = self.model(idx, **kwargs)
        logits = logits.clone()
        logits[..., VOCAB:] += 1e4
        return logits, loss


def test_generation_never_emits_a_padded_row(trained):
    model, _ = model_mod.GPT.from_checkpoint(trained[0])
    boosted = PaddedRowsWin(model.eval())
    idx = torch.tensor([[5, 6, 7]])
    for kwargs in ({"greedy": True}, {"temperature": 1.0, "top_k": 50}):
        free = torch.cat(list(generation.generate(boosted, idx, 8, use_kv_cache=False,
                                                  **kwargs)))
        assert (free >= VOCAB).all()  # the check below has something to stop
        masked = torch.cat(list(generation.generate(boosted, idx, 8, use_kv_cache=False,
                                                    allowed_tokens=VOCAB, **kwargs)))
        assert (masked < VOCAB).all()


def test_generate_cli_from_the_checkpoint_alone(bpe_file, trained, capsys):
    model, _ = model_mod.GPT.from_checkpoint(trained[0])
    ref = reference(bpe_file)
    prompt = "the queen"
    idx = torch.tensor([ref.encode(prompt, add_special_tokens=False).ids])
    with torch.no_grad():
        ids = [int(t) for t in generation.generate(model.eval(), idx, 12, greedy=True,
                                                   allowed_tokens=VOCAB)]
    generate_cli.main(["--checkpoint", str(trained[0]), "--prompt", prompt,
                       "--max-new-tokens", "12", "--greedy", "--device", "cpu"])
    assert capsys.readouterr().out == prompt + ref.decode(ids) + "\n"


def test_finetune_from_the_checkpoint_keeps_its_tokenizer(trained, tmp_path):
    data_file = tmp_path / "text.txt"
    data_file.write_text(corpus_text(1500, 2), encoding="utf-8")
    out = tmp_path / "ft"
    finetune.main(["--init-from", str(trained[0]), "--data-file", str(data_file),
                   "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(out),
                   "--block-size", "32", "--batch-size", "2", "--max-steps", "3",
                   "--eval-interval", "3", "--eval-tokens", "256", "--no-progress"])
    model, ckpt = model_mod.GPT.from_checkpoint(out / "model.pt")
    assert model.config.vocab_size == PADDED
    assert ckpt["extra"]["tokenizer"] == trained[1]["extra"]["tokenizer"]


def test_hellaswag_from_the_checkpoint_alone(bpe_file, trained, tmp_path):
    endings = [["walked through the garden.", "sang.", "ran past old stone walls.",
                "laughed at the river."], ["noticed the time.", "sang and laughed.",
                                           "walked.", "ran through the quiet garden."]]
    items = [{"ind": i, "activity_label": "Walking", "ctx_a": ctx, "ctx_b": "",
              "ctx": ctx, "split": "val", "split_type": "indomain", "label": label,
              "endings": e, "source_id": f"t~{i}"}
             for i, (ctx, e, label) in enumerate([("The king and the queen", endings[0], 0),
                                                  ("Nobody", endings[1], 0)])]
    data = tmp_path / "hellaswag_val.jsonl"
    data.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
    assert hellaswag.main(["--checkpoint", str(trained[0]), "--data-file", str(data),
                           "--device", "cpu", "--out-dir", str(tmp_path / "hs")]) == 0
    result = json.loads((tmp_path / "hs" / "hellaswag.json").read_text())
    # the reference: every ending's summed and mean loss after its context, written out
    model, _ = model_mod.GPT.from_checkpoint(trained[0])
    ref = reference(bpe_file)
    sums, means = [], []
    for it in items:
        ctx = ref.encode(it["ctx"], add_special_tokens=False).ids
        row_s, row_m = [], []
        for ending in it["endings"]:
            end = ref.encode(" " + ending, add_special_tokens=False).ids
            seq = torch.tensor([ctx + end])
            with torch.no_grad():
                logits = model.eval()(seq[:, :-1])[0][0]
            nll = torch.nn.functional.cross_entropy(logits[len(ctx) - 1:], seq[0, len(ctx):],
                                                    reduction="sum").item()
            row_s.append(nll)
            row_m.append(nll / len(end))
        sums.append(row_s)
        means.append(row_m)
    labels = np.array([it["label"] for it in items])
    assert result["acc"] == pytest.approx(np.mean(np.argmin(sums, 1) == labels))
    assert result["acc_norm"] == pytest.approx(np.mean(np.argmin(means, 1) == labels))
    assert result["tokenizer"] == "bpe"


def test_export_gguf_carries_the_vocabulary_and_llama_cpp_agrees(bpe_file, trained, tmp_path,
                                                                 capsys):
    llama_cpp = llama_cpp_or_skip()
    from tests.test_sprint10 import llama_cpp_logits

    out = tmp_path / "bpe.gguf"
    export_gguf.main(["--checkpoint", str(trained[0]), "--out", str(out)])
    assert "400-token BPE tokenizer" in capsys.readouterr().out
    ref = reference(bpe_file)
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=128, verbose=False)
    try:
        assert llm.n_vocab() == PADDED  # one token per embedding row, padding included
        plain = HELD_OUT.replace("<|endoftext|>", "")
        ids = ref.encode(plain, add_special_tokens=False).ids
        assert llm.tokenize(plain.encode(), add_bos=False, special=False) == ids
        with_eot = ref.encode(HELD_OUT, add_special_tokens=False).ids
        assert llm.tokenize(HELD_OUT.encode(), add_bos=False, special=True) == with_eot
        assert llm.detokenize(ids).decode() == plain
        assert llm.token_eos() == ref.token_to_id(tok_mod.EOT_TEXT)
    finally:
        llm.close()
    model, _ = model_mod.GPT.from_checkpoint(trained[0])
    with torch.no_grad():
        ours = model.eval()(torch.tensor([with_eot]))[0][0].numpy()
    theirs = llama_cpp_logits(llama_cpp, out, with_eot, n_ctx=128)
    assert theirs.shape == ours.shape == (len(with_eot), PADDED)
    assert np.abs(theirs - ours).max() < 3e-4 * max(1.0, np.abs(ours).max())


def test_export_gguf_refuses_a_tokenizer_llama_cpp_would_split_differently(bpe_file):
    spec = json.loads(bpe_file.read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "NFC"}
    pytest.importorskip("gguf")
    with pytest.raises(ValueError, match="GPT-2's regex and no normalizer"):
        export_gguf.bpe_vocabulary(tok_mod.TokenizerJSON(json.dumps(spec)), PADDED)
