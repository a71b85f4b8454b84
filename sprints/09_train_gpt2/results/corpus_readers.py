"""Documents from any corpus, streamed as pieces that tokenize independently (``safe_cuts``).

Input kinds (``open_corpus``):
- a text file: one document, read in blocks, never whole;
- a JSON Lines file (``.jsonl``, ``.json``): one document per line, the string under
  ``text_field``;
- a Parquet file (``.parquet``): one document per row of the ``text_field`` column, read one
  row group at a time;
- a directory: every file below it (recursively, hidden names skipped, in sorted path order),
  each read by its suffix as above;
- a Hugging Face dataset name (``open_hf_dataset``), streamed with ``datasets``.

Every piece carries the ``Cursor`` where it starts. Given a cursor, ``iter_pieces`` restarts
there and yields exactly the pieces an uninterrupted pass yields from that point, which is
what lets an interrupted prepare_data resume.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from .data_errors import DataError
from .safe_cuts import iter_pieces

READ_BYTES = 1 << 20  # text files are read 1 MiB at a time
PARQUET_BATCH_ROWS = 1024
JSONL_SUFFIXES = {".jsonl", ".json"}
PARQUET_SUFFIXES = {".parquet"}


@dataclass(frozen=True)
class Cursor:
    """Where a piece starts: ``file`` (index in the corpus's sorted file list), ``row`` (the
    document's line or row in that file), ``byte`` (text file: the piece's byte offset; JSON
    Lines: the line's byte offset) and ``char`` (the piece's offset inside a JSONL, Parquet or
    dataset document)."""

    file: int = 0
    row: int = 0
    byte: int = 0
    char: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Cursor:
        return cls(**{k: int(data[k]) for k in ("file", "row", "byte", "char")})


class Piece(NamedTuple):
    text: str
    cursor: Cursor  # where this piece starts
    last: bool  # the final piece of its document (end-of-text follows it)
    forced: bool  # ended at a forced cut (no safe cut within MAX_PIECE_CHARS)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return "jsonl" if suffix in JSONL_SUFFIXES else "parquet" if suffix in PARQUET_SUFFIXES \
        else "text"


def _pieces_of_document(text: str, cursor: Cursor) -> Iterator[Piece]:
    """A document held in memory (a JSONL line, a Parquet row), from ``cursor.char`` on."""
    char = cursor.char
    for piece, last, forced in iter_pieces([text[char:]] if char else [text]):
        yield Piece(piece, Cursor(cursor.file, cursor.row, cursor.byte, char), last, forced)
        char += len(piece)


def _text_file_pieces(path: Path, start: Cursor) -> Iterator[Piece]:
    with open(path, "rb") as f:
        f.seek(start.byte)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        read_so_far = start.byte

        def chunks() -> Iterator[str]:
            nonlocal read_so_far
            while block := f.read(READ_BYTES):
                try:
                    yield decoder.decode(block)
                except UnicodeDecodeError as error:
                    raise DataError(
                        f"{path} is not UTF-8 text (byte {read_so_far + error.start}: "
                        f"{error.reason}); convert it (e.g. `iconv -t UTF-8`) or move it out "
                        "of the input, then run prepare_data again"
                    ) from None
                read_so_far += len(block)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise DataError(f"{path} ends in the middle of a UTF-8 character; fix or "
                                "remove the file, then run prepare_data again") from None

        byte = start.byte
        for piece, last, forced in iter_pieces(chunks()):
            yield Piece(piece, Cursor(start.file, 0, byte, 0), last, forced)
            byte += len(piece.encode("utf-8"))


def _document_text(value, field: str, where: str, keys) -> str:
    if isinstance(value, str):
        return value
    if value is None and field not in keys:
        raise DataError(f"{where} has no field {field!r} (it has {sorted(keys)[:10]}); pass "
                        "the field that holds the text with --text-field NAME")
    raise DataError(f"{where}: field {field!r} is {type(value).__name__}, not text; pass the "
                    "field that holds the text with --text-field NAME")


def _jsonl_pieces(path: Path, start: Cursor, field: str) -> Iterator[Piece]:
    with open(path, "rb") as f:
        f.seek(start.byte)
        row, byte = start.row, start.byte
        for line in f:
            line_start, byte = byte, byte + len(line)
            if line.strip():
                where = f"{path} line {row + 1}"
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    hint = (" (a JSON array? prepare_data reads JSON Lines: one object per "
                            "line)" if line.lstrip()[:1] == b"[" else "")
                    raise DataError(f"{where} is not valid JSON{hint}: {error}") from None
                if not isinstance(record, dict):
                    raise DataError(f"{where} is a JSON {type(record).__name__}, not an object "
                                    f"with a {field!r} field; prepare_data reads JSON Lines: "
                                    "one object per line")
                text = _document_text(record.get(field), field, where, record.keys())
                char = start.char if row == start.row else 0
                yield from _pieces_of_document(text, Cursor(start.file, row, line_start, char))
            row += 1


def _parquet_pieces(path: Path, start: Cursor, field: str) -> Iterator[Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path} is not a readable Parquet file ({error})") from None
    names = parquet.schema_arrow.names
    if field not in names:
        raise DataError(f"{path} has no column {field!r} (it has {names[:10]}); pass the column "
                        "that holds the text with --text-field NAME")
    column_type = parquet.schema_arrow.field(field).type
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        raise DataError(f"{path}: column {field!r} holds {column_type}, not text; pass the "
                        "column that holds the text with --text-field NAME")
    # Skip whole row groups before the cursor's row, then rows inside the first one read.
    group, row = 0, 0
    meta = parquet.metadata
    while group < meta.num_row_groups and row + meta.row_group(group).num_rows <= start.row:
        row += meta.row_group(group).num_rows
        group += 1
    groups = list(range(group, meta.num_row_groups))
    if not groups:
        return
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=groups,
                                      columns=[field]):
        for text in batch.column(0).to_pylist():
            if row >= start.row and text is not None:  # a null row is no document
                char = start.char if row == start.row else 0
                yield from _pieces_of_document(text, Cursor(start.file, row, 0, char))
            row += 1


class FileCorpus:
    """A text, JSON Lines or Parquet file, or a directory of them."""

    def __init__(self, path: str | os.PathLike, text_field: str = "text") -> None:
        path = Path(path)
        if path.is_dir():
            files = []
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                files += [Path(root) / n for n in names if not n.startswith(".")]
            files = sorted((f for f in files if f.is_file()),
                           key=lambda f: f.relative_to(path).as_posix())
            if not files:
                raise DataError(f"the directory {path} has no files (hidden ones are skipped); "
                                "pass a directory of text, .jsonl or .parquet files")
        elif path.is_file():
            files = [path]
        else:
            raise DataError(f"--input {path} does not exist; pass a text, .jsonl or .parquet "
                            "file or a directory of them")
        self.path, self.files, self.text_field = path, files, text_field
        stats = [f.stat() for f in files]
        self.total_bytes = sum(s.st_size for s in stats)
        fingerprint = hashlib.sha256()
        for f, s in zip(files, stats, strict=True):
            name = f.relative_to(path).as_posix() if path.is_dir() else f.name
            fingerprint.update(f"{name}\t{s.st_size}\t{s.st_mtime_ns}\n".encode())
        kinds = sorted({_kind(f) for f in files})
        self.description = {"kind": "files", "path": str(path), "formats": kinds,
                            "files": len(files), "bytes": self.total_bytes,
                            "text_field": text_field if kinds != ["text"] else None,
                            "fingerprint": fingerprint.hexdigest()}

    def iter_pieces(self, start: Cursor = Cursor()) -> Iterator[Piece]:
        for index in range(start.file, len(self.files)):
            path = self.files[index]
            begin = start if index == start.file else Cursor(file=index)
            kind = _kind(path)
            if kind == "text":
                yield from _text_file_pieces(path, begin)
            elif kind == "jsonl":
                yield from _jsonl_pieces(path, begin, self.text_field)
            else:
                yield from _parquet_pieces(path, begin, self.text_field)


def _offline_message(name: str, why: str) -> str:
    return (f"cannot stream the Hugging Face dataset {name!r}: {why}. Without a network, "
            "prepare local data instead: --input FILE.txt, --input FILE.jsonl or "
            "--input FILE.parquet (with --text-field NAME), or --input DIR for a directory of "
            "them (for example the dataset's Parquet files, downloaded elsewhere)")


def _check_hub_reachable(name: str, timeout: float = 5.0) -> None:
    """Fail at once when offline, rather than after ``datasets``' minute of retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("", "0"):
        raise DataError(_offline_message(name, "offline mode is on (HF_HUB_OFFLINE or "
                                         "HF_DATASETS_OFFLINE is set)"))
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as error:
        raise DataError(_offline_message(name, f"{url.hostname}:{port} cannot be reached "
                                         f"({error})")) from None


class HFDatasetCorpus:
    """A Hugging Face dataset, streamed (``streaming=True``): nothing is downloaded whole."""

    def __init__(self, name: str, config: str | None = None, split: str = "train",
                 text_field: str = "text") -> None:
        if not Path(name).exists():  # a local dataset directory needs no network
            _check_hub_reachable(name)
        import datasets

        try:
            self.dataset = datasets.load_dataset(name, config, split=split, streaming=True)
        except (ConnectionError, OSError) as error:
            raise DataError(_offline_message(name, str(error))) from None
        except ValueError as error:  # unknown config or split: datasets names the choices
            raise DataError(f"--hf-dataset {name!r}: {error}") from None
        self.name, self.text_field, self.total_bytes = name, text_field, None
        self.description = {"kind": "hf_dataset", "name": name, "config": config,
                            "split": split, "text_field": text_field}

    def iter_pieces(self, start: Cursor = Cursor()) -> Iterator[Piece]:
        # skip() still reads the skipped examples from the stream, but tokenizes none of them.
        examples = self.dataset.skip(start.row) if start.row else self.dataset
        row = start.row
        for example in examples:
            where = f"{self.name} example {row}"
            text = _document_text(example.get(self.text_field), self.text_field, where,
                                  example.keys())
            char = start.char if row == start.row else 0
            yield from _pieces_of_document(text, Cursor(0, row, 0, char))
            row += 1


def open_corpus(input_path: str | os.PathLike | None = None, *, hf_dataset: str | None = None,
                hf_config: str | None = None, split: str = "train",
                text_field: str = "text") -> FileCorpus | HFDatasetCorpus:
    """The corpus named by prepare_data's ``--input`` or ``--hf-dataset`` (exactly one)."""
    if (input_path is None) == (hf_dataset is None):
        raise DataError("give exactly one of --input PATH and --hf-dataset NAME")
    if hf_dataset is not None:
        return HFDatasetCorpus(hf_dataset, hf_config, split, text_field)
    return FileCorpus(input_path, text_field)
