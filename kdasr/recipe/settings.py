"""The recipe's variables, read from the environment with eval/recipe.sh's names and defaults (so
`EXP=exp/paper2 make recipe` and the tests' environments work unchanged). `${X:-d}` in the old script
(empty means the default) is `get`; `${X-d}` (only unset means the default; empty is a value) is `keep`.

The variables, and why their defaults (all sized for one 180-minute session on 2 cores):
  KDASR, LAUNCH   the kdasr command (default: this Python's -m kdasr) and the trainer's launcher (torchrun ...)
  DATA, EXP, SYNTH, SYNTH_ARGS   the corpus (SYNTH=1: built by kdasr data synth, resumable) and the work dir
  WARM_START      every student starts from these weights (empty: from scratch); export/demo-en-v1 is the model
                  shipped before the paper run (CE on corpus v1), kept because export/demo-en-small is its best student
  TOK, VOCAB      the units: WARM_START's tokenizer, else DATA/tokenizer.model (trained with VOCAB when missing)
  CONFIG, TEACHER_SIZE, {BERT,LM}_{MINUTES,STEPS,ARGS}, TEACHER_EVAL_EVERY   the students' and teachers' setup;
                  a teacher's budget is steps when *_STEPS is set, else minutes
  TEACHER_AMP     bf16 where the CPU has native bf16 (AMX or AVX-512 BF16; 1.6-2.3x measured with AMX), else none
  STUDENT_AMP     the students' forward pass (none = fp32; bf16 halved a paper-v2 step on an AMD EPYC: 3.20 s vs
                  1.65 s). All students must use the same: it and PROTOCOL_NOTE (free text for the table's protocol
                  line) are kept in EXP, so a later run without them goes on alike
  TEACHERS_FROM, TEACHERS_OUT   finished teachers to adopt (only when trained on this teacher.txt with these
                  units; default export/teachers for data/v2) and where ship_teachers puts them
  QUALITY_SENTENCES, STRICT     the quality gate (STRICT=1: no KD unless every teacher beats the count baselines)
  WARM, SWEEP, EPOCHS, LAMBDAS, KD_LAMBDA, KD_LAMBDA_WHY, KD_MODES   the protocol. Default WARM=0 SWEEP=0: every
                  student starts from WARM_START with one seed and data order and trains to EPOCHS, lambda fixed per
                  mode by KD_LAMBDA (the paper's for BERT, and what a 1-epoch sweep chose on corpus v2), the students
                  trained in prep's two lanes. Branched (e.g. WARM=8 SWEEP=1 EPOCHS=16, ~7 hours here): the baseline
                  to WARM, KD students branched from it, a SWEEP-epoch sweep over LAMBDAS chosen on dev
  DEV_LIMIT, THREADS, JOBS      dev utterances for choices; threads per job (empty: the libraries' defaults);
                  jobs side by side (two 1-thread jobs beat one 2-thread job here)
  SETS, EXPORT_ARGS, TUNE_*, NBEST, RESCORERS   the test sets, export flags, the dev grids (kdasr tune caches every
                  point: a wider grid later decodes only its new points), n-best size of fusion and rescoring
  SKIP_REFERENCE, REFERENCE_FROM   whisper tiny.en's row (needs the `reference` extra); its records are kept in
                  git and adopted by a later run on the same set (manifest and audio hash the same)
  BENCH_SET, BENCH_LIMIT, BENCH_REPEATS, QUALITY_OUT, CURVES_PLOT, TABLE_OUT, PLOT_OUT, SHIP_DIR   reports and
                  where the ship stage puts the best student"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .logic import budget_flags
from .runner import RecipeError


@dataclass(frozen=True)
class Settings:
    kdasr: list[str]
    launch: list[str]
    data: Path
    exp: Path
    synth: bool
    synth_args: list[str]
    warm_start: str
    tok: Path
    vocab: str
    config: str
    teacher_size: str
    bert_budget: list[str]
    lm_budget: list[str]
    bert_args: list[str]
    lm_args: list[str]
    teacher_eval_every: str
    teacher_amp: str
    student_amp: str
    protocol_note: str
    teachers_from: str
    teachers_out: Path
    quality_sentences: str
    strict: bool
    warm: int
    sweep: int
    epochs: int
    lambdas: list[str]
    kd_lambda: str
    kd_lambda_why: str
    kd_modes: list[str]
    dev_limit: str
    threads: str
    jobs: int
    sets: list[str]
    export_args: list[str]
    tune_beams: str
    tune_ctc: str
    tune_lm_weights: str
    tune_length_bonus: str
    tune_rescore_weights: str
    nbest: int
    rescorers: list[str]
    skip_reference: bool
    reference_from: str
    bench_set: str
    bench_limit: str
    bench_repeats: str
    quality_out: Path
    curves_plot: Path
    table_out: Path
    plot_out: Path
    ship_dir: Path

    @property
    def together(self) -> bool:
        """The one-session protocol (WARM=0 SWEEP=0): every student trains in the prep stage."""
        return self.warm == 0 and self.sweep == 0

    def th(self) -> list[str]:
        """--threads N, or nothing (THREADS empty: torch's and onnxruntime's defaults)."""
        return ["--threads", self.threads] if self.threads else []

    def init(self) -> list[str]:
        return ["--init-from", self.warm_start] if self.warm_start else []


def _sticky(exp: Path, name: str) -> str | None:
    """What EXP/name holds, as $(cat ...) gives it (trailing newlines dropped); None when absent."""
    try:
        return (exp / name).read_text().rstrip("\n")
    except OSError:
        return None


def _teacher_amp() -> str:
    from kdasr.machine import cpu_has_fast_bf16  # bf16 only where the CPU has it natively (else emulated, slower)

    return "bf16" if cpu_has_fast_bf16() else "none"


def from_env(env: Mapping[str, str]) -> Settings:
    def get(name: str, default: str) -> str:
        return env.get(name) or default

    def keep(name: str, default: str) -> str:
        return env[name] if name in env else default

    def count(name: str, default: str) -> int:
        value = get(name, default)
        if not value.isdigit():
            raise RecipeError(f"{name}={value!r}: not a whole number")
        return int(value)

    kdasr = shlex.split(env["KDASR"]) if env.get("KDASR") else [sys.executable, "-m", "kdasr"]
    data, exp = Path(get("DATA", "data/v2")), Path(get("EXP", "exp/paper"))
    warm_start = keep("WARM_START", "export/demo-en-v1")  # the model shipped before the paper run
    tok = get("TOK", f"{warm_start}/tokenizer.model" if warm_start else "") or f"{data}/tokenizer.model"
    table_out = get("TABLE_OUT", "eval/reports/paper-table.md")
    return Settings(
        kdasr=kdasr,
        launch=shlex.split(env["LAUNCH"]) if env.get("LAUNCH") else kdasr,
        data=data, exp=exp,
        synth=get("SYNTH", "1") == "1",
        synth_args=shlex.split(get("SYNTH_ARGS", "--voices-per-sentence 1 --jobs 2")),
        warm_start=warm_start, tok=Path(tok), vocab=get("VOCAB", "256"),
        config=get("CONFIG", "kdasr/configs/paper-v2.toml"),
        teacher_size=get("TEACHER_SIZE", "demo"),
        bert_budget=budget_flags(get("BERT_STEPS", ""), get("BERT_MINUTES", "200")),
        lm_budget=budget_flags(get("LM_STEPS", ""), get("LM_MINUTES", "60")),
        bert_args=shlex.split(get("BERT_ARGS", "--arch modernbert --window 256 --batch-size 8")),
        lm_args=shlex.split(get("LM_ARGS", "")),
        teacher_eval_every=get("TEACHER_EVAL_EVERY", "500"),
        teacher_amp=get("TEACHER_AMP", "") or _teacher_amp(),
        student_amp=get("STUDENT_AMP", "") or _sticky(exp, "student_amp") or "none",
        protocol_note=keep("PROTOCOL_NOTE", _sticky(exp, "protocol_note") or ""),
        teachers_from=keep("TEACHERS_FROM", "export/teachers" if str(data) == "data/v2" else ""),
        teachers_out=Path(get("TEACHERS_OUT", "export/teachers")),
        quality_sentences=get("QUALITY_SENTENCES", "200"),
        strict=get("STRICT", "1") == "1",
        warm=count("WARM", "0"), sweep=count("SWEEP", "0"), epochs=count("EPOCHS", "2"),
        lambdas=get("LAMBDAS", "0.1 0.3 0.5").split(),
        kd_lambda=get("KD_LAMBDA", "lm=0.1 bert=0.1 bert-context=0.3"),
        kd_lambda_why=keep("KD_LAMBDA_WHY", "the paper's for BERT, and what a 1-epoch sweep over 0.1/0.3/0.5 from "
                           "baseline epoch 8 chose on this corpus (eval/reports/paper-sweep.png)"),
        kd_modes=get("KD_MODES", "lm bert bert-context").split(),
        dev_limit=get("DEV_LIMIT", "300"),
        threads=keep("THREADS", "1"),
        jobs=count("JOBS", "2"),
        sets=get("SETS", "dev test test_heldout test_neural_heldout test_noisy").split(),
        export_args=shlex.split(get("EXPORT_ARGS", "--check --quantize int8")),
        tune_beams=get("TUNE_BEAMS", "1,10"), tune_ctc=get("TUNE_CTC", "0,0.2,0.5"),
        tune_lm_weights=get("TUNE_LM_WEIGHTS", "0.1,0.3,0.5"), tune_length_bonus=get("TUNE_LENGTH_BONUS", "0,1"),
        tune_rescore_weights=get("TUNE_RESCORE_WEIGHTS", "0.1,0.3,1"),
        nbest=count("NBEST", "10"),
        rescorers=get("RESCORERS", "lm bert").split(),
        skip_reference=get("SKIP_REFERENCE", "0") == "1",
        reference_from=keep("REFERENCE_FROM", "eval/reports/paper-reference"),
        bench_set=get("BENCH_SET", "test"), bench_limit=get("BENCH_LIMIT", "64"),
        bench_repeats=get("BENCH_REPEATS", "2"),
        quality_out=Path(get("QUALITY_OUT", "eval/reports/teacher-quality/paper.md")),
        curves_plot=Path(get("CURVES_PLOT", "eval/reports/paper-curves.png")),
        table_out=Path(table_out),
        plot_out=Path(get("PLOT_OUT", table_out.removesuffix(".md") + ".png")),
        ship_dir=Path(get("SHIP_DIR", "export/demo-en-small")),  # the paper recipe's; demo-en is issue 27's
    )
