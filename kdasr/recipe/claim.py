"""The claim recipe (issue 28), driven by a protocol file (kdasr/spec/protocol.py): `kdasr recipe claim
--protocol FILE --exp EXP [STAGES...]` (and `make claim`). Its stages, in order:

  freeze     the protocol frozen into EXP (protocol.toml, protocol.lock.json): fixed before any test number
  soft       soft labels: the T, K sweep's system at every T × K, and every KD mode at the chosen T, K (one
             teacher pass per mode at the first T and the largest K; the other points `kdasr teacher soft-derive`);
             the other modes' passes run in the background, beside the sweeps, on the job slots they leave
  tk         T and K chosen on dev: the first seed, the BERT-utterance system at the middle λ of its grid,
             each T × K trained setup.sweep_steps steps (EXP/choices.json)
  lambda     λ chosen on dev per KD system at the chosen T, K (first seed, sweep_steps each); the dev WER of
             BERT utterance and context at the same λ recorded beside
  smoothing  ε of every entropy-matched system (`kdasr teacher soft-stats` on the chosen soft labels)
  students   every system × seed trained budget.steps steps with the choices
  export     every student exported
  tune       the decoding grid on the pooled dev manifests (`kdasr tune`), then every student on each dev set
  alternatives  (only with the protocol's [alternatives]) best-kd chosen on the tune stage's dev records; the
             LM and/or BERT teachers exported once (EXP/models/teachers); every (student, method) × seed
             tuned on the pooled dev set with that student's own tuned beam (at least nbest) and CTC weight
             (EXP/tune/STUDENT+METHOD@sN.json), then decoded on each dev set
  test       (the protocol checked against EXP's lock first) every student and alternative on every test set
  table      (the lock checked first) one `kdasr bench` of the alternatives beside their students (first
             seed, EXP/report/bench.md); `kdasr claim-table` for the test sets and for the dev sets, the
             alternatives as systems STUDENT+METHOD, with the protocol block, the dev choices, the budget
             plan and the wall time; `kdasr claim-verdicts` (EXP/report/verdicts.md: which of the paper's
             claims hold, and what was tried); learning curves of every seed

Every stage skips finished work (a rerun, or a run after a kill, does what is missing; trainers resume from
their last.pt); every command logs into EXP/logs; independent jobs run JOBS (default 2) side by side, one
thread each; one run at a time holds EXP (EXP/recipe.lock: a second is refused, or with --wait waits).
The commands are the kdasr CLI as subprocesses ($KDASR, default this Python's -m kdasr)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KdasrError
from ..spec.protocol import Protocol, Setup, read_protocol
from . import claim_logic as logic
from . import stage_times
from .exp_lock import exp_lock
from .runner import RecipeError, Runner, Stage, log, run_stages, select
from .stage_times import StageClock


@dataclass
class ClaimCtx:
    protocol_path: Path
    exp: Path
    r: Runner
    kdasr_cmd: list[str]
    _p: Protocol | None = field(default=None, repr=False)

    @property
    def p(self) -> Protocol:
        if self._p is None:
            p = read_protocol(self.protocol_path)
            if p.setup is None:
                raise RecipeError(f"{self.protocol_path}: no [setup] table (train, dev, config, tokenizer, "
                                  "bert_teacher, lm_teacher, test_dir, sweep_steps): the claim recipe needs it")
            self._p = p
        return self._p

    def reread(self) -> Protocol:
        self._p = None
        return self.p

    @property
    def u(self) -> Setup:
        return self.p.setup

    def kdasr(self, *args) -> list[str]:
        return [*self.kdasr_cmd, *map(str, args)]

    def choices(self) -> dict:
        return logic.read_choices(self.exp)

    def dev_all(self) -> Path:
        return self.exp / "dev" / f"{logic.DEV_SET}.jsonl"

    def feature_cache(self) -> Path:
        return Path(self.u.feature_cache) if self.u.feature_cache else self.exp / "feats"

    def soft_dir(self, mode: str, t: float, k: int) -> Path:
        return self.exp / "soft" / logic.soft_name(mode, t, k)

    def student_dir(self, system: str, seed: int) -> Path:
        return self.exp / "students" / system / f"s{seed}"

    def students(self) -> list[tuple[str, int]]:
        return [(s.name, seed) for seed in self.p.seeds for s in self.p.systems]

    def model(self, system: str, seed: int) -> Path:
        """A student's export (the alternatives decode it too, with their own options)."""
        return self.exp / "models" / logic.label(system, seed)

    def tuned(self, label: str) -> Path:
        """The dev-tuned decoding (`kdasr tune --out`) of a student or an alternative, by its record label."""
        return self.exp / "tune" / f"{label}.json"

    def record(self, label: str, set_name: str) -> Path:
        return self.exp / "results" / label / f"{set_name}.json"


def freeze_stage(c: ClaimCtx) -> None:
    from .protocol import freeze

    p, what = freeze(c.protocol_path, c.exp)
    c.reread()
    log({"frozen": f"froze {c.protocol_path} into {c.exp} (fingerprint {p.fingerprint[:16]})",
         "unchanged": f"protocol {p.name} already frozen in {c.exp} (fingerprint {p.fingerprint[:16]})",
         "changed": f"recorded change: {c.exp} now holds fingerprint {p.fingerprint[:16]}"}[what])


KEPT_FROM_EXP = ("protocol.toml", "protocol.lock.json", logic.CHOICES, "times.json")
KEPT_SUFFIXES = (".md", ".json", ".png", ".csv")


def keep_report(exp: Path, dest: Path) -> list[Path]:
    """EXP's report (tables, verdicts, bench, curves) and what it was made under (the frozen protocol, its
    lock and history, the dev choices, the stage times) copied into DEST, each file atomically: the copy
    kept in git. Nothing before the table stage has written the verdicts (a run still going)."""
    from ..io_utils import atomic_write_bytes

    report = exp / "report"
    if not (report / "verdicts.md").is_file():
        return []
    files = [*(f for f in sorted(report.iterdir()) if f.suffix in KEPT_SUFFIXES and f.is_file()),
             *(exp / n for n in KEPT_FROM_EXP if (exp / n).is_file())]
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        atomic_write_bytes(dest / f.name, f.read_bytes())
    return [dest / f.name for f in files]


def stages(c: ClaimCtx) -> list[Stage]:
    from . import claim_alternatives as ca
    from . import claim_stages as cs
    from . import claim_tables as ct

    def st(name, fn, doc):
        def run() -> None:
            try:
                fn(c)
            except KdasrError as e:  # a bad file met in-process: one line, with the stage's name
                raise RecipeError(str(e)) from None

        return Stage(name, run, doc)

    return [
        st("freeze", freeze_stage, "the protocol frozen into EXP before any test number"),
        st("soft", cs.soft, "soft labels: the T/K sweep's mode at every T x K; every KD mode at the chosen T, K"),
        st("tk", cs.tk, "T and K chosen on dev (first seed, BERT utterance at its middle lambda, sweep_steps)"),
        st("lambda", cs.lambdas, "lambda chosen on dev per KD system; utterance vs context at the same lambda"),
        st("smoothing", cs.smoothing, "epsilon of the entropy-matched systems (kdasr teacher soft-stats)"),
        st("students", cs.students, "every system x seed, budget.steps steps, with the dev choices"),
        st("export", ct.export, "every student exported"),
        st("tune", ct.tune, "decoding grid on the pooled dev manifests; every student on each dev set"),
        st("alternatives", ca.alternatives, "[alternatives]: fusion, rescoring tuned on dev per student x seed"),
        st("test", ct.test, "the frozen protocol checked, then every student and alternative on every test set"),
        st("table", ct.table, "bench of the alternatives; claim tables (test, dev) with the protocol block; verdicts; "
                              "curves"),
    ]


def main(protocol: str | Path, exp: str | Path, names: list[str], start: str | None = None,
         list_only: bool = False, jobs: int | None = None, env: Mapping[str, str] | None = None,
         wait: bool = False, keep: str | Path | None = None) -> int:
    env = os.environ if env is None else env
    exp = Path(exp)
    kdasr_cmd = shlex.split(env["KDASR"]) if env.get("KDASR") else [sys.executable, "-m", "kdasr"]
    if jobs is None:
        jobs = int(env["JOBS"]) if env.get("JOBS", "").isdigit() else 2
    c = ClaimCtx(Path(protocol), exp, Runner(exp / "logs", jobs), kdasr_cmd)
    try:
        every = stages(c)
        if list_only:
            for stage in every:
                print(f"{stage.name:12} {stage.doc}")
            return 0
        chosen = select(every, names, start)  # a typo is refused before anything is written
        c.p  # noqa: B018 - a bad protocol is refused before anything runs

        times = exp / "times.json"
        clock = StageClock(times, lambda: c.r.ran)

        def timed(name: str, seconds: float, commands: int) -> None:
            clock.stop()
            stage_times.add_time(times, name, seconds, commands)

        with exp_lock(exp, wait=wait, say=log):
            (exp / "logs").mkdir(parents=True, exist_ok=True)
            if killed := stage_times.fold_open(times):  # a run killed mid-stage: its time so far still counts
                log(f"counted the time of a killed run of: {' '.join(killed)} (times.json)")
            try:
                run_stages(chosen, c.r, on_done=timed, on_start=clock.start)
            finally:  # the lock held until background work (a teacher pass) has ended too, after a failure as well
                clock.stop()
                failed = c.r.wait_background()
            if failed is not None:
                raise failed if isinstance(failed, (RecipeError, KdasrError)) else RecipeError(str(failed))
            if keep:
                kept = keep_report(exp, Path(keep))
                log(f"kept {len(kept)} report files in {keep}" if kept else f"no report to keep in {keep} yet "
                    "(the table stage writes it)")
    except (RecipeError, KdasrError) as e:
        print(f"[recipe] error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("[recipe] interrupted: a rerun resumes (finished work is skipped)", file=sys.stderr, flush=True)
        return 130
    log(f"done: {' '.join(s.name for s in chosen)} ({time.strftime('%H:%M:%S')})")
    return 0
