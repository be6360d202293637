"""Whisper's tokenizer for training: teachers and the whisper student speak whisper's token ids.

`WhisperBPE` encodes text with the `tokenizer.json` a whisper package ships (the `tokenizers`
library, installed with transformers; training only, the runtime decodes with
kdasr/whisper_tokenizer.py). A transcript is encoded as whisper writes text after its prompt:
with a leading space (" you couldn't pilot" -> " you", " couldn", "'t", " pilot").

`CompactVocab` is what a teacher trains on: whisper's 51k-entry vocabulary would make a small
BERT's output layer most of its weights and its softmax most of its time, while a domain's text
uses a few thousand of those ids. The compact vocabulary is kdasr's five fixed specials (pad,
unk, bos, eos, mask at 0-4, so the teacher code runs unchanged) followed by the whisper ids that
occur in the teacher's text, in increasing order; a whisper id outside it encodes as unk (one
position stays one position, so soft labels stay aligned with the student's targets). Soft labels
are computed over the compact ids and written over whisper ids (`to_whisper`).

`--tokenizer whisper:tiny.en` / `whisper:base` names the bundled packages' tokenizer.json; a path
to a tokenizer.json (or a folder holding one) works too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import KdasrError
from ..text import BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID

PREFIX = "whisper:"
COMPACT_FILE = "whisper_compact_vocab.json"
N_SPECIAL = 5


def is_whisper(spec: str | Path) -> bool:
    s = str(spec)
    return s.startswith(PREFIX) or Path(s).name == "tokenizer.json" or (Path(s) / "tokenizer.json").is_file()


def tokenizer_json(spec: str | Path) -> Path:
    """The tokenizer.json that `spec` names: whisper:tiny.en, whisper:base, a file or a folder."""
    s = str(spec)
    if s.startswith(PREFIX):
        from ..whisper_reference import whisper_model_dir

        return whisper_model_dir(s[len(PREFIX):]) / "tokenizer.json"
    p = Path(s)
    p = p / "tokenizer.json" if p.is_dir() else p
    if not p.is_file():
        raise KdasrError(f"{spec}: no tokenizer.json there (expected whisper:tiny.en, whisper:base or a path)")
    return p


class WhisperBPE:
    """whisper's byte-level BPE over its full id space (encode text, decode ids, the specials)."""

    def __init__(self, spec: str | Path) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.path = tokenizer_json(spec)
        self._bytes = self.path.read_bytes()
        try:
            self._tok = HFTokenizer.from_str(self._bytes.decode("utf-8"))
        except Exception as e:  # tokenizers raises its own exception types
            raise KdasrError(f"{self.path}: not a tokenizers tokenizer.json ({str(e)[:100]})") from None
        self.eot = self._special("<|endoftext|>")
        self.sot = self._special("<|startoftranscript|>")
        self.no_timestamps = self._special("<|notimestamps|>")

    def _special(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise KdasrError(f"{self.path}: no {token}: not whisper's tokenizer")
        return i

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self._bytes).hexdigest()

    @property
    def vocab_size(self) -> int:  # ids below this; a model's embedding may have more rows (timestamps)
        return self._tok.get_vocab_size()

    def prompt(self, multilingual: bool, language: str = "en") -> list[int]:
        """The decoder's prompt before the text, as `kdasr import-whisper` writes it (prompt_of) plus
        <|notimestamps|>, where the runtime's search starts (special_ids.bos). `multilingual`: the
        model's rule (51865 or more embedding rows); tiny.en's tokenizer.json has <|en|> too."""
        if not multilingual:
            return [self.sot, self.no_timestamps]
        return [self.sot, self._special(f"<|{language}|>"), self._special("<|transcribe|>"), self.no_timestamps]

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(" " + text.strip(), add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids if int(i) < self.eot]).strip()

    def __repr__(self) -> str:
        return f"WhisperBPE({self.path})"


class CompactVocab:
    """A kdasr-Tokenizer-like view of whisper's ids restricted to those of a text (module doc)."""

    pad_id, unk_id, bos_id, eos_id, mask_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID

    def __init__(self, bpe: WhisperBPE, whisper_ids: list[int]) -> None:
        self.bpe = bpe
        self.whisper_ids = sorted(set(whisper_ids))
        self._to_compact = {w: N_SPECIAL + i for i, w in enumerate(self.whisper_ids)}
        self.path = bpe.path

    @classmethod
    def from_texts(cls, bpe: WhisperBPE, texts) -> CompactVocab:
        ids: set[int] = set()
        for t in texts:
            ids.update(bpe.encode(t))
        return cls(bpe, sorted(ids))

    @classmethod
    def load(cls, folder: Path, bpe: WhisperBPE | None = None) -> CompactVocab:
        path = Path(folder) / COMPACT_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ids, sha1 = [int(i) for i in data["whisper_ids"]], data["tokenizer_sha1"]
            spec = data.get("tokenizer", "")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise KdasrError(f"{path}: not a whisper compact vocabulary ({e})") from None
        bpe = bpe or WhisperBPE(spec)
        if bpe.sha1 != sha1:
            raise KdasrError(f"{path}: made with another whisper tokenizer.json than {bpe.path}")
        return cls(bpe, ids)

    def save(self, folder: Path, spec: str) -> None:
        from ..io_utils import atomic_write_text

        data = {"tokenizer": spec, "tokenizer_sha1": self.bpe.sha1, "whisper_ids": self.whisper_ids}
        atomic_write_text(Path(folder) / COMPACT_FILE, json.dumps(data) + "\n")

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + len(self.whisper_ids)

    @property
    def model_bytes(self) -> bytes:
        """What identifies this vocabulary (teacher checkpoints record its sha1)."""
        return json.dumps({"tokenizer_sha1": self.bpe.sha1, "whisper_ids": self.whisper_ids}).encode()

    def encode(self, text: str) -> list[int]:
        return [self._to_compact.get(w, UNK_ID) for w in self.bpe.encode(text)]

    def to_whisper(self) -> np.ndarray:
        """compact id -> whisper id (the specials map to whisper's <|endoftext|>; soft labels never hold them)."""
        return np.array([self.bpe.eot] * N_SPECIAL + self.whisper_ids, dtype=np.int64)

    def id_to_piece(self, i: int) -> str:
        return ["<pad>", "<unk>", "<s>", "</s>", "<mask>"][i] if i < N_SPECIAL else \
            self.bpe.decode([self.whisper_ids[i - N_SPECIAL]])

    def decode(self, ids) -> str:
        return self.bpe.decode([self.whisper_ids[int(i) - N_SPECIAL] for i in ids if int(i) >= N_SPECIAL])

    def __repr__(self) -> str:
        return f"CompactVocab({self.bpe.path}, {len(self.whisper_ids)} whisper ids)"
