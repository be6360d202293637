"""The paper recipe on our data (issue 10), corpus to table: its stages in order, and `main`, which
`kdasr recipe run` (and eval/recipe.sh, `make recipe`) calls. Variables: kdasr/recipe/settings.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from . import eval_stages as ev
from . import train_stages as tr
from .context import Ctx
from .runner import RecipeError, Runner, Stage, log, run_stages, select, write_if_changed
from .settings import from_env

DEFAULT = ["corpus", "prep", "quality", "sweep", "students", "export", "tune", "decode", "bench", "table"]


def stages(c: Ctx) -> list[Stage]:
    """Every stage: the default sequence first, then the parts that can be named on their own, then the
    ones that run only when named."""
    def st(name, fn, doc, default=True):
        return Stage(name, lambda: fn(c), doc, default)

    return [
        st("corpus", tr.corpus, "corpus v2 (kdasr data synth; SYNTH=0: DATA holds the manifests) and the units (TOK)"),
        st("prep", tr.prep, "teachers, soft labels and (WARM=0 SWEEP=0) every student, in two lanes side by side"),
        st("quality", tr.quality, "teacher and soft-label quality beside count baselines; STRICT=1 stops unless "
           "every teacher beats them"),
        st("sweep", tr.sweep, "KD students branched from baseline epoch WARM, SWEEP epochs per lambda in LAMBDAS"),
        st("students", tr.students, "lambda chosen per mode on dev; every student to epoch EPOCHS; learning curves"),
        st("export", ev.export, "every student with int8 variants; the LM and BERT for fusion and rescoring"),
        st("tune", ev.tune, "decoding chosen on dev: beam/CTC per student; fusion and rescoring on the baseline"),
        st("decode", ev.decode, "every system on dev and the test sets (JSON records); whisper tiny.en beside them"),
        st("bench", ev.bench, "the decoding cost of every system side by side in one kdasr bench run"),
        st("table", lambda c: ev.table(c, DEFAULT), "TABLE_OUT and PLOT_OUT from the records (kdasr paper-table)"),
        st("teachers", tr.teachers, "BERT and the LM on the teacher text (part of prep)", False),
        st("soft", tr.soft, "soft labels of the train set for every KD mode (part of prep)", False),
        st("baseline", tr.baseline, "the CE student to epoch WARM (part of prep)", False),
        st("reference", ev.reference, "whisper tiny.en on every set (part of decode)", False),
        st("curves", tr.curves, "the learning curves (part of students)", False),
        st("ship", ev.ship, "the student with the lowest dev WER, with its tuned decoding, into SHIP_DIR", False),
        st("ship_teachers", ev.ship_teachers, "the finished teachers into TEACHERS_OUT, for a later run to adopt",
           False),
    ]


def main(names: list[str], start: str | None = None, list_only: bool = False,
         env: Mapping[str, str] | None = None) -> int:
    try:
        s = from_env(os.environ if env is None else env)
        c = Ctx(s, Runner(s.exp / "logs", s.jobs))
        every = stages(c)
        if list_only:
            for stage in every:
                print(f"{stage.name:14} {'' if stage.default else '(only when named) '}{stage.doc}")
            return 0
        if s.bench_set not in s.sets:
            raise RecipeError(f"BENCH_SET {s.bench_set} is not one of SETS ({' '.join(s.sets)})")
        chosen = select(every, names, start)  # before anything is written: a typo leaves EXP as it was
        for d in ("logs", "results", "tune", "models"):
            (s.exp / d).mkdir(parents=True, exist_ok=True)
        write_if_changed(s.exp / "student_amp", s.student_amp)  # sticky: a later run without them goes on alike
        write_if_changed(s.exp / "protocol_note", s.protocol_note)
        run_stages(chosen, c.r, s.exp / "times")
    except RecipeError as e:
        print(f"[recipe] error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("[recipe] interrupted: a rerun resumes (finished work is skipped)", file=sys.stderr, flush=True)
        return 130
    log(f"done: {s.table_out}" if any(st.name == "table" for st in chosen) else
        f"done: {' '.join(st.name for st in chosen)}")
    return 0
