"""Speaker-held-out splits of a game corpus.

Whole characters go to `test_real`, then `dev_real`, until each holds HELD_OUT_SECONDS (at least
MIN_VOICES characters each); the rest train, except whole scenes (a dialogue or cutaway file) drawn
into `dev_real_seen` (voices heard in training, sentences not). The order characters are drawn in is
a hash of their name: stable across runs and machines, and blind to how well anything recognises them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from kdasr.data.manifest import Utterance

HELD_OUT_SECONDS = 30 * 60
MIN_VOICES = 3
MIN_CHARACTER_CLIPS = 30  # a character with fewer lines is too thin to be a voice of a test set
ALWAYS_TRAIN = {"fotaq-joe", "fotaq-narrator"}  # the hero speaks in every scene: holding him out empties train
SEEN_SCENE_SHARE = 0.08


def _order(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def assign_splits(utts: list[Utterance]) -> tuple[dict[str, list[Utterance]], dict]:
    """{split: utterances} and the plan (which characters and scenes went where, and the rule)."""
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        by_speaker[u.speaker].append(u)
    eligible = sorted((s for s, us in by_speaker.items()
                       if s not in ALWAYS_TRAIN and len(us) >= MIN_CHARACTER_CLIPS), key=_order)
    held: dict[str, list[str]] = {"test_real": [], "dev_real": []}
    for split in held:
        seconds = 0.0
        while eligible and (seconds < HELD_OUT_SECONDS or len(held[split]) < MIN_VOICES):
            speaker = eligible.pop(0)
            held[split].append(speaker)
            seconds += sum(u.duration for u in by_speaker[speaker])
    where = {s: split for split, speakers in held.items() for s in speakers}
    rest_docs = sorted({u.doc for u in utts if u.speaker not in where}, key=_order)
    seen_docs = set(rest_docs[:max(1, round(len(rest_docs) * SEEN_SCENE_SHARE))])
    splits: dict[str, list[Utterance]] = {"train": [], "dev_real_seen": [], "dev_real": [], "test_real": []}
    for u in utts:
        split = where.get(u.speaker) or ("dev_real_seen" if u.doc in seen_docs else "train")
        splits[split].append(u)
    plan = {"rule": __doc__.split("\n\n")[1].replace("\n", " "), "held_out": held,
            "dev_real_seen_scenes": sorted(seen_docs)}
    return splits, plan
