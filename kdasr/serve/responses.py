"""Results in the OpenAI audio API's response formats (json, text, verbose_json, srt, vtt) and
kdasr's own JSON for the raw-bytes route. No I/O."""

from __future__ import annotations

from ..runtime.jobs.formats import result_dict, srt, vtt
from ..runtime.transcriber import Result

OPENAI_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
RAW_FORMATS = ("json", "text", "srt", "vtt")
LANGUAGE_NAMES = {"en": "english"}
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain; charset=utf-8",
               "srt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}


def verbose_json(r: Result, language: str, with_nbest: bool) -> dict:
    """OpenAI's verbose_json. Fields this model cannot honestly give (avg_logprob, compression_ratio,
    no_speech_prob) are left out rather than invented; `nbest` (kdasr's) is added when asked, and
    `warnings` (kdasr's: clipped, nearly silent, truncated) when there are any."""
    d = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(language, language),
        "duration": round(r.duration, 3),
        "text": r.text,
        "segments": [
            {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens,
             "temperature": 0.0}
            for i, s in enumerate(r.segments)
        ],
    }
    words = [w for s in r.segments for w in s.words]
    if words:  # asked for with timestamp_granularities=["word"]: OpenAI's top-level list
        d["words"] = [{"word": w.word, "start": w.start, "end": w.end, "probability": round(w.probability, 4)}
                      for w in words]
    if with_nbest and r.nbest:
        d["nbest"] = [{"text": n.text, "tokens": n.tokens, "score": round(n.score, 4)} for n in r.nbest]
    if r.warnings:
        d["warnings"] = list(r.warnings)
    return d


def openai_body(r: Result, fmt: str, language: str, with_nbest: bool) -> dict | str:
    if fmt == "json":
        return {"text": r.text}
    if fmt == "verbose_json":
        return verbose_json(r, language, with_nbest)
    return render_text(r, fmt)


def raw_body(r: Result, fmt: str, with_nbest: bool) -> dict | str:
    return result_dict(r, with_nbest) if fmt == "json" else render_text(r, fmt)


def render_text(r: Result, fmt: str) -> str:
    if fmt == "text":
        return r.text + "\n"
    return srt(r) if fmt == "srt" else vtt(r)
