"""Import a Kaldi data directory (wav.scp, text, optional utt2spk and segments) as Utterances."""

from __future__ import annotations

import os
from pathlib import Path

from kdasr.audio import audio_duration
from kdasr.data.manifest import Utterance
from kdasr.errors import KdasrError, TextError
from kdasr.text import normalize_text


def normalize_transcripts(items: list[tuple[str, str]], source: Path) -> dict[str, str]:
    """{utt id: normalised text}; one TextError naming every utterance whose text breaks the policy."""
    out, bad = {}, []
    for utt, text in items:
        try:
            out[utt] = normalize_text(text)
        except TextError:
            bad.append(f"{utt} ({text.strip()[:60]!r})")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise TextError(
            f"{source}: {len(bad)} transcript(s) contain digits, spell numbers out first: "
            + ", ".join(bad[:5]) + more
        )
    return out


def _table(path: Path, fields: int, required: int | None = None) -> list[tuple[int, list[str]]]:
    """(line number, fields) for non-blank lines; the last field keeps its inner spaces (text, paths)."""
    rows, required = [], fields if required is None else required
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=fields - 1)
        if len(parts) < required:
            raise KdasrError(f"{path}:{n}: expected {fields} fields, got {len(parts)}: {line[:80]!r}")
        rows.append((n, parts))
    return rows


def _wav_path(spec: str, data_dir: Path, where: str) -> str:
    if spec.rstrip().endswith("|"):
        raise KdasrError(
            f"{where}: piped commands in wav.scp are not supported; convert the audio to files first "
            "(e.g. with sox or ffmpeg) and list plain paths"
        )
    # Kaldi resolves relative paths from the recipe folder it runs in (the cwd); also accept data_dir.
    for p in (Path(spec), data_dir / spec):
        if p.exists():
            return os.path.abspath(p)
    return os.path.abspath(spec)  # missing: audio_duration or a later validate reports it


def import_kaldi_dir(data_dir: str | os.PathLike) -> list[Utterance]:
    """Utterances of a Kaldi data dir, in `text` order, with normalised transcripts.

    With `segments`, each utterance is a slice (start, duration) of a recording, and doc/pos are the
    recording id and the segment's rank by start time; without it, durations come from the audio headers.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise KdasrError(f"{d}: not a directory (expected a Kaldi data dir with wav.scp and text)")
    for name in ("wav.scp", "text"):
        if not (d / name).is_file():
            raise KdasrError(f"{d}: missing {name}")
    wavs = {
        p[0]: _wav_path(p[1], d, f"{d / 'wav.scp'}:{n}") for n, p in _table(d / "wav.scp", 2)
    }
    text_rows = [(p[0], p[1] if len(p) > 1 else "") for _, p in _table(d / "text", 2, required=1)]
    texts = normalize_transcripts(text_rows, d / "text")
    spk = {p[0]: p[1] for _, p in _table(d / "utt2spk", 2)} if (d / "utt2spk").is_file() else {}

    segs: dict[str, tuple[str, float, float]] = {}
    if (d / "segments").is_file():
        for n, (utt, rec, start, end) in _table(d / "segments", 4):
            try:
                segs[utt] = (rec, float(start), float(end))
            except ValueError:
                raise KdasrError(f"{d / 'segments'}:{n}: start/end are not numbers") from None
    # Rank of each segment within its recording, for BERT context windows.
    by_rec: dict[str, list[tuple[float, str]]] = {}
    for utt, (rec, start, _) in segs.items():
        by_rec.setdefault(rec, []).append((start, utt))
    rank = {utt: i for starts in by_rec.values() for i, (_, utt) in enumerate(sorted(starts))}

    utts, seen = [], set()
    for utt, _ in text_rows:
        if utt in seen:
            raise KdasrError(f"{d / 'text'}: duplicate utterance id {utt!r}")
        seen.add(utt)
        if segs:
            if utt not in segs:
                raise KdasrError(f"{d / 'segments'}: no segment for utterance {utt!r}")
            rec, start, end = segs[utt]
            if rec not in wavs:
                raise KdasrError(f"{d / 'wav.scp'}: no recording {rec!r} (used by segment {utt!r})")
            if end < 0:  # Kaldi: -1 means "to the end of the recording"
                end = audio_duration(wavs[rec])
            if end <= start:
                raise KdasrError(f"{d / 'segments'}: segment {utt!r} has end {end} <= start {start}")
            utts.append(Utterance(utt, wavs[rec], texts[utt], end - start, spk.get(utt, ""),
                                  doc=rec, pos=rank[utt], start=start))
        else:
            if utt not in wavs:
                raise KdasrError(f"{d / 'wav.scp'}: no audio for utterance {utt!r}")
            utts.append(Utterance(utt, wavs[utt], texts[utt], audio_duration(wavs[utt]), spk.get(utt, "")))
    return utts
