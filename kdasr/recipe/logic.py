"""The decisions the recipe makes in Python (eval/recipe.sh had them as inline Python and bash
functions): teacher budgets, the lambda of each KD mode, the baseline's search for fusion and rescoring,
the student to ship, its export flags, the table's protocol text and wall times. Plain functions of
small files, so each is unit-tested without running anything."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from .runner import RecipeError


def _export_decoding() -> tuple[tuple[str, str], ...]:
    """(field, flag) of each decoding option `kdasr export` takes, from DecodeOptions' own declarations
    (what a search is; batch size and segment length are resources, not recorded)."""
    from kdasr.spec.decode_options import EXPORT, option_fields

    return tuple((f.name, "--" + f.flag.replace("_", "-")) for f in option_fields(on=EXPORT))


def budget_flags(steps: str, minutes: str) -> list[str]:
    """A teacher's budget: --steps when STEPS is set, else --minutes."""
    return ["--steps", steps] if steps else ["--minutes", minutes]


def fixed_lambda(kd_lambda: str, mode: str) -> str:
    """The lambda KD_LAMBDA ("lm=0.1 bert=0.1 ...") gives a KD mode."""
    for pair in kd_lambda.split():
        name, _, value = pair.partition("=")
        if name == mode:
            return value
    raise RecipeError(f"KD_LAMBDA ({kd_lambda}) has no lambda for KD mode {mode}")


def student_run(mode: str, lam: str) -> str:
    return f"kd-{mode}-{lam}"


def split_run(run: str) -> tuple[str, str]:
    """'kd-bert-context-0.3' -> ('bert-context', '0.3')."""
    mode, _, lam = run.removeprefix("kd-").rpartition("-")
    return mode, lam


def chosen_lambda(curves_csv: Path, mode: str, epoch: int, lambdas: list[str]) -> str:
    """The lambda whose kd-MODE-LAMBDA run has the lowest dev greedy-attention WER at `epoch` in the
    learning curves; a tie goes to the lambda listed first."""
    with open(curves_csv, newline="") as f:
        wer = {r["run"]: float(r["dev_wer_attention"]) for r in csv.DictReader(f) if int(r["epoch"]) == epoch}
    scored = [(wer[student_run(mode, lam)], i, lam) for i, lam in enumerate(lambdas) if student_run(mode, lam) in wer]
    if len(scored) != len(lambdas):
        raise RecipeError(f"{curves_csv}: no dev WER at epoch {epoch} for every kd-{mode}-* run of LAMBDAS "
                          f"({' '.join(lambdas)})")
    return min(scored)[2]


def quality_passed(report_json: Path) -> bool:
    """Whether `kdasr teacher quality` found every teacher better than the count baselines."""
    return bool(json.loads(report_json.read_text())["passed"])


def _decoding(tune_json: Path) -> dict:
    try:
        return json.loads(tune_json.read_text())["decoding"]
    except (OSError, ValueError, KeyError) as e:
        raise RecipeError(f"{tune_json}: no tuned decoding ({e})") from None


def baseline_search(tune_json: Path, nbest: int) -> list[str]:
    """A student's dev-chosen CTC weight at its dev-chosen beam, raised to NBEST where smaller: what fusion
    and rescoring search with (the paper recipe's baseline; the claim recipe's chosen students)."""
    d = _decoding(tune_json)
    return ["--set", f"beam={max(d['beam'], nbest)}", "--set", f"ctc_weight={d['ctc_weight']!r}"]


def scorer_file(lm_dir: Path, method: str) -> Path:
    """The exported teacher (kdasr export-lm) an alternative needs: fusion, rescore-lm -> lm.json; rescore-bert
    -> bert.json."""
    return lm_dir / ("bert.json" if method == "rescore-bert" else "lm.json")


def alternative_args(method: str, lm_dir: Path, search: list[str], nbest: int, lm_weights: str, length_bonus: str,
                     rescore_weights: str) -> list[str]:
    """`kdasr tune` flags of fusion | rescore-lm | rescore-bert searching with SEARCH (baseline_search): fusion
    tunes lm_weight x length_bonus; rescoring tunes rescore_weight on an n-best list of NBEST. Grids as
    'V1,V2'. The first two are always '--lm', LM_DIR."""
    if method == "fusion":
        return ["--lm", str(lm_dir), *search, "--grid", f"lm_weight={lm_weights}",
                "--grid", f"length_bonus={length_bonus}"]
    if method not in ("rescore-lm", "rescore-bert"):
        raise RecipeError(f"unknown alternative {method!r} (fusion, rescore-lm, rescore-bert)")
    scorer = method.removeprefix("rescore-")
    return ["--lm", str(lm_dir), *search, "--set", f"nbest={nbest}", "--set", f"rescore={scorer}",
            "--grid", f"rescore_weight={rescore_weights}"]


def decoding_flags(tune_json: Path) -> list[str]:
    """A tuned decoding as `kdasr export` flags (stored in model.json as the recommendation)."""
    d = _decoding(tune_json)
    return [x for field, flag in _export_decoding() if field in d for x in (flag, str(d[field]))]


def best_student(results: Path, students: list[str]) -> str:
    """The student with the lowest dev WER (fusion and rescoring are not students: they need an LM at run
    time); a tie goes to the one listed first."""
    missing = [s for s in students if not (results / s / "dev.json").is_file()]
    if missing:
        raise RecipeError(f"{results}: no dev result for {', '.join(missing)}: run the decode stage first")
    wer = {s: json.loads((results / s / "dev.json").read_text())["wer"] for s in students}
    return min(students, key=lambda s: (wer[s], students.index(s)))


def paper_args(students: list[str]) -> list[str]:
    """`kdasr paper-table --paper RUN=MODE` for the students the paper reports on (its BERT rows)."""
    out = []
    for s in students:
        if s.startswith("kd-bert-context-"):
            out += ["--paper", f"{s}=bert-context"]
        elif s.startswith("kd-bert-") and s[len("kd-bert-"):][:1].isdigit():
            out += ["--paper", f"{s}=bert-utterance"]
    return out


def table_systems(exp: Path, students: list[str], rescorers: list[str]) -> list[tuple[str, Path, Path]]:
    """(name, model dir, tuned options JSON) of every row of the table: the students, fusion, rescoring."""
    rows = [(s, exp / "models" / s, exp / "tune" / f"{s}.json") for s in students]
    rows.append(("baseline+fusion", exp / "models" / "baseline", exp / "tune" / "fusion.json"))
    rows += [(f"baseline+rescore-{r}", exp / "models" / "baseline", exp / "tune" / f"rescore-{r}.json")
             for r in rescorers]
    return rows


def set_fingerprint(manifest: Path) -> str:
    """sha1 over a manifest and the bytes of every audio file it lists (whisper's kept records are
    adopted only for the same set)."""
    from kdasr.data.manifest import read_manifest

    h = hashlib.sha1(manifest.read_bytes())
    for utt in read_manifest(manifest):
        h.update(Path(utt.audio).read_bytes())
    return h.hexdigest()


def wall_times(times: Path, build_info: Path, stages: list[str], cores: int | None = None,
               cpu: str | None = None) -> str:
    """' Wall time in minutes on N cores of CPU: stage M, ...; total T.' from the stages' last working
    runs (EXP/times/STAGE, seconds) and the corpus synthesis (build_info.json); '' when none is known."""
    minutes = {s: int((times / s).read_text()) / 60 for s in stages if (times / s).is_file()}
    if build_info.is_file() and "synthesis_seconds" in (built := json.loads(build_info.read_text())):
        minutes["corpus"] = built["synthesis_seconds"] / 60  # the corpus stage only checks a built corpus
    if not minutes:
        return ""
    if cpu is None:
        from kdasr.machine import cpu_model

        cpu = cpu_model()
    parts = ", ".join(f"{s} {minutes[s]:.0f}" for s in stages if s in minutes)
    cores = os.cpu_count() if cores is None else cores
    return f" Wall time in minutes on {cores} cores of {cpu}: {parts}; total {sum(minutes.values()):.0f}."


def protocol_text(s, wall: str) -> str:
    """The table's protocol line: how the students started and trained, how lambda was chosen, where
    decoding was tuned, the students' precision, a free note and the wall times. `s`: Settings."""
    start_from = f"{s.warm_start}'s weights" if s.warm_start else "random weights (seed 0)"
    if s.warm == 0:
        start = (f"Every student (the CE baseline and the KD students alike) starts from {start_from} with one seed "
                 f"and data order and trains to epoch {s.epochs}: only the loss differs.")
    else:
        start = (f"Every student starts from {start_from} with one seed and data order. The baseline (CE) trained "
                 f"to epoch {s.epochs}; the KD students branched from its epoch-{s.warm} checkpoint (weights, Adam "
                 f"state, schedule, data order: only the loss differs) and trained to epoch {s.epochs} too.")
    if s.sweep == 0:
        why = f" ({s.kd_lambda_why})" if s.kd_lambda_why else ""
        lambdas = f"Lambda fixed per mode beforehand, not tuned in this run: {s.kd_lambda}{why}."
    else:
        lambdas = (f"Lambda chosen per mode among {' '.join(s.lambdas)} on the first {s.dev_limit} dev utterances "
                   f"after {s.sweep} branch epochs.")
    precision = "fp32" if s.student_amp == "none" else f"{s.student_amp} autocast"
    note = f" {s.protocol_note}" if s.protocol_note else ""
    return (f"{start} {lambdas} Every system's decoding tuned on the first {s.dev_limit} dev utterances only "
            f"(eval/recipe.sh). Students' forward pass: {precision}.{note}{wall}")
