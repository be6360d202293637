"""`kdasr claim-verdicts`: which claims of Futami et al. 2020 (Distilling the Knowledge of BERT for
Seq2Seq ASR) hold on our data, read only from the numbers `kdasr claim-table --json` wrote (and a
`kdasr bench --system` JSON for the inference cost, the claim recipe's choices.json for what was
tried). Nothing here is typed by hand: every verdict comes from an interval in those files, by the
rule in RULE. Torch-free.

A comparison "A lowers WER against B" on one test set: **holds** when the interval of the relative
WER change A vs B lies below 0, **does not hold** when it lies above 0 (the opposite direction),
**not resolved** when it includes 0. A system without records: **not measured**, never an error."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import KdasrError
from ..io_utils import read_json
from .claim_table import _p
from .claim_tried import tried_lines
from .paper_table import _signed

HOLDS, NOT, OPEN, UNMEASURED = "holds", "does not hold", "not resolved", "not measured"
RULE = ("On one test set a comparison A vs B **holds** when the 95 % interval of the relative WER change lies "
        "below 0, **does not hold** when it lies above 0, and is **not resolved** when it includes 0. Over the test "
        "sets, a comparison holds when it holds on more than half of the sets that measured it and does not hold "
        "on none; it does not hold when it does not hold on more than half and holds on none; otherwise it is not "
        "resolved (contradictory when it holds on some sets and does not hold on others). A claim of several "
        "comparisons holds when all its measured comparisons hold, does not hold when any of them does not hold, "
        "and is otherwise not resolved; a comparison without records is not measured and left out (the claim "
        "says so). Test sets that share sentences are not independent: a majority of them is weaker evidence than "
        "it looks.")
SEEDED = re.compile(r"@s\d+$")


@dataclass(frozen=True)
class Roles:
    """The protocol's systems by the role they play in the paper's claims (defaults: claim-v1's names)."""

    baseline: str | None = None  # None: the claim table's baseline
    smoothing: str = "smoothing-control"
    lm: str = "lm-kd"
    utterance: str = "bert-utterance"
    context: str = "bert-context"
    best_kd: str | None = None  # None: choices.json's best-kd, else the one non-baseline STUDENT of STUDENT+METHOD


@dataclass
class Verdicts:
    markdown: str
    doc: dict


def load_table(path: Path) -> dict:
    """A claim-table JSON; KdasrError naming the file when it is not one."""
    doc = read_json(path, "not JSON")
    if not isinstance(doc, dict) or "kdasr_claim_table" not in doc:
        raise KdasrError(f"{path}: not a claim-table JSON (no 'kdasr_claim_table' key; `kdasr claim-table --json` "
                         "writes one)")
    ok = (isinstance(doc.get("sets"), list) and isinstance(doc.get("systems"), list)
          and isinstance(doc.get("comparisons"), dict)
          and all(isinstance(s, dict) and isinstance(s.get("sets"), dict) for s in doc["systems"])
          and all(isinstance(v, list) and all(isinstance(p, dict) for p in v) for v in doc["comparisons"].values()))
    if not ok:
        raise KdasrError(f"{path}: not a claim-table JSON (its 'sets', 'systems' or 'comparisons' are malformed)")
    return doc


def load_bench(path: Path | None) -> dict | None:
    """A `kdasr bench --system` JSON (None without a path); KdasrError naming the file when it is not one."""
    if path is None:
        return None
    doc = read_json(path, "not JSON")
    if not isinstance(doc, dict) or "kdasr_bench" not in doc:
        raise KdasrError(f"{path}: not a bench JSON (no 'kdasr_bench' key; `kdasr bench --system ...` writes one)")
    rows = doc.get("systems")
    if not isinstance(rows, list) or not all(isinstance(s, dict) and "name" in s for s in rows):
        raise KdasrError(f"{path}: not a bench JSON of systems side by side (its 'systems' are not named rows)")
    return doc


def load_choices(path: Path | None) -> dict | None:
    """The claim recipe's choices.json (None without a path); KdasrError naming the file when it is not a
    JSON object. Its sections are read defensively (claim_tried)."""
    if path is None:
        return None
    doc = read_json(path, "not JSON")
    if not isinstance(doc, dict):
        raise KdasrError(f"{path}: not a choices file (not a JSON object)")
    return doc


def measured(table: dict) -> set[str]:
    """Systems with a record on at least one set."""
    return {s["system"] for s in table["systems"] if any(v is not None for v in s["sets"].values())}


def set_verdict(p: dict | None) -> dict:
    """One set's verdict on "A lowers WER against B" from its claim-table comparison."""
    if p is None or p.get("low") is None or p.get("high") is None:
        return {"verdict": None, "why": "no interval (no record of this set, or WER B is 0)"}
    low, high = float(p["low"]), float(p["high"])
    verdict = HOLDS if high < 0 else NOT if low > 0 else OPEN
    return {"verdict": verdict, "change": p.get("change"), "low": low, "high": high, "p_a_better": p.get("p_a_better"),
            "seeds": p.get("seeds")}


def overall(verdicts: list[str | None]) -> tuple[str, str]:
    """A comparison's verdict over the sets (RULE) and the count it rests on."""
    got = [v for v in verdicts if v is not None]
    if not got:
        return UNMEASURED, "no set has an interval"
    h, n = got.count(HOLDS), got.count(NOT)
    count = f"holds on {h}, does not hold on {n}, not resolved on {got.count(OPEN)} of {len(got)} sets"
    if h > len(got) / 2 and n == 0:
        return HOLDS, count
    if n > len(got) / 2 and h == 0:
        return NOT, count
    return OPEN, count + (" (contradictory)" if h and n else "")


def combine(parts: list[dict]) -> tuple[str, str]:
    """A claim's verdict from its comparisons' (RULE), and what was not measured and why."""
    got = [p["overall"] for p in parts if p["overall"] != UNMEASURED]
    left = [p for p in parts if p["overall"] == UNMEASURED]
    if not got:
        return UNMEASURED, "; ".join(dict.fromkeys(p["why"] for p in left))
    verdict = HOLDS if all(v == HOLDS for v in got) else NOT if NOT in got else OPEN
    return verdict, "; ".join(f"{p['label']} not measured: {p['why']}" for p in left)


def compare(table: dict, a: str, b: str, label: str) -> dict:
    """"A lowers WER against B" on every set of the table, and over the sets."""
    have = measured(table)
    part = {"a": a, "b": b, "label": label}
    if missing := [x for x in (a, b) if x not in have]:
        return {**part, "overall": UNMEASURED, "why": f"no record of {' or '.join(missing)}", "sets": {}}
    pairs = {n: next((p for p in table["comparisons"].get(n, []) if (p.get("a"), p.get("b")) == (a, b)), None)
             for n in table["sets"]}
    sets = {n: set_verdict(p) for n, p in pairs.items()}
    verdict, why = overall([v["verdict"] for v in sets.values()])
    return {**part, "overall": verdict, "why": why, "sets": sets}


def _best_doc(choices: dict | None) -> dict:
    """choices.json's alternatives.best_kd section, {} where it lacks one."""
    alts = (choices or {}).get("alternatives")
    best = alts.get("best_kd") if isinstance(alts, dict) else None
    return best if isinstance(best, dict) else {}


def best_kd(table: dict, roles: Roles, choices: dict | None) -> tuple[str | None, str]:
    """The KD student the alternatives were run on, and where that name comes from."""
    if roles.best_kd:
        return roles.best_kd, "given with --best-kd"
    chosen = _best_doc(choices).get("chosen")
    if chosen:
        return str(chosen), "best-kd of the choices file, chosen on dev"
    students = {s["system"].split("+")[0] for s in table["systems"] if "+" in s["system"]} - {roles.baseline}
    if len(students) == 1:
        return students.pop(), "the one student besides the baseline that the alternatives ran on"
    return None, "no best-kd in a choices file and no single KD student among the alternatives"


def best_bert(table: dict, roles: Roles, choices: dict | None) -> tuple[str, str]:
    """Claim 3's BERT-KD variant: the lower mean dev WER of the choices file; else the only one measured;
    else the lower mean test WER over the sets (said to be chosen on the test numbers themselves)."""
    have = measured(table)
    variants = [v for v in (roles.utterance, roles.context) if v in have]
    dev = _best_doc(choices).get("mean_dev_wer")
    dev = dev if isinstance(dev, dict) else {}
    if len(variants) < 2:
        return (variants or [roles.utterance])[0], "the only BERT-KD variant measured" if variants else ""
    if all(isinstance(dev.get(v), (int, float)) for v in variants):
        v = min(variants, key=lambda x: (dev[x], variants.index(x)))
        return v, f"the BERT-KD variant with the lower mean dev WER ({dev[v]:.2f}; choices file)"
    rows = {s["system"]: s["sets"] for s in table["systems"]}
    common = [n for n in table["sets"] if all((rows[v].get(n) or {}).get("pooled_wer") is not None for v in variants)]
    if not common:
        return variants[0], "no set measured both variants"
    mean = {v: sum(rows[v][n]["pooled_wer"] for n in common) / len(common) for v in variants}
    v = min(variants, key=lambda x: (mean[x], variants.index(x)))
    return v, (f"the BERT-KD variant with the lower mean test WER over {len(common)} sets ({mean[v]:.2f}): chosen on "
               "the test numbers themselves, as no dev choice was given")


TOLERANCE = 0.10  # one bench run has no interval: a latency ratio within 10 % of 1 reads as no cost
COST_RULE = (f"one bench run, no interval: a batch-1 p50 latency ratio above {1 + TOLERANCE:.2f} counts as a "
             f"cost at inference, at most {1 + TOLERANCE:.2f} as none")


def _bench_rows(bench: dict) -> dict[str, dict]:
    """Bench rows by system name without its seed (`ce+fusion@s1` -> `ce+fusion`), the first kept."""
    rows: dict[str, dict] = {}
    for s in bench["systems"]:
        rows.setdefault(SEEDED.sub("", str(s["name"])), s)
    return rows


def _cost(rows: dict, a: str, b: str, expect_cost: bool) -> dict:
    """A's batch-1 p50 latency over B's; holds when it costs (expect_cost) or does not (KD)."""
    part = {"label": f"{a} vs {b}", "expect": "a cost" if expect_cost else "no cost"}
    if missing := [x for x in (a, b) if x not in rows]:
        return {**part, "overall": UNMEASURED, "why": f"the bench has no record of {' or '.join(missing)}"}
    lat = [(rows[x].get("batch1") or {}).get("latency_ms_p50") for x in (a, b)]
    if not all(isinstance(x, (int, float)) and x > 0 for x in lat):
        return {**part, "overall": UNMEASURED, "why": "no batch-1 latency in the bench"}
    rtfx = [(rows[x].get("batch1") or {}).get("rtfx") for x in (a, b)]
    ratio = lat[0] / lat[1]
    costs = ratio > 1 + TOLERANCE
    beams = "/".join(str((rows[x].get("decoding") or {}).get("beam", "?")) for x in (a, b))
    why = (f"p50 latency at batch 1 {lat[0]:.0f} vs {lat[1]:.0f} ms, ×{ratio:.2f}; RTFx "
           + " vs ".join("–" if r is None else f"{r:.1f}" for r in rtfx) + f"; beam {beams}")
    return {**part, "overall": HOLDS if costs == expect_cost else NOT, "why": why, "ratio": ratio,
            "latency_ms_p50": lat, "rtfx": rtfx}


def cost_claim(bench: dict | None, base: str, kd: str | None) -> dict:
    """Claim 5 from one `kdasr bench --system` run: the KD student's latency against the baseline's
    (about 1), every STUDENT+METHOD's against its student's (above 1)."""
    c = {"id": "5", "claim": "KD costs nothing at inference, while fusion and rescoring do", "parts": []}
    if bench is None:
        return {**c, "verdict": UNMEASURED, "note": "no bench JSON given (--bench)"}
    rows = _bench_rows(bench)
    c["note"] = COST_RULE + f"; {bench.get('utterances', '?')} utterances of `{bench.get('manifest', '?')}`"
    if kd is None:
        c["parts"].append({"label": f"KD student vs {base}", "expect": "no cost", "overall": UNMEASURED,
                           "why": "no best KD student"})
    else:
        c["parts"].append(_cost(rows, kd, base, expect_cost=False))
    for name in rows:
        student = name.split("+")[0]
        if "+" in name and student in (base, kd):
            c["parts"].append(_cost(rows, name, student, expect_cost=True))
    if c["parts"][0]["overall"] == UNMEASURED:  # KD's half of the claim: without it the claim is not measured
        return {**c, "verdict": UNMEASURED, "note": f"{c['note']}; the KD student's cost: {c['parts'][0]['why']}"}
    return c


def claims(table: dict, roles: Roles, choices: dict | None, bench: dict | None) -> list[dict]:
    base, kd_best, kd_from = roles.baseline, *best_kd(table, roles, choices)
    bert, bert_from = best_bert(table, roles, choices)
    out = [
        {"id": "1", "claim": "BERT-KD (utterance) lowers WER against the CE baseline",
         "parts": [compare(table, roles.utterance, base, f"{roles.utterance} vs {base}")]},
        {"id": "2", "claim": "Context BERT-KD lowers WER further than utterance BERT-KD",
         "parts": [compare(table, roles.context, roles.utterance, f"{roles.context} vs {roles.utterance}")]},
        {"id": "3", "claim": "BERT-KD beats LM-KD",
         "parts": [compare(table, bert, roles.lm, f"{bert} vs {roles.lm}")],
         "note": f"pair: {bert} vs {roles.lm}" + (f"; {bert}: {bert_from}" if bert_from else "")},
        {"id": "4", "claim": "The gain is BERT's knowledge, not label smoothing (our control; the paper has none)",
         "parts": [compare(table, v, roles.smoothing, f"{v} vs {roles.smoothing}")
                   for v in (roles.utterance, roles.context)]},
    ]
    out.append(cost_claim(bench, base, kd_best))
    alts = ("fusion", "rescore-lm", "rescore-bert")
    if kd_best is None:
        why = kd_from
        out += [{"id": "6", "claim": "KD beats the inference-time alternatives (shallow fusion, n-best rescoring)",
                 "parts": [], "verdict": UNMEASURED, "note": why},
                {"id": "7", "claim": "KD adds to fusion (KD + fusion beats CE + fusion)", "parts": [],
                 "verdict": UNMEASURED, "note": why}]
        return out
    out += [
        {"id": "6", "claim": "KD beats the inference-time alternatives (shallow fusion, n-best rescoring)",
         "parts": [compare(table, kd_best, f"{base}+{m}", f"{kd_best} vs {base}+{m}") for m in alts],
         "note": f"KD student: {kd_best} ({kd_from})"},
        {"id": "7", "claim": "KD adds to fusion (KD + fusion beats CE + fusion; a question of issue 28, not a "
                             "claim of the paper)",
         "parts": [compare(table, f"{kd_best}+fusion", f"{base}+fusion", f"{kd_best}+fusion vs {base}+fusion")],
         "note": f"KD student: {kd_best} ({kd_from})"},
    ]
    return out


def _cell(n: str, v: dict) -> str:
    if v["verdict"] is None:
        return f"{n}: no interval"
    return (f"{n} **{v['verdict']}** {_signed(v['change'])} % [{_signed(v['low'])}, {_signed(v['high'])}], "
            f"P(A < B) {_p(v['p_a_better'])}" if v.get("change") is not None else f"{n} **{v['verdict']}**")


def _claim_lines(c: dict) -> list[str]:
    head = f"- **Claim {c['id']}: {c['claim']}.** Overall: **{c['verdict']}**"
    extra = "; ".join(x for x in (c.get("note"), c.get("verdict_note")) if x)
    out = [head + (f" ({extra})." if extra else ".")]
    for p in c["parts"]:
        if "sets" not in p:  # a cost part (claim 5)
            out.append(f"  - {p['label']}, expected {p['expect']}: **{p['overall']}** ({p['why']})")
            continue
        line = f"  - {p['label']}: **{p['overall']}** ({p['why']})"
        if p["sets"]:
            line += ": " + "; ".join(_cell(n, v) for n, v in p["sets"].items())
        out.append(line)
    return out


def build_verdicts(table: dict, roles: Roles, bench: dict | None = None, choices: dict | None = None,
                   sources: dict | None = None, command: str = "") -> Verdicts:
    """The verdicts (Markdown and the same as JSON) from a loaded claim-table JSON and the optional
    bench and choices documents. KeyError/TypeError/ValueError from a malformed file propagate to the
    caller, which names the file."""
    roles = Roles(**{**roles.__dict__, "baseline": roles.baseline or str(table.get("baseline") or "ce")})
    found = claims(table, roles, choices, bench)
    for c in found:
        if "verdict" not in c:
            c["verdict"], c["verdict_note"] = combine(c["parts"])
    sources = sources or {}
    out = ["# Verdicts on the claims of Futami et al. 2020", "",
           ("Generated by `" + command + "` from" if command else "Generated from") + " the numbers in "
           + ", ".join(f"`{f}`" for f in sources.values() if f) + " (never typed by hand).", "",
           "## Which of the paper's claims hold on our data", "",
           f"Test sets: {', '.join(table['sets'])}. Each comparison reads A vs B: the relative WER change of A against "
           "B in % with its 95 % interval, and P(A < B), the share of draws in which A has the lower WER. Interval: "
           + str(table.get("method") or "the claim table's bootstrap") + ".", "", f"Rule: {RULE}", ""]
    for c in found:
        out += _claim_lines(c)
    out += ["", "## What was tried", "", *tried_lines(table, choices, bench, roles.baseline), ""]
    summary = {v: [c["id"] for c in found if c["verdict"] == v] for v in (HOLDS, NOT, OPEN, UNMEASURED)}
    out += ["In short: " + "; ".join(f"{v}: claim{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
                                     for v, ids in summary.items() if ids) + ".", ""]
    doc = {"kdasr_claim_verdicts": 1, "sources": sources, "command": command, "rule": RULE, "sets": table["sets"],
           "roles": roles.__dict__, "claims": found, "summary": summary,
           "tried": [x[2:] for x in tried_lines(table, choices, bench, roles.baseline) if x.startswith("- ")]}
    return Verdicts("\n".join(out) + "\n", doc)
