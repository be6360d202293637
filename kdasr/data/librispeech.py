"""Import one LibriSpeech split: root/<spk>/<chapter>/<spk>-<chapter>.trans.txt plus one .flac per line."""

from __future__ import annotations

import os
from pathlib import Path

from kdasr.audio import audio_duration
from kdasr.data.kaldi import normalize_transcripts
from kdasr.data.manifest import Utterance
from kdasr.errors import KdasrError


def import_librispeech(root: str | os.PathLike) -> list[Utterance]:
    """Utterances of a LibriSpeech split folder (e.g. LibriSpeech/dev-clean), sorted by speaker/chapter.

    speaker = <spk>, doc = "<spk>-<chapter>" and pos = the utterance number, so consecutive
    utterances of a chapter give the BERT teacher its context. Durations come from the flac headers.
    """
    root = Path(root)
    if not root.is_dir():
        raise KdasrError(f"{root}: not a directory")
    trans = sorted(root.glob("*/*/*.trans.txt"))
    if not trans:
        hint = " (pass one split folder, e.g. LibriSpeech/dev-clean)" if any(root.glob("*/*/*/*.trans.txt")) else ""
        raise KdasrError(f"{root}: no <spk>/<chapter>/<spk>-<chapter>.trans.txt files found{hint}")
    utts = []
    for tf in trans:
        spk, chapter = tf.parent.parent.name, tf.parent.name
        rows = []
        for n, line in enumerate(tf.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            parts = utt.split("-")
            if len(parts) != 3 or parts[:2] != [spk, chapter] or not parts[2].isdigit():
                raise KdasrError(f"{tf}:{n}: utterance id {utt!r} is not {spk}-{chapter}-<number>")
            rows.append((utt, text))
        texts = normalize_transcripts(rows, tf)
        for utt, _ in rows:
            audio = tf.parent / f"{utt}.flac"
            utts.append(Utterance(
                id=utt, audio=os.path.abspath(audio), text=texts[utt], duration=audio_duration(audio),
                speaker=spk, doc=f"{spk}-{chapter}", pos=int(utt.rsplit("-", 1)[1]),
            ))
    return utts
