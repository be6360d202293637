"""BERT input windows for soft labels (DESIGN.md §4 "Context").

Utterance mode: the window is the transcript's own tokens. Context mode: a `size`-token window of
the concatenated transcripts of the same document (Utterance.doc, ordered by Utterance.pos),
centred on the utterance, with previous *and* following transcripts; where one side runs out at
a document edge the other side gets the room. Only the utterance's own tokens are masked.
Several utterances may share a (doc, pos) (one sentence in several voices): the document text
takes each position once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..data.manifest import Utterance


@dataclass(frozen=True)
class Window:
    tokens: tuple[int, ...]  # BERT input (no CLS/SEP)
    start: int  # the utterance occupies tokens[start : start + length]
    length: int

    @property
    def masked(self) -> range:
        return range(self.start, self.start + self.length)


def centred_window(left: list[int], own: list[int], right: list[int], size: int) -> Window:
    """`own` with as much of `left` (its tail) and `right` (its head) as fits in `size` tokens,
    split evenly, the unused share of a short side going to the other side. If `own` alone is
    longer than `size`, the window is `own` (callers split it, see `utterance_windows`)."""
    room = max(0, size - len(own))
    n_left = min(len(left), room // 2)
    n_right = min(len(right), room - n_left)
    n_left = min(len(left), room - n_right)
    ctx_left = left[len(left) - n_left :]
    return Window(tuple(ctx_left + own + right[:n_right]), n_left, len(own))


def split_long(own: list[int], size: int) -> list[Window]:
    """Transcripts longer than the window: consecutive windows of `size` tokens, all masked."""
    return [Window(tuple(own[i : i + size]), 0, len(own[i : i + size])) for i in range(0, len(own), size)]


class DocumentIndex:
    """Token ids of every (doc, pos) transcript, for building context windows."""

    def __init__(self, utts: list[Utterance], encode) -> None:
        by_doc: dict[str, dict[int, list[int]]] = defaultdict(dict)
        for u in utts:
            if u.doc and u.pos not in by_doc[u.doc]:
                by_doc[u.doc][u.pos] = encode(u.text)
        self.docs = {d: [by_doc[d][p] for p in sorted(by_doc[d])] for d in by_doc}
        self.index = {d: {p: i for i, p in enumerate(sorted(by_doc[d]))} for d in by_doc}

    def window(self, utt: Utterance, own: list[int], size: int) -> Window:
        if not utt.doc or utt.doc not in self.index:
            return centred_window([], own, [], size)
        sents, i = self.docs[utt.doc], self.index[utt.doc][utt.pos]
        room = max(0, size - len(own))
        left: list[int] = []
        for s in reversed(sents[:i]):  # only as far back as could ever be used
            left = s + left
            if len(left) >= room:
                break
        right: list[int] = []
        for s in sents[i + 1 :]:
            right += s
            if len(right) >= room:
                break
        return centred_window(left, own, right, size)


def utterance_windows(utt: Utterance, own: list[int], mode: str, size: int, docs: DocumentIndex | None) -> list[Window]:
    """The window(s) whose masked positions, in order, cover every token of `own`."""
    if len(own) > size:
        return split_long(own, size)
    if mode == "context" and docs is not None:
        return [docs.window(utt, own, size)]
    return [Window(tuple(own), 0, len(own))]
