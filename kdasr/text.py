"""Transcript normalisation policy and the sentencepiece tokenizer. Torch-free.

Every transcript that reaches a tokenizer, a manifest written by an importer, or a WER score goes
through `normalize_text`, so training targets, hypotheses and references share one alphabet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from kdasr.errors import KdasrError, ManifestError, ModelError, TextError

# Letters NFKD does not decompose into a-z; without this they would become spaces and split words.
_LETTERS = str.maketrans({"æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "`": "'", "\u2032": "'"})
_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_LONE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")

PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID = 0, 1, 2, 3, 4
MASK_PIECE = "<mask>"


def normalize_text(s: str) -> str:
    """Normalise a transcript to lowercase a-z, apostrophe and single spaces.

    NFKD, combining accents stripped ("café" -> "cafe"), lowercased, "&" -> "and", curly quotes -> "'",
    any other character -> space, apostrophes kept only between letters ("don't", "saul's"),
    whitespace collapsed.

    Digits are rejected with TextError rather than spelled out: how a number is spoken is ambiguous
    ("1984" is "nineteen eighty four" as a year, "one thousand nine hundred ..." as a count), and a
    wrong guess silently corrupts training targets and references. Spell numbers out at the source.
    """
    t = unicodedata.normalize("NFKD", s)
    if any(ch.isdigit() for ch in t):
        raise TextError(f"transcript contains digits (spell numbers out in words): {s!r}")
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    t = t.casefold().translate(_LETTERS).translate(_QUOTES).replace("&", " and ")
    t = _NOT_ALLOWED.sub(" ", t)
    t = _LONE_APOSTROPHE.sub("", t)
    return " ".join(t.split())


class Tokenizer:
    """A sentencepiece model trained by `train_tokenizer` (fixed special ids, see below).

    pad (0) doubles as the CTC blank; bos/eos frame decoder targets; <mask> (4) is for the BERT teacher.
    `encode` expects text already passed through `normalize_text`.
    """

    def __init__(self, model_path: str | os.PathLike) -> None:
        p = Path(model_path)
        if not p.is_file():
            raise ModelError(f"{p}: tokenizer model not found")
        self._init(p.read_bytes(), str(p))
        self.path: Path | None = p

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<tokenizer>") -> Tokenizer:
        """Load from serialized model bytes (e.g. embedded in a model directory's metadata)."""
        tok = cls.__new__(cls)
        tok._init(data, name)
        tok.path = None
        return tok

    def _init(self, data: bytes, name: str) -> None:
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(data)
        except RuntimeError:
            raise ModelError(f"{name}: not a sentencepiece model") from None
        # Later stages hard-wire these ids (CTC blank, decoder start, BERT mask): refuse other models.
        got = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
        if got != (PAD_ID, UNK_ID, BOS_ID, EOS_ID) or sp.get_piece_size() <= MASK_ID or (
            sp.id_to_piece(MASK_ID) != MASK_PIECE
        ):
            raise ModelError(
                f"{name}: sentencepiece model not trained by kdasr (expected pad/unk/bos/eos ids 0-3 "
                f"and '<mask>' at id 4, got {got}); retrain with `kdasr tokenizer train`"
            )
        self._sp, self._bytes = sp, data
        self._specials = frozenset({PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID})

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def mask_id(self) -> int:
        return MASK_ID

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text, out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        """Text for `ids`, skipping pad/unk/bos/eos/mask (so raw decoder or CTC output can be passed)."""
        kept = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} out of range for vocabulary of {self.vocab_size}")
            if i not in self._specials:
                kept.append(i)
        return self._sp.decode(kept)

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(int(i))

    def __repr__(self) -> str:
        return f"Tokenizer({self.path or '<bytes>'}, vocab_size={self.vocab_size})"


def iter_text_lines(path: Path) -> Iterator[str]:
    """Raw transcript lines of a text file, or each line's "text" when `path` is a .jsonl manifest."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if path.suffix != ".jsonl":
                yield line
            elif line.strip():
                try:
                    yield json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ManifestError(path, n, "text", "line is not a JSON object with a 'text'") from None


def train_tokenizer(
    text_files: list[Path],
    out_prefix: Path,
    vocab_size: int = 256,
    model_type: str = "unigram",
    max_sentences: int = 2_000_000,
) -> Path:
    """Train sentencepiece on normalised lines of `text_files`; write `<out_prefix>.model`, return it.

    Lines that are empty after normalisation or violate the text policy (digits) are skipped.
    """
    text_files = [Path(p) for p in text_files]
    for p in text_files:
        if not p.is_file():
            raise KdasrError(f"{p}: no such text file")
    if model_type not in ("unigram", "bpe", "char", "word"):
        raise KdasrError(f"unknown tokenizer model type {model_type!r} (use unigram, bpe, char or word)")
    counts = {"used": 0}
    failed: list[KdasrError] = []

    def sentences() -> Iterator[str]:
        try:
            for p in text_files:
                for line in iter_text_lines(p):
                    try:
                        t = normalize_text(line)
                    except TextError:
                        continue
                    if t:
                        counts["used"] += 1
                        yield t
        except KdasrError as e:
            failed.append(e)  # sentencepiece would flatten it into a RuntimeError; re-raised below

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    final = Path(f"{out_prefix}.model")
    tmp = Path(tempfile.mkdtemp(dir=out_prefix.parent, prefix=f".{out_prefix.name}."))
    try:
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=sentences(),
                model_prefix=str(tmp / "sp"),
                vocab_size=vocab_size,
                model_type=model_type,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                user_defined_symbols=[MASK_PIECE],
                character_coverage=1.0,
                normalization_rule_name="identity",  # normalize_text already did it; keeps decode exact
                input_sentence_size=max_sentences,
                shuffle_input_sentence=True,
                num_threads=min(8, os.cpu_count() or 1),
                minloglevel=2,
            )
        except RuntimeError as e:
            if failed:
                raise failed[0] from None
            raise _training_error(str(e), vocab_size, counts["used"], text_files) from None
        if failed:
            raise failed[0]
        os.replace(tmp / "sp.model", final)
        os.replace(tmp / "sp.vocab", Path(f"{out_prefix}.vocab"))  # human-readable piece list
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _training_error(msg: str, vocab_size: int, used: int, files: list[Path]) -> KdasrError:
    names = ", ".join(str(p) for p in files)
    if used == 0:
        return TextError(f"no usable transcript lines in {names}")
    if m := re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", msg):
        return TextError(
            f"vocab_size {vocab_size} is too large for this text ({used} lines): "
            f"use --vocab-size {m.group(1)} or less, or train on more text"
        )
    if m := re.search(r"smaller than required_chars\. \d+ vs (\d+)", msg):
        return TextError(f"vocab_size {vocab_size} is too small: the text needs at least {m.group(1)}")
    return TextError(f"sentencepiece training failed: {msg.split('] ')[-1]}")
