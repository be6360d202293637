"""The paper recipe's stages up to trained students: corpus, teachers, soft labels, the quality gate,
the baseline, the lambda sweep, the students and their learning curves. Each command is skipped when
its output is complete, so a rerun (or a run after a kill) does only what is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import logic
from .context import Ctx, sha1_of
from .runner import RecipeError, fresh, log, write_if_changed


def corpus(c: Ctx) -> None:
    s = c.s
    summary = s.data / "summary.json"
    built = summary.is_file() and ((s.data / "build_info.json").is_file() or '"version": 1' in summary.read_text())
    if s.synth and not built:
        log(f"build the corpus into {s.data} (log {c.logf('corpus')})")
        c.r.run(c.kdasr("data", "synth", s.data, *s.synth_args), "corpus", what="kdasr data synth")
    for name in ("train", "dev", *s.sets):
        if not c.manifest(name).is_file():
            raise RecipeError(f"{c.manifest(name)}: no such manifest")
    if not (s.data / "teacher.txt").is_file():
        raise RecipeError(f"{s.data / 'teacher.txt'}: no teacher text")
    if not s.tok.is_file():
        c.r.run(c.kdasr("tokenizer", "train", s.data / "teacher.txt", "--out", str(s.tok).removesuffix(".model"),
                        "--vocab-size", s.vocab), "tokenizer", what="kdasr tokenizer train")


def teacher(c: Ctx, name: str) -> None:
    """Train the BERT or the LM teacher on the teacher text (resumes a killed run by itself)."""
    s = c.s
    budget, extra, label = (s.bert_budget, s.bert_args, "BERT") if name == "bert" else (s.lm_budget, s.lm_args, "LM")
    log(f"{label} teacher ({' '.join(budget)}, log {c.logf(name)})")
    c.r.run(c.kdasr("teacher", name, s.data / "teacher.txt", "--tokenizer", s.tok, "--out", c.teacher_dir(name),
                    "--size", s.teacher_size, *extra, *budget, *s.th(), "--dev", c.manifest("dev"),
                    "--eval-every", s.teacher_eval_every, "--save-every", 5, "--amp", s.teacher_amp),
            name, what=f"{label} teacher")


def adopt_teacher(c: Ctx, name: str) -> None:
    """Copy TEACHERS_FROM/NAME into EXP when EXP has none and it learnt this text with these units."""
    if not c.s.teachers_from:
        return
    src, dst = Path(c.s.teachers_from) / name, c.teacher_dir(name)
    if not src.is_dir() or dst.exists():
        return
    text = c.s.data / "teacher.txt"
    same_units = (src / "tokenizer.model").is_file() and c.s.tok.is_file() and \
        (src / "tokenizer.model").read_bytes() == c.s.tok.read_bytes()
    try:
        same_text = (src / "teacher_text.sha1").read_text().strip() == sha1_of(text)
    except OSError:
        same_text = False
    if not (same_units and same_text):
        log(f"teacher {name}: not adopting {src} (trained on other units than {c.s.tok} or another text than {text})")
        return
    log(f"teacher {name}: adopted from {src} (same text and units; TEACHERS_FROM= trains a new one)")
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(dst)


def adopt_teachers(c: Ctx) -> None:
    adopt_teacher(c, "bert")
    adopt_teacher(c, "lm")


def teachers(c: Ctx) -> None:
    adopt_teachers(c)
    todo = [n for n, done in (("bert", c.bert_done()), ("lm", c.lm_done())) if not done]
    c.r.parallel(lambda n: teacher(c, n), todo, "teachers")


def soft_one(c: Ctx, mode: str) -> None:
    """Soft labels of the whole train set for one KD mode (lm, bert, bert-context)."""
    if c.soft_done(mode):
        return
    source, kind = ("lm" if mode == "lm" else "bert"), ("context" if mode == "bert-context" else "utterance")
    log(f"soft labels: {mode} (log {c.logf(f'soft-{mode}')})")
    c.r.run(c.kdasr("teacher", "soft-labels", c.manifest("train"), "--tokenizer", c.s.tok, "--teacher",
                    c.teacher_dir(source), "--mode", kind, "--out", c.exp / "soft" / mode, *c.s.th(),
                    "--amp", c.s.teacher_amp), f"soft-{mode}", what=f"soft labels {mode}")


def soft(c: Ctx) -> None:
    c.r.parallel(lambda m: soft_one(c, m), c.s.kd_modes, "soft")


def teacher_quality(c: Ctx, log_name: str, bert: Path, lm: Path, report: Path, *extra) -> None:
    """kdasr teacher quality on the dev text, beside count baselines (the gate is ours: --no-strict)."""
    s = c.s
    c.r.run(c.kdasr("teacher", "quality", "--tokenizer", s.tok, "--dev", c.manifest("dev"), "--teacher-text",
                    s.data / "teacher.txt", "--bert", bert, "--lm", lm, *extra, "--sentences", s.quality_sentences,
                    "--no-strict", *s.th(), "--report", report), log_name, what="teacher quality", append=False)


def passed_or_die(c: Ctx, report_json: Path) -> None:
    """STRICT=1 stops unless every teacher beats the count baselines (no KD from one that does not)."""
    md = report_json.with_suffix(".md")
    if logic.quality_passed(report_json):
        log(f"teacher quality: every teacher beats the count baselines ({md})")
    elif c.s.strict:
        raise RecipeError(f"a teacher does not beat the count baselines (see {md}): no distillation from it "
                          "(STRICT=0 overrides)")
    else:
        log(f"WARNING: a teacher does not beat the count baselines ({md}); going on because STRICT=0")


def _teacher_inputs(c: Ctx) -> list[Path]:
    return [c.teacher_dir("bert") / "config.json", c.teacher_dir("lm") / "lm.pt"]


def quality(c: Ctx) -> None:
    """The teachers and every soft label's reference-in-top-1/top-K shares beside count baselines."""
    out = c.s.quality_out
    soft_args, inputs = [], _teacher_inputs(c)
    for m in c.s.kd_modes:
        if not c.soft_done(m):
            raise RecipeError(f"no soft labels for {m}: run the soft stage first")
        soft_args += ["--soft-labels", c.exp / "soft" / m]
        inputs.append(c.exp / "soft" / m / "summary.json")
    report_json = out.with_suffix(".json")
    if not fresh(report_json, *inputs):
        out.parent.mkdir(parents=True, exist_ok=True)
        teacher_quality(c, "quality", c.teacher_dir("bert"), c.teacher_dir("lm"), out, *soft_args,
                        "--train", c.manifest("train"))
    passed_or_die(c, report_json)


def gate(c: Ctx) -> None:
    """The teachers alone beside the count baselines, before any KD (quality needs every soft label)."""
    report_json = c.exp / "gate.json"
    if not fresh(report_json, *_teacher_inputs(c)):
        teacher_quality(c, "gate", c.teacher_dir("bert"), c.teacher_dir("lm"), c.exp / "gate.md")
    passed_or_die(c, report_json)


def train_run(c: Ctx, out: Path, epochs: int, *extra) -> None:
    """A student trained to EPOCHS: done when OUT/epoch-EPOCHS.pt exists, else (re)started (it resumes)."""
    if (out / f"epoch-{epochs}.pt").is_file():
        return
    s = c.s
    log(f"train {out.name} to epoch {epochs} (log {c.logf(out.name)})")
    c.r.run([*s.launch, "train", "--train", c.manifest("train"), "--dev", c.manifest("dev"), "--config", s.config,
             "--tokenizer", s.tok, "--feature-cache", s.data / "feats", "--out", out, *s.th(), "--epochs", epochs,
             "--amp", s.student_amp, *extra], out.name, what=f"training {out.name}")


def baseline(c: Ctx) -> None:
    """The CE student to epoch WARM (the KD students branch from there; nothing with WARM=0)."""
    if c.s.warm > 0:
        train_run(c, c.exp / "baseline", c.s.warm, *c.s.init())


def kd_run(c: Ctx, mode: str, lam: str, epochs: int) -> None:
    """A KD student: from the baseline's epoch-WARM checkpoint, or (WARM=0) where the baseline starts."""
    if c.s.warm == 0:
        start = c.s.init()
    else:
        branch = c.exp / "baseline" / f"epoch-{c.s.warm}.pt"
        if not branch.is_file():
            raise RecipeError(f"{branch} missing: run the baseline stage")
        start = ["--branch-from", branch]
    train_run(c, c.exp / logic.student_run(mode, lam), epochs, *start, "--kd", mode, "--soft-labels",
              c.exp / "soft" / mode, "--kd-weight", lam)


def student_full(c: Ctx, run: str) -> None:
    """A student of the table to epoch EPOCHS (the same budget for all)."""
    if run == "baseline":
        train_run(c, c.exp / "baseline", c.s.epochs, *c.s.init())
    else:
        kd_run(c, *logic.split_run(run), c.s.epochs)


def fixed_student(c: Ctx, mode: str) -> str:
    return logic.student_run(mode, logic.fixed_lambda(c.s.kd_lambda, mode))


# prep's lanes. Branched protocol: BERT and its soft labels | the baseline, the LM and its soft labels.
# Together (WARM=0 SWEEP=0), after the teachers and the gate: BERT context's soft labels (the longest) and
# its student | the other soft labels, the baseline and the other KD students.
def _lane(c: Ctx, name: str) -> None:
    modes = c.s.kd_modes
    if name == "bert":
        if not c.bert_done():
            teacher(c, "bert")
        for m in modes:
            if m.startswith("bert"):
                soft_one(c, m)
    elif name == "ce":
        baseline(c)
        if not c.lm_done():
            teacher(c, "lm")
        if "lm" in modes:
            soft_one(c, "lm")
    elif name == "context":
        if "bert-context" in modes:
            soft_one(c, "bert-context")
            student_full(c, fixed_student(c, "bert-context"))
    else:  # rest
        for m in modes:
            if m != "bert-context":
                soft_one(c, m)
        student_full(c, "baseline")
        for m in modes:
            if m != "bert-context":
                student_full(c, fixed_student(c, m))


def prep(c: Ctx) -> None:
    """The teachers, soft labels and (together) the students, in two lanes side by side."""
    adopt_teachers(c)
    if not c.s.together:
        c.r.parallel(lambda lane: _lane(c, lane), ["bert", "ce"], "prep")
        return
    students = ["baseline", *(fixed_student(c, m) for m in c.s.kd_modes)]  # a mode without a lambda fails here
    teachers(c)
    gate(c)
    if all(c.soft_done(m) for m in c.s.kd_modes):
        # a finished run whose EPOCHS was raised: the lanes would train three of the four one after the other
        c.r.parallel(lambda run: student_full(c, run), students, "prep")
    else:
        c.r.parallel(lambda lane: _lane(c, lane), ["context", "rest"], "prep")


def sweep(c: Ctx) -> None:
    """KD students branched from baseline epoch WARM, SWEEP epochs for each lambda in LAMBDAS."""
    s = c.s
    if s.sweep == 0:
        log(f"no lambda sweep (SWEEP=0): {s.kd_lambda}")
        return
    jobs = [(m, lam) for m in s.kd_modes for lam in s.lambdas]
    c.r.parallel(lambda job: kd_run(c, *job, s.warm + s.sweep), jobs, "sweep")


def _run_curves(c: Ctx, log_name: str, out: Path, *args) -> None:
    s = c.s
    c.r.run(c.kdasr("curves", *args, "--dev", c.manifest("dev"), "--limit", s.dev_limit, "--feature-cache",
                    s.data / "feats", *s.th(), "--no-progress", "--out", out), log_name, what="kdasr curves")


def curves(c: Ctx) -> None:
    """Learning curves of every run; skipped when the CSV is newer than every epoch checkpoint."""
    runs = [d for d in [c.exp / "baseline", *sorted(c.exp.glob("kd-*"))] if d.is_dir()]
    checkpoints = [f for d in runs for f in sorted(d.glob("epoch-*.pt"))]
    csv = c.exp / "curves.csv"
    if c.s.curves_plot.is_file() and fresh(csv, *checkpoints):
        return
    c.s.curves_plot.parent.mkdir(parents=True, exist_ok=True)
    parts = c.exp / "curves-parts"
    parts.mkdir(parents=True, exist_ok=True)
    # each checkpoint's decode is cached beside it: fill the caches one run per job first, for the runs
    # with a checkpoint newer than their part (a part is newer than the checkpoints it decoded); one such
    # run is left to the call below (a part would be one more process loading torch for nothing)
    todo = [d for d in runs if not fresh(parts / f"{d.name}.csv", *d.glob("epoch-*.pt"))]
    if c.s.jobs > 1 and len(todo) > 1:
        c.r.parallel(lambda d: _run_curves(c, f"curves-{d.name}", parts / f"{d.name}.csv", d), todo, "curves")
    _run_curves(c, "curves", csv, *runs, "--plot", c.s.curves_plot)


def chosen_lambda(c: Ctx, mode: str) -> str:
    s = c.s
    if s.sweep == 0:
        return logic.fixed_lambda(s.kd_lambda, mode)
    return logic.chosen_lambda(c.exp / "curves.csv", mode, s.warm + s.sweep, s.lambdas)


def students(c: Ctx) -> None:
    """Lambda chosen per mode; the baseline and each chosen student trained on to EPOCHS; the curves."""
    curves(c)
    systems = ["baseline"]
    for m in c.s.kd_modes:
        lam = chosen_lambda(c, m)
        systems.append(logic.student_run(m, lam))
        log(f"lambda for {m}: {lam}")
    write_if_changed(c.exp / "systems.txt", "\n".join(systems))
    c.r.parallel(lambda run: student_full(c, run), systems, "students")
    curves(c)
