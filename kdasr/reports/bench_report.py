"""Writers of `kdasr bench` (the engine report): a RuntimeBench record in, Markdown or JSON out.
Every setting is looked up by name, never by its place in a list; derived figures (speed-ups,
the aimed-for ratios, the recommended decoding's search cost) are computed here from the records.
Torch-free."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..io_utils import atomic_write_text
from .bench_records import BEAM5, GREEDY, ORT_FP32_B1, ORT_INT8_B1, Measured, RuntimeBench, search_name
from .engines import Row

BENCH_FORMAT = 1
ENCODER_ONLY = "&nbsp;&nbsp;&nbsp;encoder only"


def machine_lines(m: dict) -> list[str]:
    """The machine of a `machine_info()` record, as the reports' bullet lines."""
    load = ", ".join(f"{x:.2f}" for x in m["load_average"]) if m["load_average"] else "n/a"
    return [
        f"- CPU: {m['cpu']}{' (AMX)' if m['amx'] else ''}; {m['cores_usable']} cores usable "
        f"(os.cpu_count {m['cpu_count']}); "
        f"load average at start {load}",
        f"- Python {m['python']} on {m['system']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
    ]


def _line(r: Row, base: Row | None, notes: str) -> str:
    up = f"{base.seconds / r.seconds:.2f}x / {base.cpu / r.cpu:.2f}x" if base and r.wer is not None else ""
    wer = f"{r.wer:.2f}" if r.wer is not None else ""
    cer = f"{r.cer:.2f}" if r.cer is not None else ""
    return f"| {r.name} | {r.seconds:.2f} | {r.cpu:.2f} | {r.rtfx:.1f} | {up} | {wer} | {cer} | {notes} |"


def table(settings: list[Measured], base: Measured | None) -> list[str]:
    """Each setting's row, then its encoder-only row; speed-ups against `base` (decoding rows only)."""
    lines = ["| setting | wall s | CPU s | RTFx | speed-up wall / CPU | WER % | CER % | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    b = base.row if base is not None else None
    for m in settings:
        r, e = m.row, m.encoder
        stages = "CPU s: " + " + ".join(f"{k} {v:.2f}" for k, v in r.stages.items()) if r.stages else ""
        lines.append(_line(r, b, m.note + stages))
        lines.append(_line(dataclasses.replace(e, name=ENCODER_ONLY), b,
                           f"{e.seconds / r.seconds * 100:.0f} % of the row above (wall)"))
    return lines


@dataclass(frozen=True)
class Aim:
    """`fast` at least `goal` times faster than `slow`, judged by CPU time (the work, not the waiting)."""

    what: str
    fast: Row
    slow: Row
    goal: float
    note: str = ""

    @property
    def wall(self) -> float:
        return self.slow.seconds / self.fast.seconds

    @property
    def cpu(self) -> float:
        return self.slow.cpu / max(self.fast.cpu, 1e-9)

    @property
    def met(self) -> bool:
        return self.cpu >= self.goal

    def line(self) -> str:
        met = "met" if self.met else "missed"
        return f"| {self.what} | {self.wall:.2f}x | {self.cpu:.2f}x | >= {self.goal:g}x | {met} | {self.note} |"


@dataclass(frozen=True)
class SearchCost:
    """The recommended decoding's search (everything but the encoder graph) against its encoder."""

    search_s: float
    encoder_s: float
    encoder_alone_s: float


def search_cost(b: RuntimeBench) -> SearchCost:
    rec = b.setting(b.recommended)
    enc_s = rec.row.stages.get("encoder graph", 0.0)
    return SearchCost(rec.row.cpu - enc_s, enc_s, rec.encoder.cpu)


def aims(b: RuntimeBench) -> list[Aim]:
    ort1 = b.setting(ORT_FP32_B1).row
    out = []
    if b.reference is not None:
        ref = b.setting(b.engines_base).row
        out.append(Aim("ORT fp32 vs torch eager (greedy, batch 1, end to end)", ort1, ref, 2.5))
    if (i8 := b.get(ORT_INT8_B1)) is not None:
        loss = (i8.row.cer or 0.0) - (ort1.cer or 0.0)
        note = f"CER change {loss:+.2f} (aim <= +0.5)"
        out.append(Aim("ORT int8 vs fp32 (greedy, batch 1)", i8.row, ort1, 1.5, note))
    out.append(Aim("batch 16 vs batch 1 (ORT fp32, greedy)", b.batch16.row, ort1, 2.0))
    cost, rec = search_cost(b), b.setting(b.recommended).row
    audio = b.seconds_audio
    out.append(Aim(
        f"encoder vs search, {b.recommended}",
        Row("search", cost.search_s, audio, cpu=cost.search_s),
        Row("encoder", cost.encoder_s, audio, cpu=cost.encoder_s),
        1.0,
        f"search costs at most the encoder (CPU s); RTFx {rec.rtfx:.1f} wall, {audio / rec.cpu:.1f} by CPU "
        "(aim >= 250 per thread)",
    ))
    return out


def runtime_markdown(b: RuntimeBench) -> str:
    lines = ["# Runtime benchmark (`kdasr bench`)", "", f"Run {b.run}. Machine:", *machine_lines(b.machine), ""]
    if b.command:
        lines += [f"Command: `{b.command}`", ""]
    if b.note:
        lines += [f"**Note:** {b.note}", ""]
    lines += [
        f"Audio: first {b.utterances} utterances of `{b.manifest}` ({b.seconds_audio:.1f} s). Model: `{b.model}`. "
        f"onnxruntime intra-op threads: {b.threads}. Times: best of {b.repeats}. "
        "Every row decodes the same audio in this one run; "
        "RTFx = seconds of audio per second of wall time, end to end (encoder + search + detokenise; "
        "audio already in memory). CPU s = this process's CPU time for the row (with 1 thread, the work "
        "itself; wall time also counts waiting for a core); of several runs the one with the least CPU "
        "time is kept. Each decoding row is followed by its engine's encoder alone on the same batches; "
        "ORT rows split their CPU time by stage: encoder graph, decoder graph (all step calls), and the "
        "rest (numpy search: candidate ranking, CTC prefix scores, state gathers; detokenising).",
        "",
    ]
    if b.reference is not None and b.reference_source:
        lines += [f"Reference engine `{b.reference}` built from `{b.reference_source}`.", ""]
    lines += ["## Engines: torch eager vs ORT fp32 vs ORT int8 (greedy, one utterance at a time)", ""]
    lines += table(list(b.engines), b.setting(b.engines_base)) + [""]
    if not b.has_int8:
        lines += ["(no int8 graphs in the model dir: export with `--quantize int8`)", ""]
    ort1 = b.setting(ORT_FP32_B1)
    lines += ["## Batch 1 vs batch 16 (ORT fp32, greedy)", ""]
    lines += table([ort1, b.batch16], ort1) + [""]
    lines += ["## Search: greedy, beam, joint CTC/attention (ORT, batch 16)", ""]
    lines += table(list(b.search), b.setting(search_name("fp32", GREEDY))) + [""]
    rec, cost = b.setting(b.recommended).row, search_cost(b)
    lines += [
        f"Recommended decoding ({b.recommended}): RTFx {rec.rtfx:.1f} (wall; {b.seconds_audio / rec.cpu:.1f} "
        f"by CPU time) with {b.threads} onnxruntime thread(s); search (everything but the encoder graph) "
        f"{cost.search_s:.2f} CPU s against the encoder's {cost.encoder_s:.2f} in the same run "
        f"({cost.encoder_alone_s:.2f} alone): {cost.search_s / max(cost.encoder_s, 1e-9):.2f}x the encoder.",
        "",
    ]
    lines += ["## Shallow fusion and rescoring cost against plain beam search (ORT fp32, batch 16)", ""]
    if b.fusion:
        beam5 = b.setting(search_name("fp32", BEAM5))
        lines += table([beam5, *b.fusion], beam5) + [""]
    else:
        lines += ["(no exported LM/BERT: `kdasr export-lm --lm DIR --bert DIR --out MODEL_DIR`)", ""]
    lines += ["## Ratios side by side (this run)", "", "| ratio | wall | CPU | aim | (by CPU) | notes |",
              "|---|---:|---:|---:|---|---|", *(a.line() for a in aims(b)), ""]
    la = b.long_audio
    lines += [
        "## Long audio and memory",
        "",
        f"- {la.seconds_audio:.1f} s file -> {len(la.segment_ends)} segments (max 20 s, cut at pauses), greedy: "
        f"{la.wall_s:.2f} s, RTFx {la.seconds_audio / la.wall_s:.1f}; segment ends "
        + ", ".join(f"{s:.1f}" for s in la.segment_ends[:12])
        + (" ..." if len(la.segment_ends) > 12 else ""),
        f"- peak RSS of `kdasr transcribe` on that file (whole process: Python, ORT, model): "
        f"greedy {la.rss_mb_greedy:.0f} MB ({la.wall_s_greedy:.1f} s wall incl. start-up), "
        f"beam 5 {la.rss_mb_beam5:.0f} MB ({la.wall_s_beam5:.1f} s)",
        "",
    ]
    return "\n".join(lines) + "\n"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _row(r: Row) -> dict:
    return {**dataclasses.asdict(r), "rtfx": _finite(r.rtfx)}


def _setting(m: Measured) -> dict:
    return {"name": m.name, "note": m.note, "row": _row(m.row), "encoder_only": _row(m.encoder)}


def runtime_json(b: RuntimeBench) -> dict:
    """The records as JSON (settings as name, row, encoder_only), with the derived ratios."""
    doc = {f.name: getattr(b, f.name) for f in dataclasses.fields(b)}
    for key in ("engines", "search", "fusion"):
        doc[key] = [_setting(m) for m in doc[key]]
    doc["batch16"] = _setting(b.batch16)
    doc["long_audio"] = dataclasses.asdict(b.long_audio)
    doc["aims"] = [{"what": a.what, "wall": a.wall, "cpu": a.cpu, "goal": a.goal, "met": a.met, "note": a.note}
                   for a in aims(b)]
    doc["search_cost"] = dataclasses.asdict(search_cost(b))
    return {"kdasr_runtime_bench": BENCH_FORMAT, **doc}


def write_runtime_bench(b: RuntimeBench, markdown: Path, json_path: Path) -> None:
    markdown.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(runtime_json(b), indent=2) + "\n")
    atomic_write_text(markdown, runtime_markdown(b))
