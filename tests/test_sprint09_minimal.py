"""Sprint 9's minimal core (train_minimal.py) against the tool (train_gpt2.py).

Reference: train_gpt2.py itself, run with the matching flags in float32: every training loss
and every validation loss must be the same number, with dropout on too (the same batches, the
same initial weights, the same AdamW update, the same dropout masks). Plus: its defaults are
the tool's, its schedule is the closed form, its checkpoint loads in sprint 10's generate.
"""

from __future__ import annotations

import json
import math
from importlib import import_module

import numpy as np
import pytest
import torch
from PIL import Image

T9 = "sprints.09_train_gpt2.results"
minimal = import_module(f"{T9}.train_minimal")
train_gpt2 = import_module(f"{T9}.train_gpt2")
settings = import_module(f"{T9}.settings")
data_lib = import_module(f"{T9}.data")
generate_cli = import_module("sprints.10_pretrained_and_generation.results.generate")

SMALL = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "16",
         "--batch-size", "4", "--max-steps", "12", "--warmup-steps", "3", "--eval-interval", "4",
         "--no-progress"]


def write_text(path, n_chars: int = 6000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "KING:", "QUEEN:"]
    text = "".join(words[i] + ("\n" if rng.random() < 0.1 else " ")
                   for i in rng.integers(len(words), size=n_chars // 3))
    path.write_text(text[:n_chars], encoding="utf-8")


def read_log(path):
    rows = [json.loads(line) for line in (path / "train_log.jsonl").read_text().splitlines()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    return train, val


@pytest.mark.parametrize("dropout", ["0.0", "0.1"])
def test_same_losses_as_train_gpt2(tmp_path, dropout):
    text = tmp_path / "input.txt"
    write_text(text)
    common = ["--data-file", str(text), *SMALL, "--dropout", dropout, "--sample-tokens", "0"]
    assert minimal.main([*common, "--out-dir", str(tmp_path / "core")]) == 0
    assert train_gpt2.main([*common, "--out-dir", str(tmp_path / "tool"), "--dtype", "float32",
                            "--cache-dir", str(tmp_path / "cache")]) == 0
    core_train, core_val = read_log(tmp_path / "core")
    tool_train, tool_val = read_log(tmp_path / "tool")
    assert [s for s, _ in core_train] == list(range(1, 13))
    assert [s for s, _ in core_val] == [4, 8, 12]
    # One code path of the same float32 ops: equal to the last bit, not merely close.
    assert core_train == tool_train
    assert core_val == tool_val
    assert core_train[-1][1] < core_train[0][1]  # and it did learn something


def test_defaults_are_train_gpt2s():
    args = minimal.build_parser().parse_args([])
    for name in ("n_layer", "n_head", "n_embd", "block_size", "dropout", "batch_size",
                 "max_steps", "lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2",
                 "grad_clip", "eval_interval", "sample_tokens"):
        assert getattr(args, name) == settings.DEFAULTS[name], name
    tool = settings.build_parser().parse_args([])
    assert (args.seed, args.val_fraction) == (tool.seed, tool.val_fraction)


def test_schedule_is_warmup_then_cosine():
    lr = [minimal.lr_at(s, 1.0, 0.1, 10, 110) for s in range(120)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)  # (s + 1) / warmup
    assert lr[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr[110:] == [0.1] * 10
    assert all(a >= b for a, b in zip(lr[9:-1], lr[10:], strict=True))


def test_batches_are_shifted_windows_and_match_the_tool():
    ids = np.arange(1000, dtype=np.int64)
    x, y = minimal.get_batch(ids, 16, 5, seed=7, step=3)
    assert x.shape == y.shape == (5, 16)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y, x + 1)
    tx, ty = data_lib.get_batch(ids.astype(np.uint16), 16, 5, 7, 3)
    assert torch.equal(x, tx) and torch.equal(y, ty)


def test_evaluate_covers_every_token_once(tmp_path):
    """A closed form: a model that predicts uniformly has loss log(V) on every token."""
    torch.manual_seed(0)
    model = import_module("sprints.08_gpt2_assembly.results.model").GPT(
        import_module("sprints.08_gpt2_assembly.results.config").GPTConfig(
            vocab_size=11, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied: all logits 0 -> uniform
    ids = np.arange(45, dtype=np.int64) % 11  # 5 windows of 8 + a tail of 4 predictions
    assert minimal.evaluate(model, ids, 8, 2, "cpu") == pytest.approx(math.log(11))


def test_checkpoint_generates_with_sprint_10(tmp_path, capsys):
    text = tmp_path / "input.txt"
    write_text(text)
    out = tmp_path / "run"
    assert minimal.main(["--data-file", str(text), *SMALL, "--sample-tokens", "20",
                         "--out-dir", str(out)]) == 0
    assert {"train_log.jsonl", "best.pt", "summary.json", "tensorboard", "loss.png"} <= {
        p.name for p in out.iterdir()}
    with Image.open(out / "loss.png") as image:  # a real PNG a viewer opens
        assert image.format == "PNG" and image.size == (700, 400)
    assert "--- sample ---" in capsys.readouterr().out
    generate_cli.main(["--checkpoint", str(out / "best.pt"), "--prompt", "KING:",
                       "--max-new-tokens", "10", "--seed", "0"])
    assert capsys.readouterr().out.strip()


def test_bad_input_is_refused_with_advice(tmp_path, capsys):
    assert minimal.main(["--data-file", str(tmp_path / "missing.txt")]) == 1
    assert "--data-file" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("abc")
    assert minimal.main(["--data-file", str(short), "--no-progress",
                         "--out-dir", str(tmp_path / "o")]) == 1
    assert "--block-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        minimal.main(["--n-embd", "30", "--n-head", "4"])
    assert "multiple of --n-head" in capsys.readouterr().err
