"""Sprint 12, instruction fine-tuning (results/instruct.py, results/instruction_data.py).

References: hand-built tensors for the collate, a hand loop of log-softmax picks and
F.cross_entropy(ignore_index=-100) for the loss, autograd for the masking claims, an
uninterrupted run for the exact resume, TensorBoard's own reader, a local http.server on
127.0.0.1 for the download. Tiny random GPTs with a small byte-level BPE (trained here by the
tokenizers library, with <|endoftext|>) keep every test fast; no test touches the network.
"""

import http.server
import json
import threading
from importlib import import_module

import pytest
import torch
import torch.nn.functional as F

instruct = import_module("sprints.12_task_finetuning.results.instruct")
idata = import_module("sprints.12_task_finetuning.results.instruction_data")
prompts = import_module("sprints.12_task_finetuning.results.prompts")
config_mod = import_module("sprints.08_gpt2_assembly.results.config")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
tokenizer_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")
utils_mod = import_module("sprints.08_gpt2_assembly.results.utils")

EOT = "<|endoftext|>"
TWO = [{"instruction": "Say hi.", "input": "", "output": "Hi there."},
       {"instruction": "Name a color.", "input": "Pick one.", "output": "Blue sky."}]


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny models: one thread


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE of about 400 tokens that knows the Alpaca and chat scaffolding
    (every prompt here is under 50 tokens, so a block of 64 holds prompt and response)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = [prompts.alpaca_prompt(e) + e["output"] for e in TWO] * 20
    texts += [prompts.chat_prompt(prompts.example_to_messages(e)) for e in TWO] * 20
    tok.train_from_iterator(texts, trainer)
    return tokenizer_mod.TokenizerJSON(tok.to_str())


@pytest.fixture(scope="module")
def base_ckpt(tokenizer, tmp_path_factory):
    """A random GPT (1 layer, width 32, block 64) saved as our checkpoint, with the BPE."""
    torch.manual_seed(0)
    cfg = config_mod.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1,
                               n_head=2, n_embd=32)
    path = tmp_path_factory.mktemp("base") / "base.pt"
    utils_mod.save_checkpoint(path, model=model_mod.GPT(cfg).state_dict(), config=cfg.to_dict(),
                              step=0, extra={"tokenizer": tokenizer.to_dict()})
    return path


def write_json(path, value):
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def cli(base_ckpt, data_file, out, *extra):
    return ["--init-from", str(base_ckpt), "--data-file", str(data_file), "--out-dir", str(out),
            "--no-progress", "--batch-size", "4", "--max-new-tokens", "12", *map(str, extra)]


# ----- collate -------------------------------------------------------------------------------
def test_collate_pads_right_shifts_and_masks_prompt_and_padding():
    a = idata.Encoded([11, 12, 13, 14, 99], [False, False, True, True, True])  # 99: its EOT
    b = idata.Encoded([21, 22, 99], [False, True, True])
    batch = idata.collate([a, b], pad_id=99)
    # padded: [11 12 13 14 99] and [21 22 99 99 99]; inputs drop the last, targets the first
    assert torch.equal(batch.inputs, torch.tensor([[11, 12, 13, 14], [21, 22, 99, 99]]))
    assert torch.equal(batch.targets, torch.tensor([[-100, 13, 14, 99], [22, 99, -100, -100]]))
    assert torch.equal(batch.mask, torch.tensor([[False, True, True, True],
                                                 [True, True, False, False]]))
    # the response's own closing EOT (99) stays a target in both rows; padding EOTs do not
    assert batch.inputs.dtype == batch.targets.dtype == torch.long


def test_encode_cuts_to_max_length_plus_one_and_drops_prompt_only_examples(tokenizer):
    entry = {"instruction": "Say hi.", "input": "", "output": "Hi there. " * 10}
    ids, trained = prompts.encode_example(tokenizer, entry, "alpaca")
    n_prompt = trained.index(True)
    (cut,), counts = idata.encode_examples(tokenizer, [entry], "alpaca", n_prompt + 2)
    assert cut.ids == ids[:n_prompt + 3] and cut.trained == trained[:n_prompt + 3]
    assert counts == {"truncated": 1, "dropped": 0}
    assert len(idata.collate([cut], tokenizer.eot_token_id).inputs[0]) == n_prompt + 2
    # a window the prompt fills leaves no target to train on: the example is dropped
    assert idata.encode_examples(tokenizer, [entry], "alpaca", n_prompt - 1) == (
        [], {"truncated": 1, "dropped": 1})
    full, counts = idata.encode_examples(tokenizer, [entry], "chat", 10_000)
    assert counts["truncated"] == 0 and full[0].ids[-1] == tokenizer.eot_token_id


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert idata.epoch_order(10, 1, 0) == idata.epoch_order(10, 1, 0)
    assert sorted(idata.epoch_order(10, 1, 3)) == list(range(10))
    assert idata.epoch_order(10, 1, 0) != idata.epoch_order(10, 1, 1)
    assert idata.epoch_order(10, 1, 0) != idata.epoch_order(10, 2, 0)
    enc = [idata.Encoded([i, 100 + i], [False, True]) for i in range(10)]
    # step 3 of 4 per epoch is the last (partial: 2 examples) batch of epoch 0
    order = idata.epoch_order(10, 5, 0)
    assert idata.batch_at(enc, 3, 5, 3, 0).inputs.flatten().tolist() == order[9:]
    assert idata.batch_at(enc, 3, 5, 4, 0).inputs.flatten().tolist() == (
        idata.epoch_order(10, 5, 1)[:3])


# ----- the masked loss -----------------------------------------------------------------------
def _batch():
    a = idata.Encoded([1, 2, 3, 4, 5, 6], [False, False, False, True, True, True])
    b = idata.Encoded([7, 8, 9, 6], [False, False, True, True])
    return idata.collate([a, b], pad_id=6)


def test_response_loss_equals_a_hand_loop_and_cross_entropy_with_ignore_index():
    torch.manual_seed(0)
    batch = _batch()
    logits = torch.randn(*batch.inputs.shape, 10, dtype=torch.float64)
    picks = []
    for row in range(logits.size(0)):
        for t in range(logits.size(1)):
            target = int(batch.targets[row, t])
            if target != -100:
                p = torch.exp(logits[row, t]) / torch.exp(logits[row, t]).sum()
                picks.append(-torch.log(p[target]))
    assert len(picks) == 5  # 3 response tokens of a (EOT included) + 2 of b
    hand = torch.stack(picks).mean()
    got = instruct.response_loss(logits, batch.targets)
    assert torch.allclose(got, hand, rtol=1e-12, atol=0)
    ref = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=-100)
    assert torch.allclose(got, ref, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="no response token"):
        instruct.response_loss(logits, torch.full_like(batch.targets, -100))


@pytest.mark.parametrize("chunk", [0, 3])
def test_batch_loss_equals_the_models_own_masked_loss(chunk):
    torch.manual_seed(0)
    model = model_mod.GPT(config_mod.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2,
                                               n_embd=16))
    batch = _batch()
    logits, own = model(batch.inputs, batch.targets)  # sprint 8: cross-entropy, -100 skipped
    got = instruct.batch_loss(model, batch.inputs, batch.targets, chunk)
    assert torch.allclose(got, own, rtol=1e-5, atol=1e-6)
    assert torch.allclose(instruct.response_loss(logits, batch.targets), own, rtol=1e-5)


def test_masked_positions_get_no_gradient_and_their_targets_change_nothing():
    # What masking does NOT mean: "changing prompt tokens changes no gradient". Prompt tokens
    # are the model's INPUTS; through attention they shape the hidden states, and so the
    # logits, of every later (response) position, so changing them changes the loss and its
    # gradients. What masking does mean, and what is checked here: (1) d loss / d logits is
    # exactly zero at every prompt and padding position, and (2) the TARGET ids at those
    # positions are never read: changing them changes neither the loss nor any parameter
    # gradient, bit for bit.
    torch.manual_seed(0)
    model = model_mod.GPT(config_mod.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2,
                                               n_embd=16))
    batch = _batch()
    logits, _ = model(batch.inputs)
    logits.retain_grad()
    instruct.response_loss(logits, batch.targets).backward()
    masked = ~batch.mask
    assert masked.sum() == 5  # 2 prompt + 0 padding in row a, 1 prompt + 2 padding in row b
    assert torch.count_nonzero(logits.grad[masked]) == 0
    assert torch.count_nonzero(logits.grad[batch.mask].abs().sum(-1)) == batch.mask.sum()

    def loss_and_grads(targets):
        model.zero_grad(set_to_none=True)
        loss = instruct.batch_loss(model, batch.inputs, targets)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    # the same targets, but real ids (instead of -100) at the masked positions, then -100
    # again: the loss masks by batch.mask, so build the alternatives from it
    other = torch.where(batch.mask, batch.targets, torch.randint(0, 10, batch.targets.shape))
    loss_a, grads_a = loss_and_grads(batch.targets)
    loss_b, grads_b = loss_and_grads(torch.where(batch.mask, other, -100))
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))
    # a response target that changes does change the gradient: the check above can fail
    flipped = batch.targets.clone()
    flipped[0, 2] = (flipped[0, 2] + 1) % 10
    loss_c, grads_c = loss_and_grads(flipped)
    assert not torch.equal(loss_a, loss_c)
    assert not all(torch.equal(a, c) for a, c in zip(grads_a, grads_c, strict=True))


# ----- data: reading, splitting, download ---------------------------------------------------
def test_split_is_85_10_5_in_file_order():
    rows = [{"instruction": str(i), "input": "", "output": "x"} for i in range(1100)]
    splits = idata.split_examples(rows)
    assert [len(splits[n]) for n in ("train", "val", "test")] == [935, 55, 110]
    assert splits["train"] == rows[:935] and splits["test"] == rows[935:1045]
    assert splits["val"] == rows[1045:]
    small = idata.split_examples(rows[:3])
    assert [len(small[n]) for n in ("train", "val", "test")] == [1, 1, 1]


@pytest.mark.parametrize(("content", "message"), [
    ("[{\"instruction\": \"a\", ", "not valid JSON (line 1"),
    ("[]", "empty list"),
    ("{\"instruction\": \"a\"}", "not a list"),
    ("[{\"instruction\": \"a\", \"input\": \"\"}]", "entry 0 has no 'output'"),
    ("[\"text\"]", "entry 0 is a str"),
    ("[{\"instruction\": \"a\", \"output\": 3}]", "non-text 'output'"),
    ("[{\"instruction\": \"a\", \"output\": \"b\"}]", "too few"),
])
def test_bad_data_files_give_clear_errors(base_ckpt, tmp_path, capsys, content, message):
    path = tmp_path / "data.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        instruct.main(cli(base_ckpt, path, tmp_path / "out"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        instruct.main(cli(base_ckpt, tmp_path / "missing.json", tmp_path / "out"))
    assert "does not exist" in capsys.readouterr().err


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_a_local_server_once_and_the_offline_error(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    write_json(served / "instruction-data.json", TWO * 3)
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "data" / "instruction-data.json"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/instruction-data.json"
        assert idata.download(url, dest) == dest
    finally:
        server.shutdown()
        server.server_close()
    assert idata.read_examples(dest) == TWO * 3
    # present now: reused, the (dead) server is not asked again
    assert idata.download("http://127.0.0.1:1/", dest) == dest
    with pytest.raises(idata.DataError, match="pass a local JSON file .* with --data-file PATH"):
        idata.download("http://127.0.0.1:1/", tmp_path / "none.json", retries=1, backoff_s=0)
    assert not (tmp_path / "none.json").exists()


# ----- end to end ----------------------------------------------------------------------------
def test_overfits_two_examples_end_to_end_and_answers_them_greedily(base_ckpt, tmp_path):
    # 10 copies of two examples: train, val and test all hold them. After training, greedy
    # generation must give exactly the trained responses and stop at <|endoftext|>: training,
    # masking (the prompt is not learned as an answer) and the EOT stop, end to end.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_json(tmp_path / "two.json", TWO * 10)
    out = tmp_path / "out"
    instruct.main(cli(base_ckpt, data, out, "--epochs", "6", "--lr", "1e-2", "--warmup-steps",
                      "0", "--weight-decay", "0"))
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {r["instruction"] for r in rows} == {"Say hi.", "Name a color."}
    for r in rows:
        assert set(r) == {"instruction", "input", "output", "response"}
        assert EOT not in r["response"]
        assert r["response"] == r["output"], r
    summary = json.loads((out / "summary.json").read_text())
    assert {"loss_before", "loss_after", "seconds_per_epoch", "steps", "tokens", "examples",
            "max_length", "val_loss_per_epoch"} <= set(summary)
    assert summary["examples"] == {"train": 17, "val": 1, "test": 2}
    assert summary["steps"] == 6 * 5 and len(summary["seconds_per_epoch"]) == 6
    assert summary["loss_after"]["test"] < 0.5 < 3 < summary["loss_before"]["test"]
    assert summary["max_length"] == 64  # --max-length 256 capped at the block size
    for name in ("train", "val", "test"):
        assert len(json.loads((out / "splits" / f"{name}.json").read_text())) == (
            summary["examples"][name])
    model, ckpt = model_mod.GPT.from_checkpoint(out / "model.pt")  # weights_only reader
    assert ckpt["step"] == 30 and (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 31))
    assert [e.step for e in acc.Scalars("val/loss")] == [0, 5, 10, 15, 20, 25, 30]


def test_lora_chat_bf16_run_saves_a_merged_plain_model(base_ckpt, tokenizer, tmp_path):
    data = write_json(tmp_path / "data.json", TWO * 3)
    out = tmp_path / "out"
    instruct.main(cli(base_ckpt, data, out, "--format", "chat", "--lora-rank", "2",
                      "--max-responses", "1", "--dtype", "bfloat16"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"].startswith("LoRA r=2") and summary["responses"] == 1
    assert summary["dtype"] == "bfloat16" and summary["format"] == "chat"
    assert summary["trainable_parameters"] < summary["total_parameters"] / 5
    model, _ = model_mod.GPT.from_checkpoint(out / "model.pt")  # no LoRA keys left
    base, _ = model_mod.GPT.from_checkpoint(base_ckpt)
    assert set(model.state_dict()) == set(base.state_dict())


def test_resume_continues_bit_for_bit(base_ckpt, tmp_path):
    # N = 4 steps, then --resume for the remaining M = 5 (crossing an epoch boundary, with
    # dropout: its RNG stream must be restored too) == 9 uninterrupted steps, loss for loss.
    data = write_json(tmp_path / "data.json", TWO * 7)  # 11 train -> 3 steps per epoch
    common = ("--epochs", "3", "--dropout", "0.1", "--max-responses", "1")
    full, cut = tmp_path / "full", tmp_path / "cut"
    instruct.main(cli(base_ckpt, data, full, *common))
    instruct.main(cli(base_ckpt, data, cut, *common, "--max-steps", "4"))
    assert not (cut / "model.pt").exists()
    assert utils_mod.load_checkpoint(cut / "ckpt.pt")["step"] == 4
    instruct.main(cli(base_ckpt, data, cut, *common, "--resume"))

    def losses(out):
        lines = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in lines if "loss" in r]

    assert [s for s, _ in losses(cut)] == list(range(1, 10))
    assert losses(cut) == losses(full)  # exact float equality
    a = utils_mod.load_checkpoint(full / "model.pt")["model"]
    b = utils_mod.load_checkpoint(cut / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    s_full, s_cut = (json.loads((d / "summary.json").read_text()) for d in (full, cut))
    assert s_cut["loss_before"] == s_full["loss_before"]
    assert s_cut["loss_after"] == s_full["loss_after"] and s_cut["tokens"] == s_full["tokens"]


def test_resume_refuses_other_settings_and_a_missing_checkpoint(base_ckpt, tmp_path, capsys):
    data = write_json(tmp_path / "data.json", TWO * 3)
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        instruct.main(cli(base_ckpt, data, out, "--resume"))
    assert "no " in capsys.readouterr().err
    instruct.main(cli(base_ckpt, data, out, "--epochs", "2", "--max-steps", "1"))
    with pytest.raises(SystemExit):
        instruct.main(cli(base_ckpt, data, out, "--epochs", "3", "--resume"))
    assert "epochs: 2 then, 3 now" in capsys.readouterr().err


def test_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        instruct.main(["--help"])
    assert exit_info.value.code == 0
    assert "--lora-rank" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        instruct.main(["--lora-alpha", "4"])
    assert exit_info.value.code == 2
