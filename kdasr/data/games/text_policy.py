"""The text policy for game lines: what the speaker says, in the corpus's alphabet, or a reason to drop.

Game strings carry things no one speaks: `<gulp>`-style sound markers, a "0" placeholder for
"no line", trademark glyphs ("^_"). Digits are dropped rather than spelled out, as everywhere in kdasr
(`kdasr.text.normalize_text`: how "1844" is read is ambiguous, and a guess corrupts the target).
"""

from __future__ import annotations

import re

from kdasr.errors import TextError
from kdasr.text import normalize_text

_MARKER = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)")  # <gulp>, [sighs], (aside): not the words spoken
_GLYPHS = str.maketrans({"^": " ", "_": " "})


def clean_line(text: str) -> tuple[str | None, str]:
    """(normalised text, "") or (None, reason it is dropped)."""
    raw = text.strip()
    if not raw or raw == "0":
        return None, "empty line or the game's '0' placeholder"
    if _MARKER.search(raw):
        return None, "non-speech marker or stage direction in the line"
    try:
        norm = normalize_text(raw.translate(_GLYPHS))
    except TextError:
        return None, "digits in the line (numbers are not spelled out by guess)"
    if not norm:
        return None, "no words after normalisation"
    return norm, ""
