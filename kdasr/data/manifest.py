"""JSONL manifests: one utterance per line, validated on read so bad data fails before training starts.

A line looks like
  {"id": "1089-134686-0000", "audio": "wav/1089-134686-0000.flac", "text": "he hoped ...",
   "duration": 10.43, "speaker": "1089", "doc": "1089-134686", "pos": 0, "start": 0.0}
Any other keys (engine, voice, split, augment, ...) are kept in `Utterance.extra` and written back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kdasr.audio import audio_duration
from kdasr.errors import AudioError, ManifestError, TextError
from kdasr.io_utils import atomic_write_text
from kdasr.text import normalize_text


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str  # path; relative paths in a manifest file are relative to the manifest's folder
    text: str
    duration: float  # seconds, > 0
    speaker: str = ""
    doc: str = ""  # document id: utterances of one doc, ordered by pos, give the BERT teacher context
    pos: int = 0
    start: float = 0.0  # offset into the audio file (Kaldi segments)
    extra: dict = field(default_factory=dict, hash=False)


_FIELDS = ("id", "audio", "text", "duration", "speaker", "doc", "pos", "start")
_REQUIRED = ("id", "audio", "text", "duration")
_NUMBER = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "audio": (str,), "text": (str,), "duration": _NUMBER,
    "speaker": (str,), "doc": (str,), "pos": (int,), "start": _NUMBER,
}


def _check(d: dict) -> tuple[str, str] | None:
    """(field, reason) for the first problem in a decoded line, or None."""
    for name in _REQUIRED:
        if name not in d:
            return name, "missing required field"
    for name, types in _TYPES.items():
        if name not in d:
            continue
        v = d[name]
        # bool is an int subclass in Python; true/false in a numeric field is a bug upstream.
        if isinstance(v, bool) or not isinstance(v, types):
            want = "integer" if types == (int,) else "number" if types == _NUMBER else "string"
            return name, f"expected {want}, got {type(v).__name__} {json.dumps(v)[:40]}"
    if not d["id"].strip():
        return "id", "empty id"
    if not d["audio"]:
        return "audio", "empty path"
    if not (math.isfinite(d["duration"]) and d["duration"] > 0):
        return "duration", f"must be a positive number of seconds, got {d['duration']}"
    if d.get("pos", 0) < 0:
        return "pos", f"must be >= 0, got {d['pos']}"
    if not (math.isfinite(d.get("start", 0.0)) and d.get("start", 0.0) >= 0):
        return "start", f"must be >= 0, got {d['start']}"
    return None


def _from_dict(d: dict, folder: Path) -> Utterance:
    audio = d["audio"]
    if not os.path.isabs(audio):
        audio = os.path.abspath(folder / audio)
    return Utterance(
        id=d["id"], audio=audio, text=d["text"], duration=float(d["duration"]),
        speaker=d.get("speaker", ""), doc=d.get("doc", ""), pos=d.get("pos", 0),
        start=float(d.get("start", 0.0)),
        extra={k: v for k, v in d.items() if k not in _FIELDS},
    )


def _parse(path: Path) -> Iterator[tuple[int, Utterance | ManifestError]]:
    """Every non-blank line as an Utterance or the error that line has; the caller picks fail-fast or all."""
    if not path.is_file():
        yield 0, ManifestError(path, 0, "<file>", "no such manifest file")
        return
    folder, seen = path.parent, {}
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, ManifestError(path, n, "<json>", "line is not valid UTF-8")
                continue
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, ManifestError(path, n, "<json>", f"invalid JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(d, dict):
                yield n, ManifestError(path, n, "<json>", f"expected a JSON object, got {type(d).__name__}")
                continue
            if problem := _check(d):
                yield n, ManifestError(path, n, *problem)
                continue
            if d["id"] in seen:
                yield n, ManifestError(path, n, "id", f"duplicate id {d['id']!r} (first on line {seen[d['id']]})")
                continue
            seen[d["id"]] = n
            yield n, _from_dict(d, folder)


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """All utterances of a JSONL manifest; raises ManifestError at the first bad line."""
    utts = []
    for _, item in _parse(Path(path)):
        if isinstance(item, ManifestError):
            raise item
        utts.append(item)
    return utts


# Read speech stays near 25 characters per second at most (the FOTAQ train set's fastest clip:
# 25.2; eval/samples: 21.7); far above it the transcript belongs to other audio or the duration is wrong.
MAX_CHARS_PER_SECOND = 40.0
LENGTH_SLACK_CHARS = 10  # very short clips


def _clip(text: str, n: int = 60) -> str:
    return repr(text) if len(text) <= n else repr(text[:n]) + f"... ({len(text)} characters)"


def text_problems(u: Utterance) -> list[tuple[str, str]]:
    """(field, reason) for each way an utterance breaks the training text policy: text that
    `normalize_text` refuses (digits) or would change, or far more text than its duration can hold."""
    problems = []
    try:
        if (norm := normalize_text(u.text)) != u.text:
            problems.append(("text", f"not normalised; expected {_clip(norm)}"))
    except TextError:
        problems.append(("text", f"transcript contains digits (spell numbers out in words): {_clip(u.text)}"))
    if len(u.text) > MAX_CHARS_PER_SECOND * u.duration + LENGTH_SLACK_CHARS:
        problems.append(("text", f"{len(u.text)} characters for {u.duration:.2f} s of audio (over "
                         f"{MAX_CHARS_PER_SECOND:g} a second: another clip's transcript, or a wrong duration?)"))
    return problems


def read_training_manifest(path: str | os.PathLike, strict: bool = False) -> tuple[list[Utterance], list[str]]:
    """The utterances of a manifest that pass `text_problems` (what `validate_manifest` reports), and
    one line per utterance left out. Malformed lines raise ManifestError as in `read_manifest`;
    `strict`: so does the first utterance that breaks the text policy."""
    path = Path(path)
    utts, skipped = [], []
    for n, item in _parse(path):
        if isinstance(item, ManifestError):
            raise item
        if problems := text_problems(item):
            error = ManifestError(path, n, *problems[0])
            if strict:
                raise error
            skipped.append(f"{error} (skipped)")
            continue
        utts.append(item)
    return utts, skipped


def validate_manifest(path: str | os.PathLike, check_audio: bool = False) -> list[str]:
    """Every problem in a manifest as a one-line message (empty list = valid).

    Beyond what `read_manifest` checks, reports `text_problems` (text that `normalize_text` refuses or
    would change, more characters than the duration can hold; training skips these) and, with
    `check_audio`, audio files that are missing or unreadable or shorter than start + duration.
    """
    path = Path(path)
    problems, count = [], 0
    for n, item in _parse(path):
        if isinstance(item, ManifestError):
            problems.append(str(item))
            continue
        count += 1
        problems += [str(ManifestError(path, n, *p)) for p in text_problems(item)]
        if check_audio:
            try:
                length = audio_duration(item.audio)
            except AudioError as e:
                problems.append(str(ManifestError(path, n, "audio", f"{e.path}: {e.reason}")))
                continue
            end = item.start + item.duration
            if end > length + 0.05:  # tolerance for durations rounded by other tools
                problems.append(str(ManifestError(
                    path, n, "duration", f"start + duration = {end:.2f} s exceeds the audio ({length:.2f} s)"
                )))
    if count == 0 and not problems:
        problems.append(f"{path}: no utterances")
    return problems


def _audio_for(audio: str, folder: Path) -> str:
    # Paths under the manifest's folder are written relative, so a corpus folder can be moved whole; so are
    # paths under its parent (a sibling corpus: a mix's sources, data/mix -> ../v2/audio/...), so a data tree
    # moved whole, or reached through a link, still reads. Anything else stays absolute.
    p = Path(os.path.abspath(audio))
    if p.is_relative_to(folder):
        return p.relative_to(folder).as_posix()
    if folder.parent != Path(folder.anchor) and p.is_relative_to(folder.parent):
        return Path(os.path.relpath(p, folder)).as_posix()
    return str(p)


def write_manifest(path: str | os.PathLike, utts: list[Utterance]) -> None:
    """Write utterances as JSONL atomically; raises ManifestError (line = output line) for invalid ones."""
    path = Path(path)
    folder = Path(os.path.abspath(path.parent))
    lines, seen = [], set()
    for n, u in enumerate(utts, 1):
        if clash := set(u.extra) & set(_FIELDS):
            raise ManifestError(path, n, min(clash), "extra key shadows a manifest field")
        d = {
            "id": u.id, "audio": _audio_for(u.audio, folder), "text": u.text, "duration": u.duration,
            "speaker": u.speaker, "doc": u.doc, "pos": u.pos, "start": u.start, **u.extra,
        }
        if problem := _check(d):
            raise ManifestError(path, n, *problem)
        if u.id in seen:
            raise ManifestError(path, n, "id", f"duplicate id {u.id!r}")
        seen.add(u.id)
        try:
            lines.append(json.dumps(d, ensure_ascii=False, allow_nan=False) + "\n")
        except (TypeError, ValueError) as e:
            raise ManifestError(path, n, "extra", f"not JSON-serialisable: {e}") from None
    atomic_write_text(path, "".join(lines))

