"""The claim recipe's decisions and texts as plain functions (kdasr/recipe/claim.py runs the stages):
the names of its runs, the choice of a grid point by dev WER, the choices file and the budget plan
(the wall times: stage_times.py). Unit-testable without running anything."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..io_utils import atomic_write_text
from ..spec.protocol import ENTROPY_MATCHED, Protocol, System
from .runner import RecipeError

CHOICES = "choices.json"
DEV_SET = "dev-all"  # the dev manifests pooled into one (EXP/dev/dev-all.jsonl): every choice is made on it
METRIC = ("dev WER % of greedy attention decoding (`kdasr eval`, the export's default decoding) of the run's last "
          "checkpoint after the sweep's steps, on EXP/dev/dev-all.jsonl (the protocol's dev manifests interleaved; "
          "its first setup.dev_limit utterances when set); a tie goes to the point listed first in the protocol's "
          "grid")


def label(system: str, seed: int) -> str:
    """A student's name in the records and the claim table (`kdasr claim-table` reads the seed from it)."""
    return f"{system}@s{seed}"


def soft_name(mode: str, t: float, k: int) -> str:
    return f"{mode}-t{t:g}-k{k}"


def sweep_name(kd: str, t: float, k: int, lam: float, eps: float, seed: int) -> str:
    """A dev-sweep run, named by everything that sets it but its steps (the protocol's sweep_steps;
    a run of fewer is trained on): two stages asking for the same run share it (the T, K sweep's
    point at the chosen T, K is the λ sweep's point at the middle λ)."""
    return f"{soft_name(kd, t, k)}-w{lam:g}-ls{eps:g}-s{seed}"


def soft_source(p: Protocol, t: float, k: int) -> tuple[float, int]:
    """The (T, K) whose teacher pass serves (t, k): the protocol's first temperature at its largest K
    (`kdasr teacher soft-derive` gives every other point of the T × K grid from it, without the teacher);
    a point off the grid (k above the grid's K) is its own pass."""
    kmax = max(p.top_ks)
    return (t, k) if k > kmax else (p.temperatures[0], kmax)


def soft_jobs(p: Protocol, choices: dict) -> list[tuple[str, float, int]]:
    """The soft labels (mode, T, K) the soft stage makes: before T and K are chosen, the sweep's mode at
    every T × K and every other KD mode's teacher pass (its source serves whichever point is chosen, so the
    passes run beside the sweep's own, not after the T, K sweep); once chosen, every KD mode at them."""
    jobs: list[tuple[str, float, int]] = []
    if (sweeper := tk_system(p)) is not None:
        jobs += [(sweeper.kd, t, k) for t in p.temperatures for k in p.top_ks]
        jobs += [(s.kd, *soft_source(p, p.temperatures[0], max(p.top_ks))) for s in p.systems if s.kd != "none"]
    if "tk" in choices:
        t, k = chosen_tk(choices)
        jobs += [(s.kd, t, k) for s in p.systems if s.kd != "none"]
    return list(dict.fromkeys(jobs))


def tk_system(p: Protocol) -> System | None:
    """The system whose sweep chooses T and K: BERT utterance (kd = bert), else the first KD system."""
    kd = [s for s in p.systems if s.kd != "none"]
    return next((s for s in kd if s.kd == "bert"), kd[0] if kd else None)


def middle(grid: tuple[float, ...]) -> float:
    return grid[len(grid) // 2]


def choose(points: list[tuple[object, float]]) -> object:
    """The key with the lowest WER; a tie goes to the one listed first."""
    return min(enumerate(points), key=lambda ip: (ip[1][1], ip[0]))[1][0]


def grid_args(decoding) -> list[str]:
    """The protocol's decoding grid as `kdasr tune --grid NAME=V1,V2` flags."""
    def text(v) -> str:
        return format(v, "g") if isinstance(v, float) else str(v)

    return [x for key, values in decoding.items() for x in ("--grid", f"{key}={','.join(map(text, values))}")]


def dev_wer(record: Path) -> float:
    try:
        doc = json.loads(record.read_text())
        if doc["set"] != DEV_SET:  # choices are made on dev only: never read another set's record here
            raise RecipeError(f"{record}: a record of {doc['set']!r}, not of the dev set {DEV_SET}")
        return float(doc["wer"])
    except (OSError, ValueError, KeyError) as e:
        raise RecipeError(f"{record}: no dev WER ({e})") from None


def same_lambda(kd: list[System], wer: dict[str, dict[float, float]]) -> list[dict]:
    """Issue 28: BERT utterance vs context also at the same λ, not only each at its own: the dev WER of
    the first system of each mode at every λ both grids hold."""
    utt = next((s for s in kd if s.kd == "bert"), None)
    ctx = next((s for s in kd if s.kd == "bert-context"), None)
    if not (utt and ctx):
        return []
    return [{"kd_weight": lam, "dev_wer": {utt.name: wer[utt.name][lam], ctx.name: wer[ctx.name][lam]}}
            for lam in utt.kd_weight if lam in ctx.kd_weight]


def read_choices(exp: Path) -> dict:
    path = exp / CHOICES
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise RecipeError(f"{path}: not JSON ({e})") from None


def write_choices(exp: Path, p: Protocol, section: str, value: object) -> None:
    """One section of EXP/choices.json, the rest kept; with the protocol's fingerprint and the metric."""
    old = read_choices(exp)
    doc = dict(old)
    doc.update({"protocol": p.name, "fingerprint": p.fingerprint, "evidence": "dev only", "dev_set": DEV_SET,
                "dev_manifests": list(p.dev_manifests), "metric": METRIC, section: value})
    if json.loads(json.dumps(doc)) == old:
        return  # a rerun leaves the file (and its time) as it was
    atomic_write_text(exp / CHOICES, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def need(choices: dict, section: str, stage: str, key: str | None = None) -> object:
    value = choices.get(section)
    if key is not None and isinstance(value, dict):
        value = value.get(key)
    if value is None:
        raise RecipeError(f"{CHOICES} has no {section}{f' for {key}' if key else ''}: run the {stage} stage first")
    return value


def chosen_tk(choices: dict) -> tuple[float, int]:
    tk = need(choices, "tk", "tk")
    return float(tk["chosen"]["temperature"]), int(tk["chosen"]["top_k"])


def epsilon(system: System, choices: dict) -> float:
    """A system's label smoothing: its number, or the entropy-matched ε the smoothing stage found."""
    if system.label_smoothing != ENTROPY_MATCHED:
        return float(system.label_smoothing)
    return float(need(choices, "label_smoothing", "smoothing", system.name)["epsilon"])


def last_row(train_log: Path) -> dict | None:
    try:
        with open(train_log, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    return rows[-1] if rows else None


def budget_plan(p: Protocol, exp: Path, students: list[Path], sweeps: list[Path]) -> list[str]:
    """The plan (runs × steps) and what the finished runs took (their train_log.csv's elapsed time)."""
    n = len(p.systems) * len(p.seeds)
    sweep_steps = p.setup.sweep_steps if p.setup else 0
    lines = [f"- Students: {len(p.systems)} systems × {len(p.seeds)} seeds = {n} runs × {p.steps} steps = "
             f"{n * p.steps} optimiser steps ({p.threads} thread{'s' if p.threads != 1 else ''} each)",
             f"- Dev sweeps (first seed): {len(sweeps)} runs × {sweep_steps} steps = {len(sweeps) * sweep_steps} "
             "optimiser steps"]
    for what, runs in (("student", students), ("sweep", sweeps)):
        took = [float(r["elapsed_s"]) for d in runs if (r := last_row(d / "train_log.csv")) and r.get("elapsed_s")]
        if took:
            lines.append(f"- Measured: {len(took)} {what} runs took {sum(took) / 60:.1f} training minutes in all "
                         f"({sum(took) / len(took) / 60:.1f} per run; train_log.csv elapsed time)")
    return lines + teacher_pass_lines(exp)


def teacher_pass_lines(exp: Path) -> list[str]:
    """What each teacher pass over the train set cost (its summary.json; the derived T, K points take
    seconds and are left out). A pass that resumed from shards of an older version counts its runs
    since then only, and says so."""
    passes = []
    for summary in sorted((exp / "soft").glob("*/summary.json")):
        try:
            doc = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        if "derived_from" in doc or "seconds" not in doc:
            continue
        minutes = float(doc.get("seconds_all_runs", doc["seconds"])) / 60
        note = f", {doc['runs']} run(s)" if "runs" in doc else ", its last run only"
        passes.append(f"{summary.parent.name} {minutes:.1f} min ({doc.get('utterances', '?')} utterances{note})")
    if not passes:
        return []
    return [f"- Teacher passes over the train set (one thread each; `kdasr teacher soft-labels`, summary.json): "
            f"{'; '.join(passes)}"]


def choices_lines(p: Protocol, choices: dict) -> list[str]:
    """The dev choices as Markdown lines for the table's protocol block."""
    out = [f"Choices made on dev only ({DEV_SET}: {', '.join(p.dev_manifests)}; {METRIC}):", ""]
    if tk := choices.get("tk"):
        pts = ", ".join(f"T {q['temperature']:g} K {q['top_k']}: {q['dev_wer']:.2f}" for q in tk["points"])
        out.append(f"- T and K: T = {tk['chosen']['temperature']:g}, K = {tk['chosen']['top_k']} (swept with "
                   f"{tk['system']} at λ {tk['kd_weight']:g}, seed {tk['seed']}, {tk['steps']} steps: {pts})")
    for name, lam in (choices.get("lambda") or {}).items():
        pts = ", ".join(f"{q['kd_weight']:g}: {q['dev_wer']:.2f}" for q in lam["points"])
        out.append(f"- λ of {name}: {lam['chosen']:g} (dev WER per λ: {pts})")
    for row in choices.get("same_lambda") or []:
        out.append(f"- Same λ {row['kd_weight']:g}, dev WER: " + ", ".join(
            f"{k} {v:.2f}" for k, v in row["dev_wer"].items()))
    for name, ls in (choices.get("label_smoothing") or {}).items():
        out.append(f"- Label smoothing of {name}: ε = {ls['epsilon']:.4f}, entropy-matched to {ls['soft_labels']} "
                   f"(σ = {p.kd_smoothing:g})")
    if best := (choices.get("alternatives") or {}).get("best_kd"):
        pts = ", ".join(f"{k} {v:.2f}" for k, v in best["mean_dev_wer"].items())
        out.append(f"- Best KD student (the alternatives' best-kd): {best['chosen']} (mean over seeds of the dev WER "
                   f"word-weighted over the dev sets, each student with its tuned decoding: {pts})")
    return out + [""]


def verdict_roles(p: Protocol) -> list[str]:
    """`kdasr claim-verdicts` flags naming the protocol's systems by their role in the paper's claims: the
    baseline (the first system), the entropy-matched smoothing control, LM-KD, BERT utterance and context KD
    (the first of each kind; a role the protocol lacks is left to the command's default, which then has no
    record and says so)."""
    kinds = {"--smoothing": lambda s: s.kd == "none" and s.label_smoothing == ENTROPY_MATCHED,
             "--lm-kd": lambda s: s.kd == "lm", "--utterance": lambda s: s.kd == "bert",
             "--context": lambda s: s.kd == "bert-context"}
    out = ["--baseline", p.systems[0].name]
    for flag, kind in kinds.items():
        if found := next((s for s in p.systems if kind(s)), None):
            out += [flag, found.name]
    return out


# The inference-time alternatives (the protocol's [alternatives]; kdasr/recipe/claim_alternatives.py)

def alt_name(student: str, method: str) -> str:
    """An alternative's system name in the records and the claim table: `ce+fusion`."""
    return f"{student}+{method}"


def pooled_wer(records: list[dict]) -> float:
    """WER % word-weighted over records (one seed's dev sets): their word errors over their words."""
    words = sum(int(r["words"]) for r in records)
    return 100.0 * sum(int(r["word_errors"]) for r in records) / words if words else float("nan")


def best_kd(kd: list[str], wer: dict[str, dict[int, float]]) -> dict:
    """The KD system with the lowest mean dev WER over its seeds (WER: system -> seed -> dev WER, each
    word-weighted over the dev sets); a tie goes to the system listed first. The choice and its evidence."""
    if not kd:
        raise RecipeError("best-kd: the protocol has no KD system")
    mean = {s: sum(wer[s].values()) / len(wer[s]) for s in kd}
    chosen = min(kd, key=lambda s: (mean[s], kd.index(s)))
    return {"chosen": chosen, "mean_dev_wer": mean,
            "dev_wer": {s: {str(seed): w for seed, w in wer[s].items()} for s in kd}}


def alt_students(on: tuple[str, ...], choices: dict) -> list[str]:
    """The protocol's `on` with best-kd replaced by the system the alternatives stage chose (once)."""
    from ..spec.alternatives import BEST_KD

    out = [str(need(choices, "alternatives", "alternatives", "best_kd")["chosen"]) if x == BEST_KD else x
           for x in on]
    return list(dict.fromkeys(out))
