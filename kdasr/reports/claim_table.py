"""`kdasr claim-table`: systems trained with several seeds, compared on every evaluation set with
intervals that count training variance, generated from result records (kdasr.eval.results), never
typed by hand. Torch-free.

A record's seed comes from its system name, `SYSTEM@sN` (what `kdasr eval --system ce@s1` writes),
or from a "seed" field; both present must agree. One row per system: WER mean ± sd over its seeds
per set; per set, every pair of systems compared by the relative WER change with an interval from
the bootstrap over seeds and utterances together (kdasr.eval.seed_bootstrap) and the share of
draws in which one has the lower WER; a closing reading line per pair whose interval excludes 0."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import KdasrError
from ..eval.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from ..eval.results import per_utterance
from ..eval.seed_bootstrap import METHOD, SeedBootstrap, SeedRecord, SeedRuns, seed_bootstrap, stack, summary
from .paper_table import _decoding_warnings, _f, _signed, record_files

SEEDED = re.compile(r"^(?P<system>.+)@s(?P<seed>\d+)$")
FENCES = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}


@dataclass(frozen=True)
class ClaimConfig:
    baseline: str
    sets: tuple[str, ...] | None = None  # None: every set the records hold, first seen first
    systems: tuple[str, ...] | None = None  # rows in this order, only these (None: all, first seen first)
    protocol: str | None = None  # the protocol file's text, shown verbatim
    protocol_file: str | None = None
    command: str = ""
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class Seeded:
    system: str
    seed: str | None
    set: str
    file: str
    doc: dict


@dataclass
class Claim:
    markdown: str
    doc: dict  # the same numbers, for --json


def split_seed(doc: dict, file: Path) -> tuple[str, str | None]:
    """(system, seed label) of a record: `SYSTEM@sN` in its name and/or a "seed" field (an
    integer); KdasrError naming the file when the two disagree or the field is not an integer."""
    name = str(doc["system"])
    m = SEEDED.match(name)
    named = str(int(m["seed"])) if m else None
    field = doc.get("seed")
    if field is not None:
        if isinstance(field, bool) or not isinstance(field, (int, str)) or not str(field).strip().isdigit():
            raise KdasrError(f"{file}: 'seed' must be a non-negative integer, not {field!r}")
        field = str(int(field))
        if named is not None and named != field:
            raise KdasrError(f"{file}: system {name!r} names seed {named} but the record's 'seed' is {field}")
    return (m["system"] if m else name), field if field is not None else named


def load_seeded(paths: list[Path]) -> list[Seeded]:
    """Result records with their system and seed; KdasrError naming the file for a record without
    per-utterance counts, and for two records of one system, seed and set."""
    out, seen = [], {}
    for f, doc in record_files(paths):
        system, seed = split_seed(doc, f)
        key = (system, seed, str(doc["set"]))
        if key in seen:
            what = f"seed {seed}" if seed is not None else "no seed (name records SYSTEM@sN or give a 'seed' field)"
            raise KdasrError(f"{f}: a second record of system {system!r}, {what}, on {key[2]!r} (first: {seen[key]})")
        seen[key] = f
        try:
            cols = per_utterance(doc)
        except ValueError as e:
            raise KdasrError(f"{f}: {e}") from None
        if cols is None:
            raise KdasrError(f"{f}: no per-utterance counts (a record older than version 2): run `kdasr eval --json` "
                             "again")
        out.append(Seeded(system, seed, key[2], str(f), {**doc, "per_utterance": cols}))
    if not out:
        raise KdasrError("no result records found in " + ", ".join(map(str, paths)))
    for (system, seed, set_name), f in seen.items():
        if seed is None and any(k[0] == system and k[2] == set_name and k[1] is not None for k in seen):
            raise KdasrError(f"{f}: no seed, while other records of {system!r} on {set_name!r} have one (name it "
                             "SYSTEM@sN or give it a 'seed' field)")
    return out


def _set_stats(recs: list[Seeded], cfg: ClaimConfig) -> tuple[dict[str, SeedRuns], SeedBootstrap]:
    recs = sorted(recs, key=lambda r: -1 if r.seed is None else int(r.seed))  # seeds in numeric order
    seeded = [SeedRecord(r.system, r.seed or "–", list(r.doc["per_utterance"]["ids"]),
                         r.doc["per_utterance"]["word_errors"], r.doc["per_utterance"]["words"], r.file) for r in recs]
    runs = stack(seeded)
    return runs, seed_bootstrap(runs, cfg.resamples, cfg.seed)


def _iv(iv) -> str:
    if iv is None or math.isnan(iv.estimate):
        return "–"
    return f"{_signed(iv.estimate)} [{_signed(iv.low)}, {_signed(iv.high)}]"


def _p(p: float) -> str:
    """A share of draws; never rounded to a certainty the draws do not show."""
    if 0 < p < 0.001:
        return "< 0.001"
    return "> 0.999" if 0.999 < p < 1 else f"{p:.3f}"


def _fence(text: str, file: str | None) -> list[str]:
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    info = FENCES.get(Path(file).suffix.lower(), "") if file else ""
    return [ticks + info, text.rstrip("\n"), ticks]


def build_claim(records: list[Seeded], cfg: ClaimConfig) -> Claim:
    systems = list(dict.fromkeys(r.system for r in records))
    if cfg.baseline not in systems:
        raise KdasrError(f"baseline {cfg.baseline!r} has no result record (systems: {', '.join(systems)})")
    order = [cfg.baseline] + [s for s in (cfg.systems or systems) if s != cfg.baseline]
    records = [r for r in records if r.system in order]
    absent = [s for s in order if s not in systems]
    sets = list(cfg.sets) if cfg.sets else list(dict.fromkeys(r.set for r in records))
    label = {s: s + (" (baseline)" if s == cfg.baseline else "") for s in order}
    stats, boots, utts = {}, {}, {}
    for n in sets:
        recs = [r for r in records if r.set == n]
        if recs:
            runs, boots[n] = _set_stats(recs, cfg)
            utts[n] = len(next(iter(runs.values())).words)
            stats.update({(s, n): (runs[s], summary(runs[s])) for s in runs})
    files = {(r.system, r.set): [] for r in records}
    for r in records:
        files[(r.system, r.set)].append(r.file)

    out = ["# Claim table: systems over training seeds", ""]
    if cfg.protocol is not None:
        out += ["## Protocol", ""] + ([f"From `{cfg.protocol_file}`, verbatim:", ""] if cfg.protocol_file else [])
        out += [*_fence(cfg.protocol, cfg.protocol_file), ""]
    out += ["## WER % over seeds (mean ± sd)", "", "| system | seeds | " + " | ".join(sets) + " |",
            "|---|---:|" + "---:|" * len(sets)]
    for s in order:
        counts = [len(stats[(s, n)][0].seeds) for n in sets if (s, n) in stats]
        most = max(counts, default=0)
        cells = []
        for n in sets:
            if (s, n) not in stats:
                cells.append("–")
                continue
            k, sm = len(stats[(s, n)][0].seeds), stats[(s, n)][1]
            wer = "–" if math.isnan(sm.mean) else f"{_f(sm.mean, 2)} ± {_f(sm.sd, 2)}"
            cells.append(wer + (f" ({k} seeds)" if k != most else ""))
        out.append(f"| {label[s]} | {most or '–'} | " + " | ".join(cells) + " |")
    legend = ("sd over seeds with ddof = 1 ('–' with one seed); seeds: training seeds in the row, a cell naming "
              "its own count where a set has fewer; '–': no record, or no reference words.")
    if absent:
        out += ["", f"**Warning:** no record of {', '.join(absent)}."]
    # per run (system and seed): each seed is tuned on dev on its own, so only a run decoded differently
    # on different sets is a mistake
    runs = [{**r.doc, "system": r.system if r.seed is None else f"{r.system}@s{r.seed}"} for r in records]
    named = list(dict.fromkeys(run["system"] for run, r in zip(runs, records) if r.system in order))
    out += ["", *_decoding_warnings(runs, named, tuple(sets)), legend, ""]

    doc_pairs, reading = {}, []
    for n in sets:
        if n not in boots:
            out += [f"## {n}", "", "No records of this set.", ""]
            doc_pairs[n] = []
            continue
        b = boots[n]
        out += [f"## {n} ({utts[n]} utterances)", "", "| system | seeds | pooled WER % [95 % interval] |",
                "|---|---|---:|"]
        for s in order:
            if (s, n) not in stats:
                out.append(f"| {label[s]} | – | – |")
                continue
            iv = b.wer[s]
            wer = "–" if math.isnan(iv.estimate) else f"{_f(iv.estimate, 2)} [{_f(iv.low, 2)}, {_f(iv.high, 2)}]"
            out.append(f"| {label[s]} | {', '.join(stats[(s, n)][0].seeds)} | {wer} |")
        out += ["", "| A vs B | relative WER change % [95 % interval] | P(WER A < WER B) |", "|---|---:|---:|"]
        for j, a in enumerate(order):
            for bname in order[:j]:
                p = b.pairs.get((a, bname))
                cells = ("–", "–") if p is None else (_iv(p.change) if p.change else "n/a (WER B is 0 or undefined)",
                                                      _p(p.p_a_better))
                out.append(f"| {a} vs {bname} | {cells[0]} | {cells[1]} |")
                if p is not None and p.excludes_zero:
                    k = f"{len(stats[(a, n)][0].seeds)} × {len(stats[(bname, n)][0].seeds)} seeds"
                    how = "lower" if p.change.high < 0 else "higher"
                    reading.append(f"- {n}: {a} has a {how} WER than {bname}: {_iv(p.change)} %, P(A < B) "
                                   f"{_p(p.p_a_better)} ({k}, {utts[n]} utterances).")
        out.append("")
        doc_pairs[n] = [_pair_doc(b, a, c, stats, n) for a in order for c in order if a != c]
    out += ["## Reading", "", *(reading or ["- No pair's interval excludes 0 on any set."]), "",
            "Relative change = 100 (WER A − WER B) / WER B: negative = A makes fewer word errors. "
            "Interval: " + METHOD.format(n=cfg.resamples, seed=cfg.seed, level=95) + ". With few seeds the "
            "interval's seed part is coarse: read it as a lower bound on training variance.", ""]
    made = f"Generated by `{cfg.command}` from" if cfg.command else "Generated from"
    out += [f"{made} the result records (never typed by hand):", ""]
    out += [f"- `{r.file}`: {r.system}, seed {r.seed or '–'}, on {r.set}" for r in records if r.set in sets] + [""]

    doc = {"kdasr_claim_table": 1, "baseline": cfg.baseline, "sets": sets, "utterances": utts,
           "method": METHOD.format(n=cfg.resamples, seed=cfg.seed, level=95), "resamples": cfg.resamples,
           "bootstrap_seed": cfg.seed, "level": 95, "protocol": cfg.protocol, "protocol_file": cfg.protocol_file,
           "command": cfg.command,
           "systems": [{"system": s, "baseline": s == cfg.baseline,
                        "sets": {n: _system_doc(s, n, stats, boots, files) for n in sets}} for s in order],
           "comparisons": doc_pairs, "reading": [x[2:] for x in reading]}
    return Claim("\n".join(out) + "\n", doc)


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _system_doc(s: str, n: str, stats: dict, boots: dict, files: dict) -> dict | None:
    if (s, n) not in stats:
        return None
    runs, sm = stats[(s, n)]
    iv = boots[n].wer[s]
    return {"seeds": list(runs.seeds), "per_seed_wer": {k: _num(v) for k, v in sm.per_seed.items()},
            "mean": _num(sm.mean), "sd": _num(sm.sd),
            "pooled_wer": _num(iv.estimate), "low": _num(iv.low), "high": _num(iv.high),
            "files": files[(s, n)]}


def _pair_doc(b: SeedBootstrap, a: str, c: str, stats: dict, n: str) -> dict:
    p = b.pairs.get((a, c))
    if p is None:  # one of the two has no record of this set
        return {"a": a, "b": c, "change": None, "low": None, "high": None, "p_a_better": None,
                "excludes_zero": None}
    ch = p.change
    return {"a": a, "b": c, "change": _num(ch.estimate) if ch else None, "low": _num(ch.low) if ch else None,
            "high": _num(ch.high) if ch else None, "p_a_better": p.p_a_better, "excludes_zero": p.excludes_zero,
            "seeds": [len(stats[(a, n)][0].seeds), len(stats[(c, n)][0].seeds)]}
