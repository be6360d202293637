"""`kdasr data import-game fotaq`: Flight of the Amazon Queen's voice acting as a transcribed corpus.

Stages, each resumable: decode every clip to 16 kHz FLAC (skipped when present); pair each clip with
its line (from the archive's names; the reference recogniser where they leave it open, its
transcripts cached in `recogniser.jsonl`); apply the text policy; split by speaker; write manifests
and `build_info.json` (counts of every drop, with reasons). Torch-free.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdasr.audio import load_audio_bytes
from kdasr.data.games.pairing import MAX_CER, nearest_line
from kdasr.data.games.queen import ARCHIVE, Line, QueenArchive, read_lines
from kdasr.data.games.splits import assign_splits
from kdasr.data.games.text_policy import clean_line
from kdasr.data.manifest import Utterance, write_manifest
from kdasr.errors import AudioError, KdasrError
from kdasr.io_utils import atomic_open, atomic_write_text

PACKAGE = "flight-of-the-amazon-queen"
LICENCE = ("Flight of the Amazon Queen licence (Debian package copyright file): free redistribution and "
           "modification; attribution and the game's readme kept; no fee for the game itself. "
           "(c) 1995 John Passfield and Steven Stamatiadis.")
MIN_SECONDS, MAX_SECONDS = 0.3, 30.0
# scene objects that speak in cutaways without being a character (a note, a door, smoke): whose voice
# is heard is unknown, so they cannot be placed on either side of a speaker-held-out split
_NOT_CHARACTERS = {"note", "path", "smoke", "telephone", "buttons", "torch", "door", "rock", "lily pad",
                   "guardian", "guard", "unknown"}
_SAME_CHARACTER = {"Joe King": "Joe", "azura obj": "Princess Azura"}


@dataclass(frozen=True)
class Clip:
    name: str
    audio: Path
    duration: float


@dataclass(frozen=True)
class Heard:
    """What the reference recogniser heard in a clip: its normalised text and whisper's probability
    that the clip holds no speech (the highest over its segments; 1.0 when it gave none)."""
    text: str
    no_speech: float


# Above this no-speech probability a transcript is taken for a hallucination on a sound effect,
# whatever line it happens to match. Stricter than whisper's own 0.6: on FOTAQ's 21 clips paired by
# the recogniser at temperature 0, the four between 0.5 and 0.6 were sound effects heard as "you",
# "oh no", "thank you very much" (names ...SSSS, ROCKPAKS: two of them the same 3.81 s clip); the
# 17 spoken retakes were all under 0.25.
MAX_NO_SPEECH = 0.5


def missing_package(root: Path) -> KdasrError:
    return KdasrError(
        f"{root / ARCHIVE}: not found; the Debian package {PACKAGE} is not unpacked under {root} "
        f"(run `make setup-data`, or `apt-get download {PACKAGE} && dpkg-deb -x {PACKAGE}_*.deb {root}`)")


def package_version(root: Path, package: str = PACKAGE) -> str:
    """The package version from its changelog's first line (works for an unpacked .deb, no dpkg db)."""
    import gzip

    changelog = root / f"usr/share/doc/{package}/changelog.Debian.gz"
    try:
        first = gzip.open(changelog, "rt", encoding="utf-8").readline()
        return first.split("(", 1)[1].split(")", 1)[0]
    except (OSError, IndexError):
        return "unknown"


def decode_clips(archive: QueenArchive, out: Path, progress, limit: int | None = None
                 ) -> tuple[list[Clip], dict[str, str]]:
    """Every *.SB clip (the first `limit` by name) as 16 kHz mono FLAC under out/audio (kept when there)."""
    import soundfile as sf

    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips, failed = [], {}
    names = archive.names(".SB")[:limit]
    for name in progress(names, "decode clips"):
        path = audio_dir / f"{name[:-3]}.flac"
        try:
            if path.exists():
                duration = sf.info(str(path)).duration
            else:
                x = load_audio_bytes(archive.read(name), name)
                with atomic_open(path, "wb") as f:
                    sf.write(f, np.clip(x, -1, 1), 16000, format="FLAC", subtype="PCM_16")
                duration = x.size / 16000
        except (AudioError, RuntimeError) as e:
            failed[name[:-3]] = f"audio does not decode: {e}"
            continue
        clips.append(Clip(name[:-3], path, duration))
    return clips, failed


def recognise(clips: list[Clip], cache: Path, threads: int, progress) -> dict[str, Heard]:
    """Normalised whisper tiny.en transcripts with whisper's no-speech probability, cached line by
    line so an interrupted run resumes. Temperature 0 only: faster-whisper's default falls back to
    sampling at higher temperatures when a clip decodes poorly, and on the archive's sound effects
    that drew a different hallucination each run ("you", "thank you"), some of which matched a game
    line; a pairing must not depend on a random draw."""
    from kdasr.audio import load_audio
    from kdasr.whisper_reference import load_whisper, normalise_hypothesis

    done: dict[str, Heard] = {}
    if cache.exists():
        for raw in cache.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(raw)
                done[row["clip"]] = Heard(row["hyp"], float(row["no_speech"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a line cut by a kill, or from before no_speech was kept: heard again
    todo = [c for c in clips if c.name not in done]
    if todo:
        model = load_whisper(threads, 5)
        with open(cache, "a", encoding="utf-8") as f:
            for c in progress(todo, "recognise"):
                segments, _ = model.transcribe(load_audio(c.audio), language="en", beam_size=5, temperature=0.0,
                                               condition_on_previous_text=False, vad_filter=False)
                segments = list(segments)
                no_speech = max((s.no_speech_prob for s in segments), default=1.0)
                heard = Heard(normalise_hypothesis(" ".join(s.text for s in segments)), round(no_speech, 4))
                done[c.name] = heard
                f.write(json.dumps({"clip": c.name, "hyp": heard.text, "no_speech": heard.no_speech}) + "\n")
                f.flush()
    return done


def pair(clips: list[Clip], lines: dict[str, list[Line]], transcripts: dict[str, Heard],
         counts: Counter) -> dict[str, tuple[Line, str]]:
    """clip -> (line, how): 'format' when the names pair it with one line, 'recogniser' when the
    transcript settled it within MAX_CER, else dropped (counted)."""
    every = sorted({ln.text for group in lines.values() for ln in group})
    every_clean = [clean_line(t)[0] or "" for t in every]
    by_text = {ln.text: ln for group in lines.values() for ln in group}
    paired = {}
    for c in clips:
        candidates = lines.get(c.name, [])
        if len(candidates) == 1:
            paired[c.name] = (candidates[0], "format")
            continue
        heard = transcripts.get(c.name)
        if heard is None:
            counts["dropped: not paired (recogniser not run)"] += 1
            continue
        if heard.no_speech > MAX_NO_SPEECH:
            counts[f"dropped: the recogniser hears no speech (no-speech probability over {MAX_NO_SPEECH})"] += 1
            continue
        hyp = heard.text
        pool = [ln.text for ln in candidates] if candidates else every
        pool_clean = [clean_line(t)[0] or "" for t in pool] if candidates else every_clean
        match = nearest_line(hyp, pool_clean, MAX_CER)
        if match.index < 0:
            counts[f"dropped: no game line within CER {MAX_CER} of the recogniser's transcript"] += 1
            continue
        # a clip no name pairs takes the speaker and scene of the line it matched (a retake of it)
        line = candidates[match.index] if candidates else by_text[pool[match.index]]
        paired[c.name] = (line, "recogniser")
    return paired


def import_fotaq(root: Path, out: Path, *, recogniser: bool = True, threads: int = 1, progress=None,
                 limit: int | None = None) -> dict:
    """Build the corpus under `out`; returns the build info written to out/build_info.json.
    `limit`: only the first clips by name (a quick check of the pipeline, not a corpus)."""
    started = time.time()
    progress = progress or (lambda items, _label: items)
    path = root / ARCHIVE
    if not path.is_file():
        raise missing_package(root)
    archive = QueenArchive(path)
    lines = read_lines(archive)
    out.mkdir(parents=True, exist_ok=True)
    clips, failed = decode_clips(archive, out, progress, limit)

    def utterance(c: Clip, line: Line, text: str) -> Utterance | str:
        speaker = _SAME_CHARACTER.get(line.speaker, line.speaker)
        if speaker in _NOT_CHARACTERS:
            return "dropped: spoken by a scene object, not a character (voice unknown)"
        return Utterance(
            id=f"fotaq-{c.name}", audio=str(c.audio), text=text, duration=round(c.duration, 3),
            speaker=f"fotaq-{speaker.lower().replace(' ', '-')}", doc=f"fotaq-{line.source}",
            extra={"source": "fotaq", "line": line.text},
        )

    utts, counts = paired_utterances(clips, lines, failed, out, utterance, recogniser=recogniser,
                                     threads=threads, progress=progress)
    splits, plan = assign_splits(utts)
    return write_corpus(out, splits, plan, {
        "corpus": "fotaq", "package": PACKAGE, "package_version": package_version(root),
        "archive": {"version": archive.version, "clips": len(archive.names(".SB"))}, "licence": LICENCE,
    }, counts, failed, recogniser=recogniser, started=started, threads=threads, limit=limit)


def paired_utterances(clips: list[Clip], lines: dict[str, list], failed: dict[str, str], out: Path,
                      utterance: Callable[[Clip, Line, str], Utterance | str], *, recogniser: bool, threads: int,
                      progress) -> tuple[list[Utterance], Counter]:
    """A game's clips as utterances, numbered within their scene, and the count of every outcome: each
    clip paired (the recogniser settling what the names leave open), its line through the text policy,
    then `utterance` (the game's ids and speakers; a str is a reason to drop it), then the duration."""
    counts: Counter = Counter("dropped: audio does not decode" for _ in failed)  # reasons: build_info
    open_clips = [c for c in clips if len(lines.get(c.name, [])) != 1]
    transcripts = recognise(open_clips, out / "recogniser.jsonl", threads, progress) if recogniser else {}
    paired = pair(clips, lines, transcripts, counts)
    utts = []
    for c in clips:
        if c.name not in paired:
            continue
        line, how = paired[c.name]
        text, reason = clean_line(line.text)
        made = utterance(c, line, text) if text is not None else f"dropped: {reason}"
        if isinstance(made, str):
            counts[made] += 1
        elif not MIN_SECONDS <= c.duration <= MAX_SECONDS:
            counts[f"dropped: duration outside {MIN_SECONDS}-{MAX_SECONDS} s"] += 1
        else:
            counts[f"paired: {how}"] += 1
            utts.append(made)
    return _number_within_docs(utts), counts


def write_corpus(out: Path, splits: dict[str, list[Utterance]], plan: dict, game: dict, counts: Counter,
                 failed: dict[str, str], *, recogniser: bool, started: float, threads: int,
                 limit: int | None) -> dict:
    """The split manifests and build_info.json (the game's own facts first, then what every import
    records); returns the build info."""
    for split, items in splits.items():
        write_manifest(out / f"{split}.jsonl", items)
    info = {
        **game, "pairing": {"max_cer": MAX_CER, "max_no_speech": MAX_NO_SPEECH,
                            "recogniser": "whisper tiny.en (faster-whisper int8, beam 5, temperature 0)"
                            if recogniser else None},
        "counts": dict(sorted(counts.items())), "undecodable": failed,
        "splits": _split_stats(splits), "split_plan": plan,
        "wall_seconds": round(time.time() - started, 1), "threads": threads, "limit": limit,
    }
    atomic_write_text(out / "build_info.json", json.dumps(info, indent=2) + "\n")
    return info


def _number_within_docs(utts: list[Utterance]) -> list[Utterance]:
    """pos = rank of the clip name within its resource: names order a file's lines (line id or
    object index, then segment), which gives the BERT teacher its neighbouring utterances."""
    from dataclasses import replace

    ranks: dict[str, list[str]] = {}
    for u in utts:
        ranks.setdefault(u.doc, []).append(u.id)
    pos = {uid: i for ids in ranks.values() for i, uid in enumerate(sorted(ids))}
    return [replace(u, pos=pos[u.id]) for u in utts]


def _split_stats(splits: dict[str, list[Utterance]]) -> dict:
    return {name: {"clips": len(u), "hours": round(sum(x.duration for x in u) / 3600, 3),
                   "speakers": sorted({x.speaker for x in u})} for name, u in splits.items()}
