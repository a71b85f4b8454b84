"""The SMS Spam Collection for classification: download, read, balance and split, batch.

The data (Almeida and Gomez Hidalgo, UCI 2011) is one text file, ``SMSSpamCollection``: one
message per line, its label (``ham`` or ``spam``), a tab, the text. 5,574 messages, of which
747 are spam. The pieces, in the order ``classify.py`` uses them:

    download_sms_spam()   the UCI zip -> data/sms_spam/SMSSpamCollection, once (atomic)
    read_messages(path)   the file -> [(label, text), ...], with errors that name the line
    balanced_split(rows)  LLMs-from-scratch ch. 6: undersample every class to the smallest
                          one's size (ham down to the 747 spam), shuffle with a seed, cut
                          70 / 10 / 20 into train / validation / test
    write_splits(...)     train.csv, validation.csv, test.csv (columns label, text)
    MessageDataset        token ids of every message and its class index, encoded once
    Collate               a batch of (ids, label) -> ids (B, T) right-padded to the longest
                          message of the batch, lengths (B,), labels (B,)

Why balance: with 87% ham a model that always says "ham" scores 87% accuracy, and accuracy
stops telling the classes apart; on a balanced split chance is 50% and every point above it
is learned. (The cost: most ham messages are never seen. ``summary.json`` therefore also
reports spam precision and recall.)

Why pad per batch and not to one global length: a batch of short messages then costs only
its own length, and the padding is never read (the classifier reads the last real token;
the causal mask keeps real tokens from attending to the padding after them).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

import numpy as np
import torch

_data = import_module("sprints.09_train_gpt2.results.data")
DataError = _data.DataError

SMS_SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
DATA_FILE_NAME = "SMSSpamCollection"  # the member of the zip, and the file written from it
DEFAULT_DOWNLOAD_DIR = Path("data") / "sms_spam"
SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.1)  # train, validation; the test split gets the rest (0.2)
OFFLINE_HINT = ("pass your copy of the SMSSpamCollection file (label, tab, text per line) "
                "with --data-file PATH")
# Read when download_sms_spam is called, so that a test can make the offline case fast.
DOWNLOAD_RETRIES = 3
DOWNLOAD_BACKOFF_S = 1.0


# ----- getting the file -------------------------------------------------------------------
def download_sms_spam(url: str = SMS_SPAM_URL, directory: str | Path = DEFAULT_DOWNLOAD_DIR,
                      timeout: float = 10.0, retries: int | None = None,
                      backoff_s: float | None = None) -> Path:
    """``directory/SMSSpamCollection``, downloaded and extracted on the first call only.

    Sprint 9's ``data.download`` fetches the zip (retries, atomic, a clear offline error that
    says to pass ``--data-file``); the member ``SMSSpamCollection`` is then extracted with
    ``zipfile`` to a temporary file and renamed into place, so a crash leaves no half file.
    """
    directory = Path(directory)
    target = directory / DATA_FILE_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    archive = _data.download(
        url, directory / "sms_spam_collection.zip", timeout=timeout,
        retries=DOWNLOAD_RETRIES if retries is None else retries,
        backoff_s=DOWNLOAD_BACKOFF_S if backoff_s is None else backoff_s,
        offline_hint=OFFLINE_HINT)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [n for n in zf.namelist() if Path(n).name == DATA_FILE_NAME]
            if not members:
                raise DataError(f"the zip from {url} ({archive}) holds no {DATA_FILE_NAME} "
                                f"(it has {zf.namelist()[:5]}); {OFFLINE_HINT}")
            payload = zf.read(members[0])
    except zipfile.BadZipFile:
        archive.unlink(missing_ok=True)  # not a zip: the next call downloads again
        raise DataError(f"{url} did not give a zip file; {OFFLINE_HINT}") from None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{DATA_FILE_NAME}.")
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.replace(tmp, target)
    return target


def read_messages(path: str | Path) -> list[tuple[str, str]]:
    """``[(label, text), ...]`` from a file of ``label<TAB>text`` lines (blank lines skipped).

    Every line must have a label, a tab and a non-empty text; the first one that does not is
    reported with its line number. At least two labels must occur (one class cannot be
    classified).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; {OFFLINE_HINT}, or leave "
                        "--data-file out to download the UCI copy")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"data file {path} is not UTF-8 text (byte {error.start}); convert "
                        "it, e.g. `iconv -t UTF-8`") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, tab, message = line.partition("\t")
        label, message = label.strip(), message.strip()
        if not tab or not label or not message:
            raise DataError(f"{path} line {number} is not 'label<TAB>text' "
                            f"({line[:60]!r}); fix or delete that line")
        rows.append((label, message))
    if not rows:
        raise DataError(f"data file {path} holds no messages; each line should be "
                        "'label<TAB>text', e.g. 'spam\\tWIN a prize now'")
    if len({label for label, _ in rows}) < 2:
        raise DataError(f"data file {path} has only the label {rows[0][0]!r}; a classifier "
                        "needs at least two labels")
    return rows


# ----- the balanced split -------------------------------------------------------------------
def label_names(rows: Sequence[tuple[str, str]]) -> list[str]:
    """The classes, sorted: ["ham", "spam"], so ham is class 0 and spam class 1."""
    return sorted({label for label, _ in rows})


def balanced_split(rows: Sequence[tuple[str, str]], seed: int,
                   fractions: tuple[float, float] = DEFAULT_FRACTIONS
                   ) -> dict[str, list[tuple[str, str]]]:
    """Undersample every class to the smallest class's count, shuffle, cut train/val/test.

    A pure function of ``(rows, seed, fractions)``: NumPy's generator seeded with ``seed``
    picks which messages of each larger class are kept (in file order), then permutes the
    balanced set. Split sizes as LLMs-from-scratch: ``int(n * 0.7)`` train,
    ``int(n * 0.1)`` validation, the rest test.
    """
    train_fraction, val_fraction = fractions
    if not (0 < train_fraction and 0 < val_fraction and train_fraction + val_fraction < 1):
        raise DataError(f"split fractions {fractions} must be positive and leave some "
                        "messages for the test split")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, (label, _) in enumerate(rows):
        by_label.setdefault(label, []).append(i)
    n_min = min(len(ids) for ids in by_label.values())
    kept: list[int] = []
    for label in sorted(by_label):
        ids = by_label[label]
        chosen = rng.choice(len(ids), size=n_min, replace=False) if len(ids) > n_min else None
        kept.extend(ids if chosen is None else [ids[j] for j in sorted(chosen)])
    order = rng.permutation(len(kept))
    balanced = [rows[kept[j]] for j in order]
    n = len(balanced)
    n_train, n_val = int(n * train_fraction), int(n * val_fraction)
    splits = {"train": balanced[:n_train], "validation": balanced[n_train:n_train + n_val],
              "test": balanced[n_train + n_val:]}
    for name, part in splits.items():
        if not part:
            raise DataError(f"the {name} split is empty ({n} balanced messages: "
                            f"{len(by_label)} classes of {n_min}); give more data")
    return splits


def unlabeled_texts(rows: Sequence[tuple[str, str]],
                    splits: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Every message text of ``rows``, in file order, except the validation and test texts.

    What a language model may read before the classifier is trained (no labels, and nothing
    it will be scored on): the training messages and the messages the balanced split left
    out. A copy of a held-out text elsewhere in the file (the SMS collection repeats some
    messages) is dropped too, so no validation or test message is ever seen.
    """
    held_out = {text for name in ("validation", "test") for _, text in splits[name]}
    return [text for _, text in rows if text not in held_out]


def write_splits(splits: dict[str, list[tuple[str, str]]], directory: str | Path
                 ) -> dict[str, Path]:
    """``directory/{train,validation,test}.csv`` with a ``label,text`` header (csv quoting,
    so commas, quotes and newlines in a message survive); each written atomically."""
    utils = import_module("sprints.08_gpt2_assembly.results.utils")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SPLITS:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", "text"])
        writer.writerows(splits[name])
        content = buffer.getvalue()
        paths[name] = utils.atomic_write(
            directory / f"{name}.csv",
            lambda tmp, c=content: Path(tmp).write_text(c, encoding="utf-8"))
    return paths


def read_split_csv(path: str | Path) -> list[tuple[str, str]]:
    """The rows ``write_splits`` wrote (the benchmark reads them back: the same split)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["label", "text"]:
            raise DataError(f"{path} does not start with the header 'label,text'")
        return [(label, text) for label, text in reader]


# ----- tensors ------------------------------------------------------------------------------
class MessageDataset(torch.utils.data.Dataset):
    """Item i: (token ids of message i as a list, its class index). Encoded once, here."""

    def __init__(self, rows: Sequence[tuple[str, str]], tokenizer, labels: Sequence[str]):
        index = {name: i for i, name in enumerate(labels)}
        unknown = sorted({label for label, _ in rows} - set(index))
        if unknown:
            raise DataError(f"labels {unknown} are not among the classifier's {list(labels)}")
        self.ids = [tokenizer.encode(text) for _, text in rows]
        self.labels = [index[label] for label, _ in rows]
        empty = [i for i, ids in enumerate(self.ids) if not ids]
        if empty:
            raise DataError(f"message {empty[0]} encodes to no tokens; remove it")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.labels[i]


class Collate:
    """``DataLoader(..., collate_fn=Collate(pad_id, max_length))``: a list of
    (ids, label) -> ``ids`` (B, T) long, right-padded with ``pad_id`` to the longest message
    of the batch after cutting each to its first ``max_length`` tokens; ``lengths`` (B,) the
    real tokens per row (so ``lengths - 1`` indexes each row's last real token); ``labels``
    (B,). A class, not a closure, so DataLoader worker processes can pickle it."""

    def __init__(self, pad_id: int, max_length: int):
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.pad_id, self.max_length = pad_id, max_length

    def __call__(self, batch: Sequence[tuple[Sequence[int], int]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cut = [list(ids[:self.max_length]) for ids, _ in batch]
        lengths = torch.tensor([len(ids) for ids in cut], dtype=torch.long)
        if (lengths == 0).any():
            raise ValueError("a message with no tokens cannot be classified")
        ids = torch.full((len(cut), int(lengths.max())), self.pad_id, dtype=torch.long)
        for row, seq in enumerate(cut):
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        return ids, lengths, labels
