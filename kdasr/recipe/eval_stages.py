"""The paper recipe's stages after training: export, tuning on dev, decoding every set, the bench, the
table, and (only when named) shipping the best student and the teachers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import logic
from .context import Ctx, sha1_of
from .runner import RecipeError, fresh, log, write_if_changed

REFERENCE = "whisper-tiny.en"  # the reference system's name in the table


def _export_one(c: Ctx, system: str) -> None:
    """A student (its epoch-EPOCHS checkpoint) or `teachers` (the LM and BERT, for fusion and rescoring)."""
    models, exp = c.exp / "models", c.exp
    if system == "teachers":
        t = models / "teachers"
        if fresh(t / "lm.json", c.teacher_dir("lm") / "lm.pt") and \
                fresh(t / "bert.json", c.teacher_dir("bert") / "config.json"):
            return
        log("export the LM and BERT")
        c.r.run_into(t, c.kdasr("export-lm", "--lm", c.teacher_dir("lm"), "--bert", c.teacher_dir("bert"), "--check"),
                     "export-teachers", what=f"export of {t}")
        return
    checkpoint = exp / system / f"epoch-{c.s.epochs}.pt"
    if fresh(models / system / "model.json", checkpoint):
        return
    log(f"export {system}")
    c.r.run_into(models / system, c.kdasr("export", checkpoint, *c.s.export_args), f"export-{system}",
                 what=f"export of {models / system}")


def export(c: Ctx) -> None:
    """Every student with int8 variants; the LM and BERT for fusion and rescoring."""
    systems = c.systems()
    c.r.parallel(lambda s: _export_one(c, s), ["teachers", *systems], "export")


def _tune_one(c: Ctx, out: Path, inputs: list[Path], *args) -> None:
    """kdasr tune on the first DEV_LIMIT dev utterances; skipped when OUT is newer than its inputs."""
    if fresh(out, *inputs):
        return
    name = out.stem
    log(f"tune {name} (log {c.logf(f'tune-{name}')})")
    c.r.run(c.kdasr("tune", "--manifest", c.manifest("dev"), "--limit", c.s.dev_limit, *c.s.th(), *args,
                    "--out", out, "--table", out.with_suffix(".md")), f"tune-{name}", what=f"kdasr tune ({out})",
            append=False)


def _tune_student(c: Ctx, system: str) -> None:
    model = c.exp / "models" / system
    _tune_one(c, c.exp / "tune" / f"{system}.json", [model / "model.json"], "--model", model, "--system", system,
              "--grid", f"beam={c.s.tune_beams}", "--grid", f"ctc_weight={c.s.tune_ctc}")


def _tune_alternative(c: Ctx, name: str, search: list[str]) -> None:
    """fusion | rescore-lm | rescore-bert on the baseline, searching with SEARCH (the baseline's choice)."""
    s, t, b, lm = c.s, c.exp / "tune", c.exp / "models" / "baseline", c.exp / "models" / "teachers"
    _tune_one(c, t / f"{name}.json", [b / "model.json", t / "baseline.json", logic.scorer_file(lm, name)],
              "--model", b, "--system", f"baseline+{name}",
              *logic.alternative_args(name, lm, search, s.nbest, s.tune_lm_weights, s.tune_length_bonus,
                                      s.tune_rescore_weights))


def tune(c: Ctx) -> None:
    """Decoding chosen on dev: the students side by side, then fusion and rescoring on the baseline."""
    systems = c.systems()
    c.r.parallel(lambda s: _tune_student(c, s), systems, "tune")
    search = logic.baseline_search(c.exp / "tune" / "baseline.json", c.s.nbest)
    alternatives = ["fusion", *(f"rescore-{r}" for r in c.s.rescorers)]
    c.r.parallel(lambda a: _tune_alternative(c, a, search), alternatives, "tune")


def _keep_reference(c: Ctx, record: Path, keep: Path, fingerprint: str) -> None:
    """The record, then its set's hash: a half-kept pair is never adopted."""
    keep.parent.mkdir(parents=True, exist_ok=True)
    sha = keep.with_name(keep.name + ".sha1")
    sha.unlink(missing_ok=True)
    tmp = keep.with_name(keep.name + ".json.tmp")
    shutil.copyfile(record, tmp)
    tmp.replace(keep.with_name(keep.name + ".json"))
    write_if_changed(sha, fingerprint)


def _decode_one(c: Ctx, job: tuple[str, Path | None, Path | None, str]) -> None:
    """One system on one set (MODEL None: the whisper reference, adopted from REFERENCE_FROM when kept
    for the same set)."""
    name, model, opts, set_name = job
    record, log_name = c.exp / "results" / name / f"{set_name}.json", f"decode-{name}-{set_name}"
    if record.is_file() if model is None else fresh(record, opts, model / "model.json"):
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    keep = fingerprint = None
    if model is None and c.s.reference_from:
        keep = Path(c.s.reference_from) / name / set_name
        try:
            fingerprint = logic.set_fingerprint(c.manifest(set_name))
        except Exception as e:  # a missing audio file, a bad manifest line
            raise RecipeError(f"{c.manifest(set_name)}: cannot hash the set ({e})") from None
        kept, sha = keep.with_name(f"{set_name}.json"), keep.with_name(f"{set_name}.sha1")
        if kept.is_file() and sha.is_file() and sha.read_text().strip() == fingerprint:
            log(f"decode {name} on {set_name}: adopted {kept} (the same set)")
            tmp = record.with_name(record.name + ".tmp")
            shutil.copyfile(kept, tmp)
            tmp.replace(record)
            return
    log(f"decode {name} on {set_name} (log {c.logf(log_name)})")
    if model is None:
        c.r.run(c.kdasr("eval-reference", "--manifest", c.manifest(set_name), "--threads", c.s.threads or "1",
                        "--json", record), log_name, what=f"kdasr eval-reference ({set_name})", append=False)
        if keep is not None and fingerprint is not None:
            _keep_reference(c, record, keep, fingerprint)
    else:
        c.r.run(c.kdasr("eval", "--model", model, "--manifest", c.manifest(set_name), "--options", opts, *c.s.th(),
                        "--system", name, "--json", record), log_name, what=f"kdasr eval ({name}, {set_name})",
                append=False)


def _reference_jobs(c: Ctx) -> list:
    return [] if c.s.skip_reference else [(REFERENCE, None, None, s) for s in c.s.sets]


def decode(c: Ctx) -> None:
    """Every (system, set), JOBS at a time: whisper first (the longest jobs end the queue soonest), then
    set by set (dev, which ship needs, for every system first)."""
    rows = logic.table_systems(c.exp, c.systems(), c.s.rescorers)
    jobs = [(name, model, opts, s) for s in c.s.sets for name, model, opts in rows]
    c.r.parallel(lambda j: _decode_one(c, j), [*_reference_jobs(c), *jobs], "decode")


def reference(c: Ctx) -> None:
    """Whisper on every set (decode's part that needs no student)."""
    c.r.parallel(lambda j: _decode_one(c, j), _reference_jobs(c), "reference")


def bench(c: Ctx) -> None:
    """The decoding cost of every system side by side in one `kdasr bench --system` run."""
    s = c.s
    rows = logic.table_systems(c.exp, c.systems(), s.rescorers)
    args = [x for name, model, opts in rows for x in ("--system", f"{name}={model}:{opts}")]
    if fresh(c.exp / "bench.json", *(p for _, model, opts in rows for p in (opts, model / "model.json"))):
        return
    log(f"bench {len(rows)} systems on {s.bench_set} (first {s.bench_limit} utterances)")
    c.r.run(c.kdasr("bench", "--manifest", c.manifest(s.bench_set), "--limit", s.bench_limit, "--threads",
                    s.threads or "1", "--repeats", s.bench_repeats, *args, "--out", c.exp / "bench.md"),
            "bench", what="kdasr bench")


def table(c: Ctx, stage_names: list[str]) -> None:
    """TABLE_OUT and PLOT_OUT from the records, by `kdasr paper-table`, with the protocol line."""
    s, exp = c.s, c.exp
    students = c.systems()
    records = sorted(str(p) for p in (exp / "results").rglob("*.json"))
    s.table_out.parent.mkdir(parents=True, exist_ok=True)
    s.plot_out.parent.mkdir(parents=True, exist_ok=True)
    # the protocol goes in a file: paper-table's Path(text).is_file() raises on a text longer than a file name
    wall = logic.wall_times(exp / "times", s.data / "build_info.json", stage_names)
    write_if_changed(exp / "protocol.txt", logic.protocol_text(s, wall))
    if s.plot_out.is_file() and fresh(s.table_out, exp / "protocol.txt", exp / "bench.json", *map(Path, records)):
        return
    log(f"paper table {s.table_out} (log {c.logf('table')})")
    c.r.run(c.kdasr("paper-table", exp / "results", "--baseline", "baseline", "--bench", exp / "bench.json",
                    "--sets", ",".join(s.sets), "--plot-set", s.bench_set, *logic.paper_args(students),
                    "--protocol", exp / "protocol.txt", "--out", s.table_out, "--plot", s.plot_out),
            "table", what="kdasr paper-table")


def ship(c: Ctx) -> None:
    """The student with the lowest dev WER, exported with its dev-tuned decoding as model.json's
    recommendation into SHIP_DIR, with MODEL_CARD.md; never over WARM_START."""
    s, exp = c.s, c.exp
    students = c.systems()
    if s.warm_start and os.path.realpath(s.ship_dir) == os.path.realpath(s.warm_start):
        raise RecipeError(f"SHIP_DIR {s.ship_dir} is every student's warm start (WARM_START): keep it first, e.g. "
                          f"git mv {s.ship_dir} {s.ship_dir}-v1 and WARM_START={s.ship_dir}-v1")
    best = logic.best_student(exp / "results", students)
    flags = logic.decoding_flags(exp / "tune" / f"{best}.json")
    log(f"ship {best} to {s.ship_dir} (lowest dev WER; decoding {' '.join(flags)})")
    c.r.run_into(s.ship_dir, c.kdasr("export", exp / best / f"epoch-{s.epochs}.pt", *s.export_args, *flags),
                 f"export-{s.ship_dir.name}", what=f"export of {s.ship_dir}")
    facts = []
    if (exp / "bench.json").is_file():
        facts += ["--bench", exp / "bench.json"]
    if (s.data / "build_info.json").is_file():
        facts += ["--corpus", s.data / "build_info.json"]  # sources and licences
    c.r.run(c.kdasr("model-card", s.ship_dir, "--results", exp / "results", "--system", best, *facts), "ship",
            what="kdasr model-card")


def ship_teachers(c: Ctx) -> None:
    """The finished teachers without optimiser state into TEACHERS_OUT, with the sha1 of the text they
    learnt (a later run on the same text adopts them) and a quality report."""
    from .train_stages import teacher_quality

    if not (c.bert_done() and c.lm_done()):
        raise RecipeError("the teachers are not finished: run the teachers (or prep) stage first")
    out = c.s.teachers_out
    out.mkdir(parents=True, exist_ok=True)
    text_sha1 = sha1_of(c.s.data / "teacher.txt")
    for t in ("bert", "lm"):
        tmp = out / f"{t}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in c.teacher_dir(t).iterdir():
            if f.is_file() and f.name != "train_state.pt":
                shutil.copy2(f, tmp / f.name)
        (tmp / "teacher_text.sha1").write_text(text_sha1 + "\n")
        shutil.rmtree(out / t, ignore_errors=True)
        tmp.rename(out / t)
    teacher_quality(c, "ship-teachers", out / "bert", out / "lm", out / "QUALITY.md")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    log(f"teachers shipped to {out} ({size:.0f} MiB); quality in {out / 'QUALITY.md'}")
