"""The claim recipe's stages up to trained students (kdasr/recipe/claim.py lists them all): soft labels,
the dev sweeps of T, K and λ, the entropy-matched smoothing, the students. Each command is skipped when
its output is complete: a finished training run leaves OUT/done.json (steps and command) beside its
last.pt, so a killed run resumes from last.pt and a finished one is not trained a step further."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io_utils import atomic_write_text
from ..spec.protocol import ENTROPY_MATCHED, System
from . import claim_logic as logic
from .runner import RecipeError, fresh, log, write_if_changed

EPOCHS = 1_000_000  # `--max-steps` is the budget: the config's epoch count must never stop a run first
DONE = "done.json"


def _log_name(c, out: Path) -> str:
    return str(out.relative_to(c.exp)).removesuffix(".json").replace(os.sep, "-").replace("@", "-")


def soft_one(c, mode: str, t: float, k: int) -> Path:
    """Soft labels of the train set for one KD mode at temperature T and top K (resumable command;
    summary.json is written last). Thread-safe: jobs that need the same labels (a teacher pass in the
    background, the sweeps and students that read it) make them once, the others waiting."""
    out = c.soft_dir(mode, t, k)
    with c.r.output_lock(out):
        return _make_soft(c, mode, t, k, out)


def soft_ready(c, mode: str, t: float, k: int) -> bool:
    """No teacher pass to wait for: no KD, or the labels or the pass they derive from are complete."""
    return mode == "none" or any((c.soft_dir(mode, *tk_) / "summary.json").is_file()
                                 for tk_ in ((t, k), logic.soft_source(c.p, t, k)))


def _make_soft(c, mode: str, t: float, k: int, out: Path) -> Path:
    if (out / "summary.json").is_file():
        return out
    if (source := logic.soft_source(c.p, t, k)) != (t, k):  # one teacher pass serves the T x K grid
        src = soft_one(c, mode, *source)
        c.r.run(c.kdasr("teacher", "soft-derive", src, "--temperature", t, "--top-k", k, "--out", out),
                f"soft-{out.name}", what=f"soft labels {out.name}",
                announce=f"soft labels {out.name} derived from {src.name} (log {c.r.logs / ('soft-' + out.name)}.log)")
        return out
    u = c.u
    teacher = {"lm": u.lm_teacher, "count": f"count:{u.teacher_text}"}.get(mode, u.bert_teacher)
    c.r.run(c.kdasr("teacher", "soft-labels", u.train, "--tokenizer", u.tokenizer, "--teacher", teacher,
                    "--mode", "context" if mode == "bert-context" else "utterance", "--top-k", k,
                    "--temperature", t, "--threads", 1, "--out", out), f"soft-{out.name}",
            what=f"soft labels {out.name}",
            announce=f"soft labels {out.name} (log {c.r.logs / ('soft-' + out.name)}.log)")
    return out


def ensure_soft(c, jobs: list[tuple[str, float, int]]) -> None:
    """These soft labels made (JOBS at a time) before jobs that share them start side by side: the
    teacher passes first (each mode's source, logic.soft_source), then what is derived from them."""
    jobs = list(dict.fromkeys(jobs))
    sources = list(dict.fromkeys((m, *logic.soft_source(c.p, t, k)) for m, t, k in jobs))
    c.r.parallel(lambda j: soft_one(c, *j), sources, "soft")
    c.r.parallel(lambda j: soft_one(c, *j), jobs, "soft")


def soft(c) -> None:
    """What the T, K sweep needs now: its mode at every T × K (and, once chosen, at the chosen point). Every
    other KD mode's teacher pass (and its chosen point) in the background (Runner.background): the passes
    serve whichever point the sweep chooses, so they run beside the sweeps, on the job slots the sweeps
    leave, and a stage that needs one waits for it (soft_one)."""
    jobs, sweeper = logic.soft_jobs(c.p, c.choices()), logic.tk_system(c.p)
    now = [j for j in jobs if sweeper is not None and j[0] == sweeper.kd]
    ensure_soft(c, now)
    for job in jobs:
        if job not in now:
            c.r.background(lambda j: soft_one(c, *j), job)


def train(c, out: Path, steps: int, seed: int, system: System, eps: float, soft_dir: Path | None = None,
          lam: float | None = None, threads: int = 1) -> None:
    """A student trained STEPS optimiser steps into OUT: skipped when OUT/done.json says so, resumed
    from OUT/last.pt after a kill."""
    done = out / DONE
    if done.is_file():
        had = json.loads(done.read_text())["steps"]
        if had == steps:
            return
        if had > steps:
            raise RecipeError(f"{out} was trained {had} steps, the protocol now asks {steps}: remove it to retrain")
        done.unlink()
    u = c.u
    argv = c.kdasr("train", "--train", u.train, "--dev", u.dev, "--config", u.config, "--tokenizer", u.tokenizer,
                   "--feature-cache", c.feature_cache(), "--out", out, "--threads", threads, "--max-steps", steps,
                   "--epochs", EPOCHS, "--seed", seed, "--label-smoothing", f"{eps:g}")
    if system.kd != "none":
        argv += ["--kd", system.kd, "--soft-labels", soft_dir, "--kd-weight", f"{lam:g}",
                 "--kd-smoothing", f"{c.p.kd_smoothing:g}"]
    name = _log_name(c, out)
    c.r.run(argv, name, what=f"training {out}",
            announce=f"train {out.relative_to(c.exp)}: {steps} steps (log {c.r.logs / name}.log)")
    atomic_write_text(done, json.dumps({"steps": steps, "argv": argv[len(c.kdasr_cmd):]}, default=str) + "\n")


def export_run(c, run: Path, model: Path) -> None:
    """RUN/last.pt exported into MODEL (skipped when MODEL/model.json is newer)."""
    if fresh(model / "model.json", run / "last.pt"):
        return
    c.r.run_into(model, c.kdasr("export", run / "last.pt"), f"export-{_log_name(c, model)}",
                 what=f"export of {model}")


def eval_run(c, model: Path, manifest: Path, record: Path, system: str, options: Path | None = None,
             extra: tuple = (), inputs: tuple = ()) -> None:
    """`kdasr eval` of MODEL on MANIFEST into RECORD (skipped when newer than the model, options, INPUTS)."""
    if fresh(record, model / "model.json", *([options] if options else []), *inputs):
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    c.r.run(c.kdasr("eval", "--model", model, "--manifest", manifest, "--threads", 1, "--system", system,
                    "--json", record, *(["--options", options] if options else []), *extra),
            f"eval-{_log_name(c, record)}", what=f"kdasr eval ({system}, {manifest})", append=False,
            announce=f"eval {system} on {manifest.stem}")


def write_dev_all(c) -> Path:
    """The protocol's dev manifests pooled into EXP/dev/dev-all.jsonl, interleaved (so that
    setup.dev_limit takes from each alike; audio paths made absolute; an id met twice prefixed with its
    set): every dev choice is made on it."""
    from itertools import chain, zip_longest

    from ..data.manifest import read_manifest

    sets = [[(Path(path).stem, utt) for utt in read_manifest(path)] for path in c.p.dev_manifests]
    lines, seen = [], set()
    for stem, utt in (x for x in chain.from_iterable(zip_longest(*sets)) if x is not None):
        row = {"id": utt.id, "audio": utt.audio, "text": utt.text, "duration": utt.duration,
               "speaker": utt.speaker, "doc": utt.doc, "pos": utt.pos, "start": utt.start, **utt.extra}
        if row["id"] in seen:
            row["id"] = f"{stem}/{utt.id}"
        seen.add(row["id"])
        lines.append(json.dumps(row, ensure_ascii=False))
    out = c.dev_all()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_if_changed(out, "\n".join(lines))
    return out


def dev_limit(c) -> list:
    return ["--limit", c.u.dev_limit] if c.u.dev_limit else []


def sweep_point(c, system: System, t: float, k: int, lam: float) -> dict:
    """One dev-sweep run (first seed, sweep_steps) trained, exported and scored on the pooled dev set."""
    eps = logic.epsilon(system, c.choices())
    soft_dir = soft_one(c, system.kd, t, k)
    run = c.exp / "sweep" / logic.sweep_name(system.kd, t, k, lam, eps, c.p.seeds[0])
    train(c, run, c.u.sweep_steps, c.p.seeds[0], system, eps, soft_dir, lam)
    export_run(c, run, run / "model")
    write_if_changed(run / "dev.limit", str(c.u.dev_limit))  # a changed dev_limit scores again
    eval_run(c, run / "model", c.dev_all(), run / "dev.json", run.name, extra=tuple(dev_limit(c)),
             inputs=(c.dev_all(), run / "dev.limit"))
    return {"temperature": t, "top_k": k, "kd_weight": lam, "label_smoothing": eps,
            "dev_wer": logic.dev_wer(run / "dev.json"), "run": str(run), "record": str(run / "dev.json")}


def tk(c) -> None:
    """T and K chosen on dev: the first seed, the BERT-utterance system at the middle λ of its grid."""
    p, system = c.p, logic.tk_system(c.p)
    if system is None:
        log("no KD system: no T and K to choose")
        return
    if system.label_smoothing == ENTROPY_MATCHED:
        raise RecipeError(f"system {system.name}: the T, K sweep needs a numeric label_smoothing (ε is matched to "
                          "the soft labels it chooses)")
    write_dev_all(c)
    lam = logic.middle(system.kd_weight)
    grid = [(t, k) for t in p.temperatures for k in p.top_ks]
    ensure_soft(c, [(system.kd, t, k) for t, k in grid])
    c.r.parallel(lambda tk_: sweep_point(c, system, *tk_, lam), grid, "tk")
    points = [sweep_point(c, system, t, k, lam) for t, k in grid]  # all done: reads the records
    best = logic.choose([((q["temperature"], q["top_k"]), q["dev_wer"]) for q in points])
    logic.write_choices(c.exp, p, "tk", {
        "system": system.name, "kd": system.kd, "seed": p.seeds[0], "steps": c.u.sweep_steps, "kd_weight": lam,
        "points": points, "chosen": {"temperature": best[0], "top_k": best[1]}})
    log(f"T and K chosen on dev: T = {best[0]:g}, K = {best[1]} ({logic.CHOICES})")


def lambdas(c) -> None:
    """λ chosen on dev per KD system at the chosen T, K; BERT utterance and context at the same λ."""
    p = c.p
    t, k = logic.chosen_tk(c.choices())
    write_dev_all(c)
    kd = [s for s in p.systems if s.kd != "none"]
    ensure_soft(c, [(s.kd, t, k) for s in kd if soft_ready(c, s.kd, t, k)])
    choices = c.choices()
    jobs = {logic.sweep_name(s.kd, t, k, lam, logic.epsilon(s, choices), p.seeds[0]): (s, lam)
            for s in kd for lam in s.kd_weight}
    # the systems whose teacher pass is still running (in the background) last: the others use the slots first
    todo = sorted(jobs.values(), key=lambda j: not soft_ready(c, j[0].kd, t, k))
    c.r.parallel(lambda j: sweep_point(c, j[0], t, k, j[1]), todo, "lambda")
    chosen, wer = {}, {}
    for s in kd:
        points = [sweep_point(c, s, t, k, lam) for lam in s.kd_weight]
        wer[s.name] = {q["kd_weight"]: q["dev_wer"] for q in points}
        chosen[s.name] = {"kd": s.kd, "points": points,
                          "chosen": logic.choose([(q["kd_weight"], q["dev_wer"]) for q in points])}
        log(f"lambda of {s.name} chosen on dev: {chosen[s.name]['chosen']:g}")
    logic.write_choices(c.exp, p, "lambda", chosen)
    logic.write_choices(c.exp, p, "same_lambda", logic.same_lambda(kd, wer))


def smoothing(c) -> None:
    """ε of every entropy-matched system: the label smoothing whose target has the mean entropy of the
    chosen soft labels (the T, K sweep's mode at the chosen T, K, with σ = kd_smoothing)."""
    p = c.p
    matched = [s for s in p.systems if s.label_smoothing == ENTROPY_MATCHED]
    if not matched:
        return
    system = logic.tk_system(p)
    if system is None:
        raise RecipeError("entropy-matched label smoothing needs a KD system whose soft labels it matches")
    t, k = logic.chosen_tk(c.choices())
    folder = soft_one(c, system.kd, t, k)
    stats = folder.with_name(folder.name + ".stats.json")
    if not fresh(stats, folder / "summary.json"):
        c.r.run(c.kdasr("teacher", "soft-stats", folder, "--kd-smoothing", f"{p.kd_smoothing:g}", "--json", stats),
                f"soft-stats-{folder.name}", what="kdasr teacher soft-stats", append=False)
    eps = float(json.loads(stats.read_text())["matched_label_smoothing"])
    logic.write_choices(c.exp, p, "label_smoothing", {
        s.name: {"epsilon": eps, "soft_labels": folder.name, "stats": str(stats)} for s in matched})
    log(f"entropy-matched label smoothing: ε = {eps:.4f} ({folder.name}, σ = {p.kd_smoothing:g})")


def student(c, name: str, seed: int) -> None:
    p, choices = c.p, c.choices()
    s = p.system(name)
    eps = logic.epsilon(s, choices)
    soft_dir = lam = None
    if s.kd != "none":
        soft_dir = soft_one(c, s.kd, *logic.chosen_tk(choices))
        lam = float(logic.need(choices, "lambda", "lambda", s.name)["chosen"])
    train(c, c.student_dir(name, seed), p.steps, seed, s, eps, soft_dir, lam, threads=p.threads)


def students(c) -> None:
    """Every system × seed, budget.steps steps with the dev choices (λ, T and K, ε)."""
    todo = c.students()
    if kd := [s.kd for s in c.p.systems if s.kd != "none"]:
        t, k = logic.chosen_tk(c.choices())
        ensure_soft(c, [(m, t, k) for m in kd if soft_ready(c, m, t, k)])
        # a system whose teacher pass is still running (in the background) last
        todo = sorted(todo, key=lambda job: not soft_ready(c, c.p.system(job[0]).kd, t, k))
    c.r.parallel(lambda job: student(c, *job), todo, "students")
