"""Result writers: text (`path<TAB>text`, the path escaped), txt (the transcript alone, a line per
segment), jsonl, json, srt, vtt and tsv (segment timestamps; tsv as whisper writes it: start and end
in integer milliseconds). `parse_formats("txt,srt")` / `"all"` for several at once, one file per
format per input (`render_file`). Torch-free, no I/O."""

from __future__ import annotations

import json

from ..transcriber import Result

FORMATS = ("text", "txt", "jsonl", "json", "srt", "vtt", "tsv")
ALL = ("txt", "vtt", "srt", "tsv", "json")  # what `-f all` writes: whisper's set
SUBTITLES = ("srt", "vtt", "tsv")  # one input per document: several inputs need a file each


def parse_formats(spec: str) -> tuple[str, ...]:
    """'txt,srt' -> ('txt', 'srt'); 'all' -> ALL; duplicates dropped, order kept. ValueError if unknown."""
    out: list[str] = []
    for name in (n.strip().lower() for n in spec.split(",")):
        for fmt in ALL if name == "all" else (name,):
            if fmt not in FORMATS:
                raise ValueError(f"unknown format {name!r}: use {', '.join(FORMATS)}, all, or several joined by commas")
            if fmt not in out:
                out.append(fmt)
    return tuple(out)


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
        if s.words:  # word_timestamps: the CTC head's alignment
            seg["words"] = [{"start": w.start, "end": w.end, "word": w.word, "probability": w.probability}
                            for w in s.words]
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


def txt(r: Result) -> str:
    lines = [s.text for s in r.segments if s.text] or ([r.text] if r.text else [])
    return "".join(line + "\n" for line in lines)


def tsv(r: Result) -> str:
    rows = [f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text}\n" for s in r.segments if s.text]
    return "start\tend\ttext\n" + "".join(rows)


def render_file(r: Result, fmt: str, with_nbest: bool = False) -> str:
    """One input's own output file: json is that input's object (not a one-element list), and text
    is the transcript alone (the path is the file's name)."""
    if fmt in ("text", "txt"):
        return txt(r)
    if fmt == "json":
        return json.dumps(result_dict(r, with_nbest), indent=2) + "\n"
    return render([r], fmt, with_nbest)


def render(results: list[Result], fmt: str, with_nbest: bool = False) -> str:
    """All results in one format (srt/vtt: one result; use render_one per file for several)."""
    if fmt == "text":
        return "".join(f"{escape_field(r.source)}\t{r.text}\n" for r in results)
    if fmt == "jsonl":
        return "".join(json.dumps(result_dict(r, with_nbest)) + "\n" for r in results)
    if fmt == "json":
        return json.dumps([result_dict(r, with_nbest) for r in results], indent=2) + "\n"
    if fmt == "txt":
        return "".join(txt(r) for r in results)
    if fmt in SUBTITLES:
        return "".join({"srt": srt, "vtt": vtt, "tsv": tsv}[fmt](r) for r in results)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
