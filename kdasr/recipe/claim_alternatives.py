"""The claim recipe's inference-time alternatives (issue 28 item 5; the protocol's [alternatives],
kdasr/spec/alternatives.py): KD beside and with shallow fusion and n-best rescoring. The alternatives
stage chooses best-kd on the tune stage's dev records, exports the teachers once, and tunes every
(student, method) per seed on the pooled dev set with that student's own tuned search; the test stage
decodes them on every test set (claim_tables.runs), the table stage puts them in the claim tables as
systems STUDENT+METHOD and benches them beside their students (`bench`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..spec.alternatives import BEST_KD
from . import claim_logic as logic
from .claim_stages import dev_limit, eval_run, write_dev_all
from .logic import alternative_args, baseline_search, scorer_file
from .runner import RecipeError, fresh, log, write_if_changed

BEST_KD_METRIC = ("mean over seeds of the dev WER word-weighted over the protocol's dev manifests (the tune stage's "
                  "records EXP/results/SYSTEM@sN/<dev>.json, each student with its dev-tuned decoding); a tie goes "
                  "to the system listed first")


def teachers_dir(c) -> Path:
    return c.exp / "models" / "teachers"


def systems(c) -> list[tuple[str, str]]:
    """(student system, method) of every alternative, best-kd resolved (the alternatives stage's choice)."""
    a = c.p.alternatives
    if a is None:
        return []
    return [(s, m) for s in logic.alt_students(a.on, c.choices()) for m in a.methods]


def runs(c) -> list[tuple[str, Path, Path]]:
    """(record label, model dir, tuned options) of every alternative and seed; RecipeError when not tuned."""
    out = []
    for seed in c.p.seeds:
        for student, method in systems(c):
            label = logic.label(logic.alt_name(student, method), seed)
            if not c.tuned(label).is_file():
                raise RecipeError(f"{c.tuned(label)} missing: run the alternatives stage")
            out.append((label, c.model(student, seed), c.tuned(label)))
    return out


def export_teachers(c) -> None:
    """The teachers the methods need (LM: fusion, rescore-lm; BERT: rescore-bert) exported once, checked
    against torch, into EXP/models/teachers (skipped when newer than the teachers)."""
    u, out = c.u, teachers_dir(c)
    source = {"lm": Path(u.lm_teacher) / "lm.pt", "bert": Path(u.bert_teacher) / "config.json"}
    need = c.p.alternatives.scorers()
    if all(fresh(out / f"{t}.json", source[t]) for t in need):
        return
    log(f"export teachers ({', '.join(need)}) into {out}")
    flags = [x for t in need for x in (f"--{t}", source[t].parent)]
    c.r.run_into(out, c.kdasr("export-lm", *flags, "--check"), "export-teachers", what=f"export of {out}")


def _dev_wer(c, system: str, seed: int) -> float:
    """A student's dev WER word-weighted over the dev manifests (its tune-stage records; dev only)."""
    records = []
    for dev in c.p.dev_manifests:
        f = c.record(logic.label(system, seed), Path(dev).stem)
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise RecipeError(f"{f}: no dev record ({e.__class__.__name__}): run the tune stage") from None
        if doc.get("set") != Path(dev).stem:  # choices rest on dev records only
            raise RecipeError(f"{f}: a record of {doc.get('set')!r}, not of the dev set {Path(dev).stem!r}")
        records.append(doc)
    return logic.pooled_wer(records)


def _fmt(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _tune(c, student: str, method: str, seed: int) -> None:
    """One alternative of one seed tuned on the pooled dev set (kdasr tune decodes only new points), then
    decoded on each dev manifest with its choice."""
    a, lm = c.p.alternatives, teachers_dir(c)
    label = logic.label(logic.alt_name(student, method), seed)
    model, plain, out = c.model(student, seed), c.tuned(logic.label(student, seed)), c.tuned(label)
    args = alternative_args(method, lm, baseline_search(plain, a.nbest), a.nbest, _fmt(a.lm_weight),
                            _fmt(a.length_bonus), _fmt(a.rescore_weight))
    # what is searched and scored; not the teachers' path (an input below): EXP named another way tunes nothing again
    write_if_changed(out.with_suffix(".grid"), " ".join(map(str, [*args[2:], *dev_limit(c)])))
    if not fresh(out, model / "model.json", plain, scorer_file(lm, method), c.dev_all(), out.with_suffix(".grid")):
        c.r.run(c.kdasr("tune", "--model", model, "--manifest", c.dev_all(), *dev_limit(c), "--threads", 1, *args,
                        "--system", label, "--out", out, "--table", out.with_suffix(".md")),
                f"tune-{label}", what=f"kdasr tune ({out})", append=False,
                announce=f"tune {label} on {c.dev_all().name}")
    for dev in c.p.dev_manifests:
        eval_run(c, model, Path(dev), c.record(label, Path(dev).stem), label, out)


def alternatives(c) -> None:
    """best-kd chosen on dev; the teachers exported; every (student, method) × seed tuned on the pooled dev
    set with the student's own tuned beam (at least nbest) and CTC weight, then decoded on each dev set."""
    p = c.p
    a = p.alternatives
    if a is None:
        log("no [alternatives] in the protocol: no fusion or rescoring to tune")
        return
    for name, seed in c.students():
        if not c.tuned(logic.label(name, seed)).is_file():
            raise RecipeError(f"{c.tuned(logic.label(name, seed))} missing: run the tune stage")
    best = None
    if BEST_KD in a.on:
        kd = [s.name for s in p.systems if s.kd != "none"]
        best = {**logic.best_kd(kd, {s: {seed: _dev_wer(c, s, seed) for seed in p.seeds} for s in kd}),
                "metric": BEST_KD_METRIC}
        log(f"best KD student on dev: {best['chosen']} (mean dev WER {best['mean_dev_wer'][best['chosen']]:.2f})")
    logic.write_choices(c.exp, p, "alternatives", {"on": list(a.on), "best_kd": best})
    export_teachers(c)
    write_dev_all(c)
    jobs = [(student, method, seed) for seed in p.seeds for student, method in systems(c)]
    c.r.parallel(lambda j: _tune(c, *j), jobs, "alternatives")


def bench(c, report: Path) -> list[str]:
    """One `kdasr bench` run: every alternative beside its plain student (first seed, each with its tuned
    decoding) on the first utterances of the first test set, into REPORT/bench.md (+ .json). The protocol
    block's lines on it (none without [alternatives])."""
    a = c.p.alternatives
    if a is None:
        return []
    seed, test_set = c.p.seeds[0], c.p.test_sets[0]
    runs(c)  # every alternative tuned, or one line saying which is not
    rows = []
    for student in dict.fromkeys(s for s, _ in systems(c)):
        for name in (student, *(logic.alt_name(student, m) for m in a.methods)):
            rows.append((logic.label(name, seed), c.model(student, seed), c.tuned(logic.label(name, seed))))
    out, args = report / "bench.md", report / "bench.args"
    flags = [x for name, model, opts in rows for x in ("--system", f"{name}={model}:{opts}")]
    manifest = Path(c.u.test_manifest(test_set))
    write_if_changed(args, " ".join([*flags, str(manifest), str(a.bench_limit), str(a.bench_repeats)]))
    inputs = [args, manifest, *(f for _, m, o in rows for f in (o, m / "model.json"))]
    if not (fresh(out, *inputs) and fresh(out.with_suffix(".json"), *inputs)):
        log(f"bench {len(rows)} systems on {test_set} (first {a.bench_limit} utterances, seed {seed})")
        c.r.run(c.kdasr("bench", "--manifest", manifest, "--limit", a.bench_limit, "--threads", 1, "--repeats",
                        a.bench_repeats, *flags, "--out", out), "bench", what="kdasr bench", append=False)
    return [f"Decoding cost of the alternatives beside their students ([bench.md](bench.md): one `kdasr bench` run, "
            f"seed {seed}, the first {a.bench_limit} utterances of `{test_set}`, 1 thread, best of "
            f"{a.bench_repeats}):", "", *_first_table(out), ""]


def _first_table(markdown: Path) -> list[str]:
    """The first Markdown table of a file (the bench's systems side by side)."""
    lines = markdown.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]
