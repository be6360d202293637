"""Whisper's byte-level BPE tokenizer, for decoding ids to text only: no transformers, no tokenizers.

A whisper model dir (`kdasr import-whisper`) holds `whisper_vocab.json`: the token string of every
id (CTranslate2's vocabulary file: GPT-2's byte-to-unicode alphabet, specials like <|endoftext|>)
and the special ids. Decoding maps ids to those strings, the strings' characters back to bytes
(GPT-2's `bytes_to_unicode`, inverted) and the bytes to UTF-8 text; special tokens (id >= eot)
are dropped, as faster-whisper's `decode` does. A shared top-level module (stdlib only): export
writes the file and the runtime reads it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .errors import ModelError

VOCAB_FILE = "whisper_vocab.json"


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's `bytes_to_unicode`, inverted: printable bytes stand for themselves, the others are
    shifted to code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars)}


class WhisperTokenizer:
    """ids -> text for a whisper model dir; the same interface the runtime uses of kdasr's Tokenizer."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tokens, self.special = data["tokens"], data["special"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{path}: not a whisper vocabulary ({e})") from None
        if not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
            raise ModelError(f"{path}: 'tokens' must be a list of strings")
        self.tokens: list[str] = tokens
        self.eot = int(self.special["<|endoftext|>"])

    @classmethod
    def write(cls, path: Path, tokens: list[str]) -> None:
        """Write the vocabulary file from the token list (specials found by their <|...|> form)."""
        from .io_utils import atomic_write_text

        special = {t: i for i, t in enumerate(tokens) if t.startswith("<|") and t.endswith("|>")}
        atomic_write_text(path, json.dumps({"tokens": tokens, "special": special}, ensure_ascii=False))

    def id(self, token: str) -> int:
        if token not in self.special:
            raise ModelError(f"whisper vocabulary has no {token}")
        return int(self.special[token])

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def eos_id(self) -> int:
        return self.eot

    def id_to_piece(self, i: int) -> str:
        return self.tokens[i]

    def decode(self, ids) -> str:
        table = byte_decoder()
        text = "".join(self.tokens[int(i)] for i in ids if 0 <= int(i) < self.eot)
        raw = bytes(table[c] for c in text if c in table)
        return raw.decode("utf-8", errors="replace").strip()
