"""Sprint 12: the GPT text classifier (classify.py) and its SMS data (sms_data.py).

References: hand computations from ``model.hidden_states``, closed-form parameter counts,
scikit-learn's metrics, matplotlib's PNG reader, TensorBoard's event reader, a local HTTP
server standing in for the UCI host. Tiny random GPTs with GPT-2's tokenizer; the data is
written by each test.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile
from importlib import import_module

import pytest
import torch

classify = import_module("sprints.12_task_finetuning.results.classify")
sms_data = import_module("sprints.12_task_finetuning.results.sms_data")
sms_lm_text = import_module("sprints.12_task_finetuning.results.sms_lm_text")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
config_mod = import_module("sprints.08_gpt2_assembly.results.config")
tokenizer_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")
utils_mod = import_module("sprints.08_gpt2_assembly.results.utils")

V, T, L, C = 50257, 32, 2, 32


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny models: one thread


def tiny_gpt(seed=0, n_layer=L):
    torch.manual_seed(seed)
    cfg = config_mod.GPTConfig(vocab_size=V, block_size=T, n_layer=n_layer, n_head=2, n_embd=C)
    return model_mod.GPT(cfg).eval()


@pytest.fixture(scope="module")
def tok():
    return tokenizer_mod.get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    model = tiny_gpt(1, n_layer=1)
    path = tmp_path_factory.mktemp("base") / "base.pt"
    utils_mod.save_checkpoint(path, model=model.state_dict(), config=model.config.to_dict(),
                              step=0, extra={"tokenizer": {"type": "gpt2"}})
    return path


SPAM = ["win cash prize now", "free money claim today", "urgent prize call now",
        "claim your free cash", "win a free prize"]
HAM = ["see you at lunch", "are we meeting later", "ok i am on my way home",
       "thanks for dinner yesterday", "call me when you get home"]


def write_sms(path, n_ham=40, n_spam=30):
    lines = [f"ham\t{HAM[i % len(HAM)]} {i}" for i in range(n_ham)]
    lines += [f"spam\t{SPAM[i % len(SPAM)]} {i}" for i in range(n_spam)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----- the head reads the last real token -------------------------------------------------
def test_logits_are_the_head_at_the_last_real_token_and_padding_changes_nothing(tok):
    model = classify.GPTClassifier(tiny_gpt(2), 2).eval()
    texts = ["hello there, how are you doing today?", "hi", "spam spam spam"]
    ids, lengths, _ = sms_data.Collate(tok.eot_token_id, T)([(tok.encode(t), 0) for t in texts])
    with torch.no_grad():
        logits = model(ids, lengths)
        h = model.gpt.hidden_states(ids)
        w, b = model.head.weight, model.head.bias
        for row, text in enumerate(texts):
            n = len(tok.encode(text))
            expected = h[row, n - 1] @ w.T + b
            assert torch.allclose(logits[row], expected, atol=1e-6, rtol=1e-6)
            alone = model(torch.tensor([tok.encode(text)]), torch.tensor([n]))[0]
            assert torch.allclose(logits[row], alone, atol=1e-5, rtol=1e-5)
        # the last position of a padded row is padding, and gives something else
        padded_last = h[1, -1] @ w.T + b
        assert not torch.allclose(padded_last, logits[1], atol=1e-3)


def test_collate_pads_to_the_longest_and_truncates():
    collate = sms_data.Collate(pad_id=99, max_length=4)
    ids, lengths, labels = collate([([1, 2], 0), ([3, 4, 5], 1), ([6], 1)])
    assert ids.tolist() == [[1, 2, 99], [3, 4, 5], [6, 99, 99]]
    assert lengths.tolist() == [2, 3, 1] and labels.tolist() == [0, 1, 1]
    ids, lengths, _ = collate([([1, 2, 3, 4, 5, 6], 0), ([7], 1)])
    assert ids.tolist() == [[1, 2, 3, 4], [7, 99, 99, 99]] and lengths.tolist() == [4, 1]


# ----- the split ----------------------------------------------------------------------------
def test_balanced_split_sizes_balance_and_determinism():
    rows = [("ham", f"h{i}") for i in range(300)] + [("spam", f"s{i}") for i in range(47)]
    a = sms_data.balanced_split(rows, seed=5)
    n = 2 * 47
    assert [len(a[s]) for s in sms_data.SPLITS] == [int(n * .7), int(n * .1),
                                                    n - int(n * .7) - int(n * .1)]
    every = [r for s in sms_data.SPLITS for r in a[s]]
    assert len(set(every)) == n  # no message twice
    assert sum(label == "spam" for label, _ in every) == 47  # all spam, as many ham
    assert {r for r in every if r[0] == "spam"} == {r for r in rows if r[0] == "spam"}
    assert a == sms_data.balanced_split(rows, seed=5)
    assert a != sms_data.balanced_split(rows, seed=6)


# ----- what trains -------------------------------------------------------------------------
def test_unlabeled_texts_are_all_but_the_held_out_messages_with_their_copies():
    rows = [("ham", f"h{i}") for i in range(60)] + [("spam", f"s{i}") for i in range(20)]
    splits = sms_data.balanced_split(rows, seed=3)
    held_out = [t for name in ("validation", "test") for _, t in splits[name]]
    # a copy of a held-out message elsewhere in the file must not slip through
    rows = rows + [("ham", held_out[0])]
    texts = sms_data.unlabeled_texts(rows, splits)
    assert not set(texts) & set(held_out)
    assert {t for _, t in splits["train"]} <= set(texts)  # the training messages are read
    # every message is either held out or read, in file order
    assert texts == [t for _, t in rows if t not in set(held_out)]
    assert len(texts) == 80 - len(held_out)


def test_sms_lm_text_writes_the_split_s_unlabeled_messages(tmp_path, capsys):
    data = write_sms(tmp_path / "sms.txt")
    path = sms_lm_text.main(["--data-file", str(data), "--seed", "7",
                             "--out-dir", str(tmp_path / "out")])
    assert path == tmp_path / "out" / sms_lm_text.FILE_NAME
    lines = path.read_text(encoding="utf-8").splitlines()
    # the split classify.py makes with --seed 7: none of its validation or test messages,
    # every other message as its bare text (no label), in file order
    rows = sms_data.read_messages(data)
    splits = sms_data.balanced_split(rows, 7)
    held_out = {t for name in ("validation", "test") for _, t in splits[name]}
    assert lines == [text for _, text in rows if text not in held_out]
    assert len(lines) == 70 - len(held_out) > 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        sms_lm_text.main(["--data-file", str(tmp_path / "missing.txt"),
                          "--out-dir", str(tmp_path / "out")])
    assert "does not exist" in capsys.readouterr().err


def block_params(c):
    return 12 * c * c + 13 * c  # ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj


@pytest.mark.parametrize("mode,extra", [("head", {}), ("last-blocks", {"n_last_blocks": 1}),
                                        ("last-blocks", {"n_last_blocks": 2}), ("all", {}),
                                        ("lora", {"lora_rank": 4})])
def test_each_trainable_mode_trains_exactly_its_parameters(mode, extra):
    model = classify.GPTClassifier(tiny_gpt(3), 2)
    classify.set_trainable(model, mode, **extra)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    head = C * 2 + 2
    if mode == "head":
        assert trained == {"head.weight", "head.bias"} and count == head
    elif mode == "last-blocks":
        k = extra["n_last_blocks"]
        assert count == k * block_params(C) + 2 * C + head
        first = L - k
        assert all(n.startswith(("head.", "gpt.transformer.ln_f."))
                   or int(n.split(".")[3]) >= first for n in trained)
    elif mode == "all":
        assert count == V * C + T * C + L * block_params(C) + 2 * C + head
    else:
        r = extra["lora_rank"]
        # A (r, in) + B (out, r) on c_attn (C->3C), attn.c_proj (C->C), c_fc (C->4C),
        # mlp.c_proj (4C->C)
        assert count == L * r * (4 * C + 2 * C + 5 * C + 5 * C) + head
        assert all("lora_" in n or n.startswith("head.") for n in trained)


# ----- end to end -------------------------------------------------------------------------
def test_end_to_end_learns_writes_files_and_predicts(base_ckpt, tmp_path, capsys):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_sms(tmp_path / "SMSSpamCollection")
    out = tmp_path / "run"
    summary = classify.main(["--init-from", str(base_ckpt), "--data-file", str(data),
                             "--out-dir", str(out), "--epochs", "3", "--lr", "3e-3",
                             "--no-progress"])
    assert summary["accuracy"]["test"] >= 0.9 and summary["accuracy"]["validation"] >= 0.8
    for name in ("best.pt", "train.csv", "validation.csv", "test.csv", "confusion_matrix.png",
                 "summary.json", "log.jsonl"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "loss", "test_precision", "test_recall", "test_f1",
                "train_seconds", "confusion_matrix"):
        assert key in on_disk
    assert set(on_disk["accuracy"]) == {"train", "validation", "test"}
    assert len(sms_data.read_split_csv(out / "test.csv")) == summary["split_sizes"]["test"]
    assert Image.open(out / "confusion_matrix.png").size[0] > 100
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert len(events.Scalars("validation/accuracy")) == 4  # epoch 0 and 3 epochs
    capsys.readouterr()
    got = classify.main(["--checkpoint", str(out / "best.pt"), "--predict",
                         "claim your free cash prize now", "see you at lunch later"])
    assert [label for label, _ in got] == ["spam", "ham"]
    assert all(0.5 < p <= 1.0 for _, p in got)
    assert capsys.readouterr().out.splitlines()[0].startswith("spam\t")


def test_metrics_agree_with_sklearn():
    from sklearn import metrics

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=g)
    p = torch.where(torch.rand(200, generator=g) < 0.8, y, 1 - y)
    ours = classify.class_metrics(p, y, positive=1, num_classes=2)
    assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(y, p))
    assert ours["precision"] == pytest.approx(metrics.precision_score(y, p))
    assert ours["recall"] == pytest.approx(metrics.recall_score(y, p))
    assert ours["f1"] == pytest.approx(metrics.f1_score(y, p))
    assert classify.confusion_matrix(p, y, 2).tolist() == metrics.confusion_matrix(y, p).tolist()


# ----- download and bad input --------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_extracts_the_collection_from_a_local_server(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    content = b"ham\thello\nspam\twin now\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme", "about")
        zf.writestr("SMSSpamCollection", content)
    (served / "sms.zip").write_bytes(buffer.getvalue())
    (served / "notzip.zip").write_bytes(b"not a zip")
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        path = sms_data.download_sms_spam(f"{base}/sms.zip", tmp_path / "d", retries=1)
        assert path.read_bytes() == content
        assert sms_data.read_messages(path) == [("ham", "hello"), ("spam", "win now")]
        with pytest.raises(sms_data.DataError, match="did not give a zip"):
            sms_data.download_sms_spam(f"{base}/notzip.zip", tmp_path / "e", retries=1)
    finally:
        server.shutdown()


def test_offline_and_bad_files_give_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sms_data, "DOWNLOAD_RETRIES", 1)
    with pytest.raises(SystemExit) as info:
        classify.main(["--data-url", "http://127.0.0.1:1/x.zip", "--download-dir",
                       str(tmp_path / "d"), "--out-dir", str(tmp_path / "o")])
    assert info.value.code == 1 and "--data-file" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    cases = [("missing", None, "does not exist"), ("malformed", "ham\thi\nno tab here\n",
                                                   "line 2"),
             ("empty", "\n\n", "holds no messages"), ("one label", "ham\ta\nham\tb\n",
                                                       "two labels")]
    for name, text, message in cases:
        path = tmp_path / "nope.txt" if text is None else bad
        if text is not None:
            bad.write_text(text, encoding="utf-8")
        with pytest.raises(SystemExit) as info:
            classify.main(["--data-file", str(path), "--out-dir", str(tmp_path / "o")])
        assert info.value.code == 1, name
        assert message in capsys.readouterr().err, name


def test_bad_options_are_usage_errors(base_ckpt, tmp_path, capsys):
    for args, message in ((["--predict", "hi"], "needs --checkpoint"),
                          (["--n-last-blocks", "2"], "last-blocks"),
                          (["--lora-rank", "2"], "--trainable lora")):
        with pytest.raises(SystemExit) as info:
            classify.main(args)
        assert info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # a base model, not a classifier
        classify.main(["--checkpoint", str(base_ckpt), "--predict", "hi"])
    assert info.value.code == 1 and "not a classifier" in capsys.readouterr().err


def test_bench_classify_reads_the_messages_first_then_classifies_on_the_same_split(tmp_path):
    # --lm-steps: train_gpt2 continues the base model on the split's unlabeled messages,
    # and the classifier starts from the checkpoint that wrote (a model with block_size 128,
    # the benchmark's block size for those steps).
    pytest.importorskip("sklearn")
    bench_classify = import_module("benchmarks.bench_classify")
    torch.manual_seed(0)
    cfg = config_mod.GPTConfig(vocab_size=V, block_size=128, n_layer=1, n_head=2, n_embd=C)
    base = tmp_path / "base.pt"
    utils_mod.save_checkpoint(base, model=model_mod.GPT(cfg).state_dict(),
                              config=cfg.to_dict(), step=0, extra={"tokenizer": {"type": "gpt2"}})
    data = write_sms(tmp_path / "sms.txt", n_ham=400, n_spam=300)
    out = tmp_path / "bench"
    report = bench_classify.main(["--data-file", str(data), "--init-from", str(base),
                                  "--lm-steps", "2", "--modes", "head", "--epochs", "1",
                                  "--out-dir", str(out)])
    lm = report["lm_adaptation"]
    assert lm["steps"] == 2 and lm["checkpoint"] == str(out / "lm" / "best.pt")
    assert json.loads((out / "lm" / "summary.json").read_text())["final_step"] == 2
    summary = json.loads((out / "gpt_head" / "summary.json").read_text())
    assert summary["init_from"] == lm["checkpoint"]  # the classifier started from it
    # the language model read no validation or test message of the classifier's split
    held_out = {t for name in ("validation", "test")
                for _, t in sms_data.read_split_csv(out / "gpt_head" / f"{name}.csv")}
    read = (out / "lm" / sms_lm_text.FILE_NAME).read_text(encoding="utf-8").splitlines()
    assert lm["messages"] == len(read) == 700 - len(held_out) and not set(read) & held_out
    assert set(report["contenders"]) == {"gpt (head)", "tfidf + logistic regression"}
