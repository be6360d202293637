"""`kdasr paper-table`: the paper's results table generated from result records (kdasr.eval.results)
and one systems bench run (kdasr.reports.bench_systems), never typed by hand. Torch-free.

One row per system: WER (CER) per evaluation set; the relative WER change against the baseline
with a paired bootstrap interval over the utterances both scored; the decoding cost from the one
bench run (RTFx and latency p50/p95 at batch 1 and 16, latency against the baseline's); the
paper's CSJ figures beside ours for orientation; a reference recogniser (whisper tiny.en) as a
row of its own; the protocol as the caller states it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KdasrError
from ..eval.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    METHOD,
    Interval,
    align,
    paired_relative_change,
    rate_interval,
)
from ..eval.results import per_utterance
from ..io_utils import read_json
from .bench_systems import describe

DEFAULT_SETS = ("dev", "test", "test_heldout", "test_neural_heldout", "test_noisy")
# Futami et al., "Distilling the Knowledge of BERT for Sequence-to-Sequence ASR", Interspeech 2020
# (arXiv:2008.03822): CSJ eval WER %, as DESIGN.md §4 quotes them
PAPER = {"baseline": ("baseline", 10.31), "bert-utterance": ("BERT-KD utterance", 9.53),
         "bert-context": ("BERT-KD context", 9.19)}
PAPER_SOURCE = "Futami et al. 2020 (Interspeech, arXiv:2008.03822), CSJ eval WER %"


@dataclass(frozen=True)
class TableConfig:
    baseline: str
    sets: tuple[str, ...] = DEFAULT_SETS
    paper_rows: dict[str, str] = field(default_factory=dict)  # our system -> PAPER key
    references: tuple[str, ...] = ()  # systems shown as reference rows (whisper is one by its name)
    protocol: str = ""
    command: str = ""
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    plot_set: str = "test"


def _is_record(doc) -> bool:
    return isinstance(doc, dict) and {"system", "set", "wer", "cer"} <= set(doc)


def record_files(paths: list[Path]) -> list[tuple[Path, dict]]:
    """(file, record) for the result records in files and folders (their *.json, recursively; other
    JSON, such as tune options or bench files, is skipped). KdasrError naming the file for
    unreadable JSON and for a path that does not exist."""
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.rglob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise KdasrError(f"{p}: no such file or folder")
    docs = ((f, read_json(f, "not a JSON result record")) for f in files)
    return [(f, doc) for f, doc in docs if _is_record(doc)]


def load_records(paths: list[Path]) -> list[dict]:
    """Result records from files and folders (see record_files), each with its "_file". KdasrError
    naming the file for two records of the same system and set."""
    records, seen = [], {}
    for f, doc in record_files(paths):
        key = (doc["system"], doc["set"])
        if key in seen:
            raise KdasrError(f"{f}: a second record of system {key[0]!r} on {key[1]!r} (first: {seen[key]})")
        seen[key] = f
        records.append({**doc, "_file": str(f)})
    if not records:
        raise KdasrError("no result records found in " + ", ".join(map(str, paths)))
    return records


def load_bench(path: Path | None) -> dict | None:
    if path is None:
        return None
    doc = read_json(path, "cannot read the bench JSON")
    if not isinstance(doc, dict) or "systems" not in doc or "kdasr_bench" not in doc:
        raise KdasrError(f"{path}: not a `kdasr bench --system` JSON (no 'systems')")
    return doc


def relative_change(rec: dict, base: dict, cfg: TableConfig) -> Interval | None:
    """Paired bootstrap of the WER change against the baseline on the utterances both scored."""
    a, b = per_utterance(rec), per_utterance(base)
    if a is None or b is None:
        return None
    ia, ib = align(a["ids"], b["ids"])
    try:
        return paired_relative_change(a["word_errors"][ia], b["word_errors"][ib], cfg.resamples, cfg.seed)
    except ValueError:
        return None


def wer_interval(rec: dict, cfg: TableConfig) -> Interval | None:
    cols = per_utterance(rec)
    if cols is None or not cols["words"].sum():
        return None
    return rate_interval(cols["word_errors"], cols["words"], cfg.resamples, cfg.seed)


_EXECUTION = ("batch_size", "max_batch_seconds")


def _decoding_key(decoding: dict) -> str:
    return json.dumps({k: v for k, v in decoding.items() if k not in _EXECUTION}, sort_keys=True)


def _decoding_warnings(records: list[dict], systems: list[str], sets: tuple[str, ...]) -> list[str]:
    """A line per system whose sets were decoded with different settings (the dev-chosen options
    must be the ones the test sets get)."""
    out = []
    for s in systems:
        seen = {}
        for r in records:
            if r["system"] == s and r["set"] in sets and isinstance(r.get("decoding"), dict):
                seen.setdefault(_decoding_key(r["decoding"]), []).append(r["set"])
        if len(seen) > 1:
            groups = "; ".join(", ".join(v) for v in seen.values())
            out.append(f"**Warning:** {s} was decoded with different settings on different sets ({groups}).")
    return out + ([""] if out else [])


def _f(x, digits=1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mode_cells(m: dict) -> str:
    """'RTFx | p50 / p95' of one bench mode; n/a where the bench did not run it (its notes say why)."""
    if m.get("latency_ms_p50") is None:
        return "n/a | n/a"
    return f"{_f(m['rtfx'])} | {m['latency_ms_p50']:.0f} / {m['latency_ms_p95']:.0f}"


def _signed(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


@dataclass
class Table:
    markdown: str
    points: list[dict]  # for the plot: system, wer, low, high, latency_ms


def build_table(records: list[dict], bench: dict | None, cfg: TableConfig) -> Table:
    systems = list(dict.fromkeys(r["system"] for r in records))
    if cfg.baseline not in systems:
        raise KdasrError(f"baseline {cfg.baseline!r} has no result record (systems: {', '.join(systems)})")
    systems.remove(cfg.baseline)
    refs = [s for s in systems if s in cfg.references or s.lower().startswith("whisper")]
    order = [cfg.baseline] + [s for s in systems if s not in refs] + refs
    by = {(r["system"], r["set"]): r for r in records}
    cost = {s["name"]: s for s in (bench or {}).get("systems", [])}
    label = {s: s + (" (reference)" if s in refs else "") for s in order}
    out = ["# Results: students, inference-time alternatives and a reference recogniser", ""]
    if cfg.protocol:
        out += [f"**Protocol.** {cfg.protocol}", ""]

    # accuracy
    head = "| system | " + " | ".join(cfg.sets) + " | paper, CSJ (not comparable) |"
    out += ["## WER (CER) %", "", head, "|---|" + "---:|" * len(cfg.sets) + "---:|"]
    for s in order:
        cells = [f"{_f(r['wer'], 2)} ({_f(r['cer'], 2)})" if (r := by.get((s, n))) else "–" for n in cfg.sets]
        paper = PAPER.get(cfg.paper_rows.get(s, "baseline" if s == cfg.baseline else ""))
        out.append(f"| {label[s]} | " + " | ".join(cells) + f" | {f'{paper[0]} {paper[1]:.2f}' if paper else ''} |")
    utts = {n: sorted({r["utterances"] for r in records if r["set"] == n}) for n in cfg.sets}
    warnings = _decoding_warnings(records, order, cfg.sets)
    scored = ", ".join(f"{n} {'/'.join(map(str, v)) or '–'}" for n, v in utts.items())
    out += ["", *warnings, f"Utterances scored: {scored}.", ""]

    # relative change with its interval
    out += [f"## Relative WER change against {cfg.baseline} (%, 95 % interval)", "",
            "| system | " + " | ".join(cfg.sets) + " |", "|---|" + "---:|" * len(cfg.sets)]
    for s in order[1:]:
        cells = []
        for n in cfg.sets:
            r, b = by.get((s, n)), by.get((cfg.baseline, n))
            ci = relative_change(r, b, cfg) if r and b else None
            if ci is None:
                cells.append("–" if not (r and b) else "n/a (no per-utterance counts)")
                continue
            subset = f" on {ci.utterances}" if ci.utterances != b["utterances"] else ""
            cells.append(f"{_signed(ci.estimate)} [{_signed(ci.low)}, {_signed(ci.high)}]{subset}")
        out.append(f"| {label[s]} | " + " | ".join(cells) + " |")
    out += ["", "Negative = fewer word errors than the baseline; an interval that excludes 0 is a difference "
            "the test set resolves. Interval: " + METHOD.format(n=cfg.resamples, seed=cfg.seed, level=95)
            + "; 'on N': only the N utterances both systems scored.", ""]

    # decoding cost, from one bench run
    out += ["## Decoding cost (one `kdasr bench --system` run)", ""]
    base_cost, mismatched = cost.get(cfg.baseline), []
    if bench is None:
        out += ["(no bench JSON given: `kdasr bench --system NAME=MODEL_DIR[:OPTIONS.json] ... --out X.md`)", ""]
    else:
        out += ["| system | decoding | RTFx b1 | p50 / p95 ms b1 | RTFx b16 | p50 / p95 ms b16 | "
                "latency / baseline b1 | b16 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for s in order:
            c = cost.get(s)
            if c is None:
                rec_rtfx = [r for r in records if r["system"] == s and r.get("rtfx")]
                note = (f"not in the bench run; RTFx {rec_rtfx[0]['rtfx']:.1f} at {rec_rtfx[0].get('threads')} "
                        f"thread(s) in its eval run ({rec_rtfx[0]['set']})") if rec_rtfx else "not in the bench run"
                out.append(f"| {label[s]} | {note} | | | | | | |")
                continue
            b1, b16 = c["batch1"], c["batch16"]
            mine = [r["decoding"] for r in records if r["system"] == s and isinstance(r.get("decoding"), dict)]
            if c.get("engine") == "faster-whisper":  # a reference row: eval-reference records only its beam
                same = any(d.get("beam") == c["decoding"].get("beam") for d in mine)
            else:
                same = _decoding_key(c["decoding"]) in {_decoding_key(d) for d in mine}
            if not same:
                mismatched.append(s)
            ratios = ["–", "–"]
            if base_cost is not None:
                ratios = [f"{c[m]['latency_ms_p50'] / base_cost[m]['latency_ms_p50']:.2f}"
                          if c[m]["latency_ms_p50"] and base_cost[m]["latency_ms_p50"] else "n/a"
                          for m in ("batch1", "batch16")]
            out.append(f"| {label[s]} | {describe(c['decoding'])} | {_mode_cells(b1)} | {_mode_cells(b16)} | "
                       f"{ratios[0]} | {ratios[1]} |")
        if mismatched:
            out += ["", "**Warning:** benched with a decoding none of its result records used: "
                    + ", ".join(mismatched) + "."]
        out += ["", f"Bench run {bench.get('run')}: first {bench['utterances']} utterances of `{bench['manifest']}` "
                f"({bench['seconds_audio']:.1f} s), {bench['threads']} onnxruntime thread(s), "
                f"{bench['repeats']} round(s). {bench['method']}. Latency / baseline = p50 latency over the "
                f"baseline's ({cfg.baseline}) in the same run: a KD student runs graphs of the baseline's size (the "
                "same cost per search step), so its ratio differs from 1 only by the run's noise and by how many "
                "steps the search over its own hypotheses takes; fusion and rescoring pay for the LM / BERT calls.",
                "", "Machine:", *bench.get("machine_lines", []), ""]
        if bench.get("command"):
            out += [f"Bench command: `{bench['command']}`", ""]

    out += ["## The paper, for orientation", "",
            f"{PAPER_SOURCE} — Japanese lectures, another model and other data; **not comparable** with the "
            "figures above, only the direction of the differences is: " + "; ".join(
                f"{name} {wer:.2f}" + ("" if key == "baseline" else f" ({_signed(100 * (wer / 10.31 - 1))} %)")
                for key, (name, wer) in PAPER.items()) + ".", ""]
    if cfg.command:
        out += [f"Generated by `{cfg.command}` from the result records (never typed by hand):", ""]
        out += [f"- `{r['_file']}`: {r['system']} on {r['set']}" for r in records if r["set"] in cfg.sets]
        out += [""]

    points = []
    for s in order:
        r, c = by.get((s, cfg.plot_set)), cost.get(s)
        ci = wer_interval(r, cfg) if r else None
        if r and c:
            points.append({"system": label[s], "wer": r["wer"], "low": ci.low if ci else r["wer"],
                           "high": ci.high if ci else r["wer"], "latency_ms": c["batch1"]["latency_ms_p50"]})
    return Table("\n".join(out) + "\n", points)


def plot(points: list[dict], path: Path, set_name: str) -> None:
    """WER on `set_name` against p50 latency at batch 1, bootstrap 95 % interval as bars (matplotlib,
    the `report` extra; never needed by the runtime). Written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KdasrError("--plot needs matplotlib: pip install 'kdasr[report]'") from None
    from ..io_utils import atomic_open

    if not points:
        raise KdasrError(f"nothing to plot: no system has both a {set_name} record and a bench entry")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for p in points:
        err = [[p["wer"] - p["low"]], [p["high"] - p["wer"]]]
        ax.errorbar([p["latency_ms"]], [p["wer"]], yerr=err, fmt="o", capsize=4, label=p["system"])
        ax.annotate(p["system"], (p["latency_ms"], p["wer"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("latency per utterance, p50 at batch 1 (ms)")
    ax.set_ylabel(f"WER on {set_name} (%)")
    ax.set_title(f"WER against decoding latency ({set_name}; bars: bootstrap 95 % interval)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
