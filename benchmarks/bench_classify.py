"""SMS spam: our fine-tuned GPT classifier vs TF-IDF + logistic regression, on ONE split.

The GPT runs first (sprint 12's ``classify.run``), which writes the balanced split as
train.csv / validation.csv / test.csv; the baseline (scikit-learn) then reads those very
files: fitted on train, C chosen on validation, scored once on test. Reported per contender:
test accuracy, spam precision and recall, training seconds, and the CPU.

    flock -x /tmp/cpu.lock uv run python -m benchmarks.bench_classify \\
        --data-file path/to/SMSSpamCollection \\
        --init-from runs/shakespeare_gpt2_small/best.pt

``--lm-steps N`` first continues the base model's language-model training for N steps on
the unlabeled messages of the same split (sms_lm_text.py: training and left-out messages,
no validation or test message, no label), and the classifiers start from that model:

    uv run python -m benchmarks.bench_classify --data-file path/to/SMSSpamCollection \\
        --init-from runs/shakespeare_gpt2_small/best.pt --lm-steps 400 --modes all \\
        --epochs 5 --lr 5e-5 --dropout 0.1
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import import_module
from pathlib import Path

classify = import_module("sprints.12_task_finetuning.results.classify")
sms_data = import_module("sprints.12_task_finetuning.results.sms_data")
sms_lm_text = import_module("sprints.12_task_finetuning.results.sms_lm_text")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_utils = import_module("sprints.08_gpt2_assembly.results.utils")


def tfidf_baseline(split_dir: Path) -> dict:
    """Word 1-2 grams TF-IDF + LogisticRegression; C from {0.1, ..., 100} by val accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    parts = {name: sms_data.read_split_csv(split_dir / f"{name}.csv")
             for name in sms_data.SPLITS}
    texts = {n: [t for _, t in rows] for n, rows in parts.items()}
    y = {n: [int(label == "spam") for label, _ in rows] for n, rows in parts.items()}
    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform(texts["train"])
    x_val = vec.transform(texts["validation"])
    best = None
    for c in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, y["train"])
        acc = accuracy_score(y["validation"], clf.predict(x_val))
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    train_s = time.perf_counter() - start
    pred = best[2].predict(vec.transform(texts["test"]))
    return {"test_accuracy": accuracy_score(y["test"], pred),
            "spam_precision": precision_score(y["test"], pred),
            "spam_recall": recall_score(y["test"], pred), "validation_accuracy": best[0],
            "C": best[1], "train_seconds": train_s}


# train_gpt2 flags of the language-model steps: short blocks (a message is ~20 tokens), a
# peak learning rate below pretraining's default 1e-3, warmup, cosine down to a tenth of it
LM_FLAGS = ["--block-size", "128", "--batch-size", "8", "--lr", "3e-4", "--min-lr", "3e-5",
            "--warmup-steps", "20", "--eval-interval", "50"]


def adapt_language_model(args) -> dict:
    """``--lm-steps`` of train_gpt2 from ``--init-from`` on the split's unlabeled messages."""
    train_gpt2 = import_module("sprints.09_train_gpt2.results.train_gpt2")
    lm_dir = args.out_dir / "lm"
    rows = sms_data.read_messages(args.data_file)
    text_file, n_messages = sms_lm_text.write_lm_text(rows, args.seed, lm_dir)
    start = time.perf_counter()
    status = train_gpt2.main(["--init-from", args.init_from, "--data-file", str(text_file),
                              "--max-steps", str(args.lm_steps), *LM_FLAGS,
                              "--out-dir", str(lm_dir)])
    if status:
        raise SystemExit(f"the language-model steps failed (exit status {status})")
    summary = json.loads((lm_dir / "summary.json").read_text())
    return {"steps": args.lm_steps, "messages": n_messages, "seconds": time.perf_counter() - start,
            "best_val_loss": summary["best_val_loss"], "checkpoint": str(lm_dir / "best.pt")}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", type=Path, required=True)
    p.add_argument("--init-from", default=str(classify.DEFAULT_INIT))
    p.add_argument("--modes", nargs="+", choices=classify.TRAINABLE, default=["all", "head"],
                   help="--trainable modes of the GPT classifier to run (same split)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=None, help="classify.py's --lr (its default)")
    p.add_argument("--dropout", type=float, default=None,
                   help="classify.py's --dropout (its default)")
    p.add_argument("--lm-steps", type=int, default=0,
                   help="language-model steps on the split's unlabeled messages first (0: none)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "bench_classify")
    args = p.parse_args(argv)
    machine = _devices.describe_cpu()
    print(f"machine: {machine}")
    report: dict = {"machine": machine, "data_file": str(args.data_file),
                    "init_from": args.init_from, "seed": args.seed, "contenders": {}}
    init_from = args.init_from
    if args.lm_steps > 0:
        report["lm_adaptation"] = adapt_language_model(args)
        init_from = report["lm_adaptation"]["checkpoint"]
    extra = []
    for flag, value in (("--lr", args.lr), ("--dropout", args.dropout)):
        extra += [] if value is None else [flag, str(value)]
    for mode in args.modes:
        run_dir = args.out_dir / f"gpt_{mode}"
        summary = classify.main([
            "--data-file", str(args.data_file), "--init-from", init_from,
            "--trainable", mode, "--epochs", str(args.epochs), "--seed", str(args.seed),
            "--out-dir", str(run_dir), "--no-progress", *extra])
        report["contenders"][f"gpt ({mode})"] = {
            "test_accuracy": summary["accuracy"]["test"],
            "spam_precision": summary["test_precision"], "spam_recall": summary["test_recall"],
            "validation_accuracy": summary["accuracy"]["validation"],
            "train_seconds": summary["train_seconds"], "best_epoch": summary["best_epoch"]}
    # every classify run with the same data and seed wrote the same split; use the first
    report["contenders"]["tfidf + logistic regression"] = tfidf_baseline(
        args.out_dir / f"gpt_{args.modes[0]}")
    print(f"\n{machine}; balanced split seed {args.seed}")
    if "lm_adaptation" in report:
        lm = report["lm_adaptation"]
        print(f"first {lm['steps']} language-model steps on {lm['messages']:,} unlabeled "
              f"messages: {lm['seconds']:.0f} s, validation loss {lm['best_val_loss']:.3f}")
    print(f"{'contender':32s} {'test acc':>9s} {'spam P':>7s} {'spam R':>7s} {'train s':>8s}")
    for name, r in report["contenders"].items():
        print(f"{name:32s} {r['test_accuracy']:9.3f} {r['spam_precision']:7.3f} "
              f"{r['spam_recall']:7.3f} {r['train_seconds']:8.1f}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    _utils.atomic_write(args.out_dir / "bench_classify.json",
                        lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    return report


if __name__ == "__main__":
    main()
