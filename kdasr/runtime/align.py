"""Word timestamps and confidence from the CTC head: the decoded tokens (from whichever search) are
force-aligned to the CTC posteriors of their piece (Viterbi over the blank-interleaved sequence), so
each token gets the encoder frames it was emitted on and the mean posterior over those frames; word
pieces (sentencepiece's "▁" starts a word) are joined into words. Numpy only.

The probability is the CTC head's, not the attention decoder's: a measure of how clearly the audio
says the token, comparable across decoding methods."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD_START = "\u2581"  # sentencepiece's word-boundary mark


@dataclass(frozen=True)
class Word:
    """A word of a Segment: times in seconds from the start of the input, probability in [0, 1]."""

    start: float
    end: float
    word: str
    probability: float


def ctc_align(logprobs: np.ndarray, frames: int, tokens: tuple[int, ...], blank: int) -> tuple[tuple, ...]:
    """Per token (first frame, end frame exclusive, mean posterior) on the best CTC path through
    `tokens` over logprobs[:frames] ([T, V] log-probabilities); () when the tokens need more frames
    than there are (the path cannot exist) or there are no tokens."""
    n = len(tokens)
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    if n == 0 or frames < n + repeats:
        return ()
    ext = np.full(2 * n + 1, blank, dtype=np.int64)
    ext[1::2] = tokens
    lp = logprobs[:frames, ext].astype(np.float64)  # [T, S]
    skip = np.zeros(len(ext), dtype=bool)  # s-2 -> s allowed: a token unlike the one before it
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    delta = np.full(len(ext), -np.inf)
    delta[:2] = lp[0, :2]
    back = np.zeros((frames, len(ext)), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, frames):
        cand = np.full((3, len(ext)), -np.inf)
        cand[0] = delta
        cand[1, 1:] = delta[:-1]
        cand[2, 2:] = np.where(skip[2:], delta[:-2], -np.inf)
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(len(ext))] + lp[t]
    s = len(ext) - 1 if delta[-1] >= delta[-2] else len(ext) - 2
    if not np.isfinite(delta[s]):
        return ()
    states = np.empty(frames, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    spans = []
    for k in range(n):
        where = np.flatnonzero(states == 2 * k + 1)
        spans.append((int(where[0]), int(where[-1]) + 1, float(np.exp(lp[where, 2 * k + 1]).mean())))
    return tuple(spans)


def words_of(tokens: tuple[int, ...], spans: tuple[tuple, ...], tokenizer, frame_s: float, offset: float,
             limit: float) -> list[Word]:
    """The words of one decoded piece: tokens grouped at word starts, times = frames * frame_s + offset
    (clipped to the piece's end `limit`), probability = the mean of the words' token posteriors."""
    groups: list[list[int]] = []
    for k, tok in enumerate(tokens):
        if not groups or tokenizer.id_to_piece(tok).startswith(WORD_START):
            groups.append([])
        groups[-1].append(k)
    out = []
    for g in groups:
        text = tokenizer.decode([tokens[k] for k in g]).strip()
        if not text:
            continue
        start = round(min(offset + spans[g[0]][0] * frame_s, limit), 3)
        end = round(min(offset + spans[g[-1]][1] * frame_s, limit), 3)
        out.append(Word(start, end, text, round(float(np.mean([spans[k][2] for k in g])), 4)))
    return out
