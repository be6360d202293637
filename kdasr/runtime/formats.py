"""Result writers: text (`path<TAB>text`, the path escaped), jsonl, json, srt, vtt (segment
timestamps). Torch-free, no I/O."""

from __future__ import annotations

import json

from .transcriber import Result

FORMATS = ("text", "jsonl", "json", "srt", "vtt")
SUBTITLES = ("srt", "vtt")


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _nbest(alts) -> list[dict]:
    return [{"text": n.text, "score": round(n.score, 4)} for n in alts]


def result_dict(r: Result, with_nbest: bool = False) -> dict:
    """`nbest` at the top for a one-piece input; for a segmented input each segment has its own."""
    segments = []
    for s in r.segments:
        seg = {"start": s.start, "end": s.end, "text": s.text}
        if with_nbest and s.nbest and len(r.segments) > 1:
            seg["nbest"] = _nbest(s.nbest)
        segments.append(seg)
    d = {"path": r.source, "text": r.text, "duration": round(r.duration, 3), "segments": segments}
    if with_nbest and r.nbest:
        d["nbest"] = _nbest(r.nbest)
    if r.warnings:
        d["warnings"] = list(r.warnings)
    return d


def escape_field(text: str) -> str:
    """A path as one tab-separated field: backslash, tab, newline and carriage return escaped."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def srt(r: Result) -> str:
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
        for i, s in enumerate((s for s in r.segments if s.text), start=1)
    ]
    return "\n".join(blocks)


def vtt(r: Result) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in r.segments if s.text]
    return "WEBVTT\n\n" + "\n".join(blocks)


def render(results: list[Result], fmt: str, with_nbest: bool = False) -> str:
    """All results in one format (srt/vtt: one result; use render_one per file for several)."""
    if fmt == "text":
        return "".join(f"{escape_field(r.source)}\t{r.text}\n" for r in results)
    if fmt == "jsonl":
        return "".join(json.dumps(result_dict(r, with_nbest)) + "\n" for r in results)
    if fmt == "json":
        return json.dumps([result_dict(r, with_nbest) for r in results], indent=2) + "\n"
    if fmt in SUBTITLES:
        return "".join(srt(r) if fmt == "srt" else vtt(r) for r in results)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
