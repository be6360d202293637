"""The claim recipe's stages after training (kdasr/recipe/claim.py lists them all): export, decoding
tuned on dev, the test records (only under the frozen protocol), the claim tables and learning curves.
The inference-time alternatives' own stage and bench are in claim_alternatives.py."""

from __future__ import annotations

from pathlib import Path

from ..spec.protocol import render_protocol_block
from . import claim_alternatives as alt
from . import claim_logic as logic
from . import stage_times
from .claim_stages import DONE, dev_limit, eval_run, export_run, write_dev_all
from .runner import RecipeError, fresh, log, write_if_changed

ORDER = ["freeze", "soft", "tk", "lambda", "smoothing", "students", "export", "tune", "alternatives", "test",
         "table"]


def _trained(c) -> list[tuple[str, int, Path]]:
    """(system, seed, run dir) of every student; RecipeError naming those not trained to the budget."""
    out, missing = [], []
    for name, seed in c.students():
        run = c.student_dir(name, seed)
        (out if (run / DONE).is_file() else missing).append((name, seed, run))
    if missing:
        raise RecipeError(f"{len(missing)} student(s) not trained (e.g. {missing[0][2]}): run the students stage")
    return out


def _options(c, name: str, seed: int) -> Path:
    return c.tuned(logic.label(name, seed))


def export(c) -> None:
    """Every student's last checkpoint (budget.steps) exported."""
    jobs = _trained(c)
    c.r.parallel(lambda j: export_run(c, j[2], c.model(j[0], j[1])), jobs, "export")


def _tune_one(c, name: str, seed: int) -> None:
    model, out = c.model(name, seed), _options(c, name, seed)
    grid = logic.grid_args(c.p.decoding)
    # a changed grid or dev_limit tunes again (kdasr tune decodes only the new points)
    write_if_changed(out.with_suffix(".grid"), " ".join(map(str, [*grid, *dev_limit(c)])))
    if not fresh(out, model / "model.json", c.dev_all(), out.with_suffix(".grid")):
        c.r.run(c.kdasr("tune", "--model", model, "--manifest", c.dev_all(), *dev_limit(c), "--threads", 1, *grid,
                        "--system", logic.label(name, seed), "--out", out, "--table", out.with_suffix(".md")),
                f"tune-{out.stem}", what=f"kdasr tune ({out})", append=False,
                announce=f"tune {out.stem} on {c.dev_all().name}")
    for dev in c.p.dev_manifests:  # the dev sets' own records, with the tuned decoding: the dev table
        eval_run(c, model, Path(dev), c.exp / "results" / logic.label(name, seed) / f"{Path(dev).stem}.json",
                 logic.label(name, seed), out)


def tune(c) -> None:
    """The protocol's decoding grid on the pooled dev manifests for every student (`kdasr tune` refuses
    test-named manifests); then every student on each dev manifest with its tuned decoding."""
    for name, seed, _ in _trained(c):
        if not (c.model(name, seed) / "model.json").is_file():
            raise RecipeError(f"{c.model(name, seed)} missing: run the export stage")
    write_dev_all(c)
    (c.exp / "tune").mkdir(parents=True, exist_ok=True)
    c.r.parallel(lambda j: _tune_one(c, j[0], j[1]), c.students(), "tune")


def _frozen(c):
    """The protocol, checked against EXP's lock first (a change not recorded is refused in one line)."""
    from .protocol import require_frozen

    require_frozen(c.protocol_path, c.exp)
    return c.reread()


def runs(c) -> list[tuple[str, Path, Path]]:
    """(record label, model dir, tuned options) of every student and then every alternative, all seeds."""
    out = []
    for name, seed in c.students():
        opts = _options(c, name, seed)
        if not opts.is_file():
            raise RecipeError(f"{opts} missing: run the tune stage")
        out.append((logic.label(name, seed), c.model(name, seed), opts))
    return out + alt.runs(c)


def test(c) -> None:
    """Every student and alternative on every test set with its dev-tuned decoding, under the frozen
    protocol only."""
    p = _frozen(c)
    manifests = {t: Path(c.u.test_manifest(t)) for t in p.test_sets}
    if missing := [str(m) for m in manifests.values() if not m.is_file()]:
        raise RecipeError(f"no test manifest {missing[0]} (test_dir/<set>.jsonl for every test set)")
    jobs = [(run, t) for run in runs(c) for t in p.test_sets]
    c.r.parallel(lambda j: eval_run(c, j[0][1], manifests[j[1]], c.record(j[0][0], j[1]), j[0][0], j[0][2]),
                 jobs, "test")


def _block(c, bench: list[str]) -> str:
    """The protocol block, the dev choices, the bench's line, the budget plan and the wall time: what each
    table opens with."""
    p = c.p
    students = [c.student_dir(n, s) for n, s in c.students()]
    sweeps = sorted(d for d in (c.exp / "sweep").glob("*") if (d / DONE).is_file())
    plan = logic.budget_plan(p, c.exp, students, sweeps)
    return "\n".join([render_protocol_block(p), *logic.choices_lines(p, c.choices()), *bench, "Budget:", "", *plan,
                      *stage_times.time_lines(c.exp / "times.json", ORDER[:-1]), ""])


def _curves(c, runs: list[Path], report: Path) -> None:
    """Dev WER of every student's epoch checkpoints (curves.png) and every seed's training and dev loss
    from its logs (loss-curves.png, a panel per system)."""
    checkpoints = [f for d in runs for f in d.glob("epoch-*.pt")]
    csv, png, loss_png = report / "curves.csv", report / "curves.png", report / "loss-curves.png"
    logs = [d / "train_log.csv" for d in runs]
    if not checkpoints or (png.is_file() and fresh(csv, *checkpoints) and fresh(loss_png, *logs)):
        return
    log(f"learning curves of {len(runs)} runs (every seed)")
    c.r.run(c.kdasr("curves", *runs, "--dev", c.u.dev, "--feature-cache", c.feature_cache(), "--threads", 1,
                    "--no-progress", "--out", csv, "--plot", png, "--loss-plot", loss_png), "curves",
            what="kdasr curves", append=False)


def _verdicts(c, report: Path) -> None:
    """`kdasr claim-verdicts` on the test sets' claim table, the bench and the dev choices: which of the
    paper's claims hold on our data, and what was tried (REPORT/verdicts.md, .json)."""
    table, bench, choices = report / "claim-test.json", report / "bench.json", c.exp / logic.CHOICES
    out = report / "verdicts.md"
    inputs = [table, *(f for f in (bench, choices) if f.is_file())]
    if fresh(out, *inputs) and fresh(out.with_suffix(".json"), *inputs):
        return
    log(f"claim verdicts {out}")
    optional = [x for flag, f in (("--bench", bench), ("--choices", choices)) if f.is_file() for x in (flag, f)]
    c.r.run(c.kdasr("claim-verdicts", table, *optional, *logic.verdict_roles(c.p), "--out", out,
                    "--json", out.with_suffix(".json")), "verdicts", what="kdasr claim-verdicts", append=False)


def table(c) -> None:
    """The bench of the alternatives beside their students; `kdasr claim-table` per set group (the test
    sets; the dev sets), baseline the first system, the alternatives as systems STUDENT+METHOD, each with
    the protocol block; the verdicts on the paper's claims (`kdasr claim-verdicts`); the learning curves
    of every student (every seed)."""
    p = _frozen(c)
    trained = [run for *_, run in _trained(c)]
    report = c.exp / "report"
    report.mkdir(parents=True, exist_ok=True)
    block = report / "protocol.md"
    write_if_changed(block, _block(c, alt.bench(c, report)))
    labels = [label for label, _, _ in runs(c)]
    systems = [s.name for s in p.systems] + [logic.alt_name(*sm) for sm in alt.systems(c)]
    groups = {"test": list(p.test_sets), "dev": [Path(d).stem for d in p.dev_manifests]}
    for group, sets in groups.items():
        files = [c.record(label, s) for label in labels for s in sets]
        if missing := [f for f in files if not f.is_file()]:
            stage = "test" if group == "test" else "alternatives" if "+" in missing[0].parent.name else "tune"
            raise RecipeError(f"{missing[0]} missing: run the {stage} stage")
        out = report / f"claim-{group}.md"
        if fresh(out, block, *files) and fresh(out.with_suffix(".json"), block, *files):
            continue
        log(f"claim table {out}")
        c.r.run(c.kdasr("claim-table", *files, "--baseline", p.systems[0].name, "--sets", ",".join(sets),
                        "--systems", ",".join(systems), "--protocol-block", block,
                        "--out", out, "--json", out.with_suffix(".json")),
                f"table-{group}", what=f"kdasr claim-table ({group})", append=False)
    _verdicts(c, report)
    _curves(c, trained, report)
