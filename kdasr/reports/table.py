"""Markdown tables generated from result records (kdasr.eval.results), never typed by hand:
one row per system, WER (CER) per evaluation set, and each system's RTFx. Torch-free."""

from __future__ import annotations

import math


def _fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def results_table(records: list[dict], sets: list[str] | None = None) -> str:
    """Systems in first-seen order × sets; a cell is 'WER (CER)' in percent, '–' when not run."""
    systems = list(dict.fromkeys(r["system"] for r in records))
    sets = sets or list(dict.fromkeys(r["set"] for r in records))
    by = {(r["system"], r["set"]): r for r in records}
    head = "| system | " + " | ".join(sets) + " | RTFx (threads) |"
    lines = [head, "|---|" + "---:|" * (len(sets) + 1)]
    for s in systems:
        cells = []
        for name in sets:
            r = by.get((s, name))
            cells.append("–" if r is None else f"{_fmt(r['wer'])} ({_fmt(r['cer'])})")
        speeds = [r for (sys_, _), r in by.items() if sys_ == s and r.get("decode_seconds")]
        audio = sum(r["seconds_audio"] for r in speeds)
        secs = sum(r["decode_seconds"] for r in speeds)
        threads = {r.get("threads") for r in speeds}
        shown = sorted(str(t) if t else "all cores" for t in threads)  # None: onnxruntime's default, every core
        rtfx = f"{audio / secs:.1f} ({'/'.join(shown)})" if secs else "–"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {rtfx} |")
    utts = {name: sorted({r["utterances"] for r in records if r["set"] == name}) for name in sets}
    lines += ["", "Utterances scored per set: " + ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in utts.items())
              + ". WER (CER) in %; RTFx = audio seconds / decode seconds over all sets of the row."]
    return "\n".join(lines)
