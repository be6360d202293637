"""`kdasr teacher ...`: train the BERT and LM teachers, write soft labels, benchmark them.
Thin: parse, call kdasr.teachers, print. Imports happen inside each command."""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from .common import command_line, user_errors
from .teacher_soft import count_soft_labels, soft_derive, soft_stats

teacher_app = typer.Typer(help="Teachers for distillation: BERT, Transformer LM, soft labels.", no_args_is_help=True)

TextArg = Annotated[
    Path,
    typer.Argument(
        help="Teacher text: .jsonl documents ({doc, sentences}) or a manifest, "
        "or .txt (one sentence a line, blank line between documents)."
    ),
]
TokOpt = Annotated[Path, typer.Option(help="The ASR's sentencepiece model, or whisper's tokenizer for a whisper "
                                      "student: whisper:tiny.en, whisper:base or a tokenizer.json.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Teacher directory to write.")]
SizeOpt = Annotated[str, typer.Option(help="paper (6x512, 8 heads), demo (4x256, 4 heads) or tiny (2x32, tests).")]
DevOpt = Annotated[Path | None, typer.Option(help="Dev text or manifest: perplexity reported after training.")]
StepsOpt = Annotated[
    int | None, typer.Option(help="Optimiser steps \\[default: 3000; no step limit when --minutes is given].")
]
MinutesOpt = Annotated[float | None, typer.Option(help="Train for this many minutes (all resumed runs together).")]
WarmupOpt = Annotated[int, typer.Option(help="Linear warmup steps.")]
SaveEveryOpt = Annotated[float, typer.Option(help="Minutes between checkpoints (OUT/train_state.pt).")]
EvalEveryOpt = Annotated[int, typer.Option(help="Steps between dev-loss rows in OUT/train_log.csv (0: never).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="torch threads.")]
AmpOpt = Annotated[
    str,
    typer.Option(
        help="'bf16' autocasts the teacher's forward pass (1.6-2x faster on CPUs with AMX; slower where bf16 "
        "is emulated, e.g. AMD EPYC; soft labels keep the output head in fp32); 'none' keeps fp32."
    ),
]
AMPS = ("none", "bf16")
DeviceOpt = Annotated[
    str,
    typer.Option(
        help="Where the teacher runs: 'auto' (a CUDA GPU when torch sees one, else the CPU), 'cpu', 'cuda' or "
        "'cuda:N'. A resumed run may continue on another device."
    ),
]


def _checked_amp(amp: str) -> str:
    if amp not in AMPS:
        raise typer.BadParameter(f"--amp must be one of {', '.join(AMPS)}")
    return amp


def _sizes(size: str, layers, hidden, heads) -> tuple[int, int, int, int]:
    from ..teachers.sizes import TEACHER_SIZES

    if size not in TEACHER_SIZES:
        raise typer.BadParameter(f"--size must be one of {', '.join(TEACHER_SIZES)}")
    s = TEACHER_SIZES[size].override(layers, hidden, heads)
    return s.layers, s.hidden, s.heads, s.ff_dim


# The options every teacher-training command ends with (bert, lm): (name, annotation, default), in --help order.
TRAINING_RUN = (
    ("minutes", MinutesOpt, None),
    ("threads", ThreadsOpt, None),
    ("dev", DevOpt, None),
    ("save_every", SaveEveryOpt, 5.0),
    ("eval_every", EvalEveryOpt, 500),
    ("amp", AmpOpt, "none"),
    ("device", DeviceOpt, "auto"),
)


def with_training_run_options(fn):
    """Appends TRAINING_RUN's options to a Typer command; the command receives them as one dict `run`."""
    sig = inspect.signature(fn, eval_str=True)
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in TRAINING_RUN]

    @functools.wraps(fn)
    def command(*args, **kwargs):
        run = {n: kwargs.pop(n) for n, _, _ in TRAINING_RUN}  # popped first: **kwargs is spread before run=
        return fn(*args, **kwargs, run=run)

    params = [p for p in sig.parameters.values() if p.name != "run"]
    command.__signature__ = sig.replace(parameters=[*params, *extra])
    command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
    return command


def _echo_saved(out: Path, summary: dict) -> None:
    shown = json.dumps({k: v for k, v in summary.items() if k != "config"})
    if summary.get("already_trained"):  # teachers/finished.py: the budget was spent, nothing re-saved
        typer.echo(f"{out} already holds this teacher, trained to its budget; kept as it is: {shown}")
    else:
        typer.echo(f"wrote {out}: {shown}")


def _train_cfg(steps, batch_size, lr, warmup, minutes, threads, save_every, eval_every, amp, device, dev=None):
    from ..teachers.common import TeacherTrainConfig, resolve_device

    if steps is None:
        steps = 10**9 if minutes is not None else 3000
    return TeacherTrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        minutes=minutes,
        threads=threads,
        warmup_steps=min(warmup, max(1, steps // 10)),
        save_every_s=save_every * 60,
        eval_every=eval_every,
        amp=_checked_amp(amp),
        device=resolve_device(device),
    )


@teacher_app.command("bert")
@with_training_run_options
def bert(
    text: TextArg,
    tokenizer: TokOpt,
    out: OutOpt,
    arch: Annotated[
        str,
        typer.Option(
            help="modernbert (pre-norm, rotary; learns here) or bert (the paper's post-norm BERT, "
            "which sits on the unigram plateau at demo sizes on one CPU thread)."
        ),
    ] = "modernbert",
    size: SizeOpt = "demo",
    layers: Annotated[int | None, typer.Option(help="Override the size's layer count.")] = None,
    hidden: Annotated[int | None, typer.Option(help="Override the size's hidden width.")] = None,
    heads: Annotated[int | None, typer.Option(help="Override the size's attention heads.")] = None,
    window: Annotated[int, typer.Option(help="Tokens per training window (and the context window).")] = 256,
    steps: StepsOpt = None,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 16,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate \\[default: 1e-3 modernbert, 5e-4 bert].")
    ] = None,
    warmup: WarmupOpt = 200,
    mask_prob: Annotated[float, typer.Option(help="Share of tokens predicted (80% <mask>, 10% random).")] = 0.15,
    dropout: Annotated[float | None, typer.Option(help="Dropout \\[default: 0 modernbert, 0.1 bert].")] = None,
    run: dict | None = None,
) -> None:
    """Pretrain a BERT teacher (masked LM only, no NSP/CLS/SEP) on whole-document windows of the
    ASR's units; saved with save_pretrained plus tokenizer.model, loadable by --teacher and
    exportable by `kdasr export-lm --bert`.

    Resumable: OUT/train_state.pt is written atomically every --save-every minutes; re-run the same
    command after a kill and it continues (--minutes counts the time of all runs). OUT/train_log.csv
    holds step, elapsed, lr, loss and (every --eval-every steps, with --dev) the dev MLM loss.
    Schedule: warmup, constant, linear decay over the last 20% of the budget (steps or minutes,
    whichever runs out first), so a --minutes run decays when its time is nearly spent.

    Example: kdasr teacher bert data/v2/teacher.txt --tokenizer data/v1/tokenizer.model \\
    --out exp/teachers/bert --window 128 --minutes 240 --threads 1 --dev data/v1/dev.jsonl
    """
    from ..teachers.bert import ARCHS, BertConfigLite
    from ..teachers.run import run_bert_teacher
    from ..teachers.whisper_vocab import is_whisper

    if arch not in ARCHS:
        raise typer.BadParameter(f"--arch must be one of {', '.join(ARCHS)}")
    n_layers, n_hidden, n_heads, ff = _sizes(size, layers, hidden, heads)
    cfg = BertConfigLite(
        layers=n_layers,
        hidden=n_hidden,
        heads=n_heads,
        ff_dim=ff,
        window=window,
        dropout=dropout,
        arch=arch,
        mask_prob=mask_prob,
    )
    peak = lr if lr is not None else (1e-3 if arch == "modernbert" else 5e-4)
    with user_errors():
        tcfg = _train_cfg(steps, batch_size, peak, warmup, **run)
        if is_whisper(tokenizer):  # over the whisper ids of the text (teachers/whisper_teacher.py)
            from ..teachers.whisper_teacher import run_whisper_bert_teacher as run_bert_teacher
        summary = run_bert_teacher(text, tokenizer, out, cfg, tcfg, run["dev"])
    _echo_saved(out, summary)


@teacher_app.command("lm")
@with_training_run_options
def lm(
    text: TextArg,
    tokenizer: TokOpt,
    out: OutOpt,
    size: SizeOpt = "demo",
    layers: Annotated[int | None, typer.Option(help="Override the size's layer count.")] = None,
    hidden: Annotated[int | None, typer.Option(help="Override the size's model width.")] = None,
    heads: Annotated[int | None, typer.Option(help="Override the size's attention heads.")] = None,
    steps: StepsOpt = None,
    batch_size: Annotated[int, typer.Option(help="Sentences per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    warmup: WarmupOpt = 200,
    run: dict | None = None,
) -> None:
    """Train a left-to-right Transformer LM teacher on the ASR's units (also used for shallow
    fusion and rescoring); saved as OUT/lm.pt. Resumable, logged and scheduled like `kdasr
    teacher bert` (OUT/train_state.pt, OUT/train_log.csv; dev loss = log dev perplexity).

    Example: kdasr teacher lm data/v2/teacher.txt --tokenizer data/v1/tokenizer.model \\
    --out exp/teachers/lm --minutes 120 --threads 1 --dev data/v1/dev.jsonl
    """
    from ..models.lm import LMConfig
    from ..teachers.run import run_lm_teacher
    from ..text import Tokenizer

    n_layers, n_hidden, n_heads, ff = _sizes(size, layers, hidden, heads)
    from ..teachers.whisper_vocab import is_whisper

    with user_errors():
        if is_whisper(tokenizer):  # over the whisper ids of the text (teachers/whisper_teacher.py)
            from ..teachers.whisper_teacher import run_whisper_lm_teacher

            tcfg = _train_cfg(steps, batch_size, lr, warmup, **run)
            summary = run_whisper_lm_teacher(text, str(tokenizer), out, (n_layers, n_hidden, n_heads, ff), tcfg,
                                             run["dev"])
            _echo_saved(out, summary)
            return
        vocab = Tokenizer(tokenizer).vocab_size
        cfg = LMConfig(vocab_size=vocab, d_model=n_hidden, layers=n_layers, heads=n_heads, ff_dim=ff)
        tcfg = _train_cfg(steps, batch_size, lr, warmup, **run)
        summary = run_lm_teacher(text, tokenizer, out, cfg, tcfg, run["dev"])
    _echo_saved(out, summary)


@teacher_app.command("soft-labels")
def soft_labels(
    manifests: Annotated[list[Path], typer.Argument(help="Speech manifests whose transcripts get soft labels.")],
    tokenizer: TokOpt,
    teacher: Annotated[
        Path,
        typer.Option(
            help="BERT teacher dir (any local masked LM with the ASR's tokenizer.model), LM teacher dir (lm.pt), "
            "or count:TEXT, the two-sided unit count model p(u | left, right) of that teacher text (torch-free; "
            "for `kdasr train --kd count`)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Soft-label folder (shards + meta.json).")],
    mode: Annotated[
        str, typer.Option(help="BERT input: 'utterance' or 'context' (256-token document window).")
    ] = "utterance",
    top_k: Annotated[int, typer.Option(help="Entries kept per token.")] = 8,
    temperature: Annotated[float, typer.Option(help="Softmax temperature over the top K.")] = 3.0,
    window: Annotated[int, typer.Option(help="Context window in tokens.")] = 256,
    threads: ThreadsOpt = None,
    amp: AmpOpt = "none",
    device: DeviceOpt = "auto",
) -> None:
    """Write soft labels (top-K ids + float16 probs per transcript token) for KD training.
    Resumable: re-run the same command after an interruption and finished shards are kept.

    Example: kdasr teacher soft-labels data/demo/train.jsonl --tokenizer data/demo/tokenizer.model \\
    --teacher exp/teachers/bert --mode context --out exp/soft/bert-context

    The count model (a knowledge control): --teacher count:data/v2/teacher.txt --out exp/soft/count
    """
    from ..teachers.count_labels import count_teacher_text

    if (text := count_teacher_text(teacher)) is not None:  # numpy only: before anything imports torch
        count_soft_labels(manifests, tokenizer, text, out, mode, top_k, temperature)
        return
    from ..teachers.common import resolve_device
    from ..teachers.kd_mode import BERT_LABEL_MODES
    from ..teachers.run import run_soft_labels
    from ..teachers.soft_labels import SoftLabelConfig

    if mode not in BERT_LABEL_MODES:
        raise typer.BadParameter(f"--mode must be {' or '.join(map(repr, BERT_LABEL_MODES))}")
    cfg = SoftLabelConfig(mode=mode, top_k=top_k, temperature=temperature, window=window, amp=_checked_amp(amp))
    with user_errors():
        from ..teachers.whisper_teacher import is_whisper_teacher, run_whisper_soft_labels

        if is_whisper_teacher(teacher):  # ids over whisper's vocabulary (CPU)
            stats = run_whisper_soft_labels(manifests, str(tokenizer), teacher, out, cfg, threads=threads)
        else:
            stats = run_soft_labels(manifests, tokenizer, teacher, out, cfg, threads=threads,
                                    device=resolve_device(device))
    typer.echo(f"wrote {out}: {json.dumps(stats)}")


teacher_app.command("soft-derive")(soft_derive)
teacher_app.command("soft-stats")(soft_stats)


@teacher_app.command("quality")
def quality(
    tokenizer: TokOpt,
    dev: Annotated[Path, typer.Option(help="Dev text or manifest (its first --sentences sentences are scored).")],
    teacher_text: Annotated[Path, typer.Option(help="The teachers' training text: count baselines come from it.")],
    bert_teacher: Annotated[Path | None, typer.Option("--bert", help="BERT teacher directory.")] = None,
    lm_teacher: Annotated[Path | None, typer.Option("--lm", help="LM teacher directory.")] = None,
    soft_labels: Annotated[
        list[Path] | None, typer.Option(help="Soft-label folder(s) to check against --train's transcripts.")
    ] = None,
    train: Annotated[Path | None, typer.Option(help="The manifest the soft labels were made for.")] = None,
    sentences: Annotated[int, typer.Option(help="Dev sentences scored.")] = 200,
    report: Annotated[
        Path | None, typer.Option(help="Write the table here (Markdown, plus a .json beside it).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 unless every teacher given beats the count baselines.")] = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Are the teachers worth distilling from? BERT pseudo-perplexity and masked top-1, LM perplexity
    and top-1, and soft labels' reference-in-top-1/top-K shares, beside count baselines computed
    here over the same units from the teacher text (masked unigram, two-sided count model that
    predicts a unit from its two neighbours, unigram and bigram LMs). Per word too: every dev word
    masked whole, BERT's whole-word top-1 and first-unit top-1/top-8 beside word-level count
    baselines (its own verdict, `passed_words` in the JSON; --strict stays unit-level). Refuses a
    dev set that shares a sentence with the teacher text.

    Example: kdasr teacher quality --tokenizer data/v1/tokenizer.model --dev data/v1/dev.jsonl \\
    --teacher-text data/v2/teacher.txt --bert exp/teachers/bert --lm exp/teachers/lm \\
    --soft-labels exp/soft/bert-context --train data/v2/train.jsonl --report eval/reports/teacher-quality/run.md
    """
    import torch

    from ..teachers.quality import render_markdown, run_quality, write_report

    if threads:
        torch.set_num_threads(threads)
    with user_errors():
        rep = run_quality(
            tokenizer,
            dev,
            teacher_text,
            sentences,
            bert_teacher,
            lm_teacher,
            soft_labels or [],
            train,
            command=command_line(),
        )
        if report is not None:
            write_report(rep, report)
    typer.echo(render_markdown(rep))
    if strict and not rep.passed:
        raise typer.Exit(1)


@teacher_app.command("bench")
def bench(
    tokenizer: TokOpt,
    bert_teacher: Annotated[Path, typer.Option("--bert", help="BERT teacher directory.")],
    lm_teacher: Annotated[Path, typer.Option("--lm", help="LM teacher directory.")],
    train: Annotated[Path, typer.Option(help="Speech manifest for soft-label and KD-step timing.")],
    dev: Annotated[Path, typer.Option(help="Dev manifest for teacher perplexities.")],
    report: Annotated[Path, typer.Option(help="Markdown report to write (its records as JSON beside it).")] = Path(
        "eval/reports/teachers.md"
    ),
    utterances: Annotated[int, typer.Option(help="Utterances timed per soft-label method.")] = 40,
    config: Annotated[str, typer.Option(help="Student config for the KD step timing.")] = "demo",
    threads: ThreadsOpt = 1,
    repeats: Annotated[int, typer.Option(help="Interleaved runs per soft-label method; the fastest counts.")] = 2,
) -> None:
    """Benchmark the teachers side by side in one run and write a report: soft-label tokens/s
    (fast vs the paper code's straightforward way, equal labels checked), KD training step time
    vs the baseline, soft-label bytes per token, dev perplexities (BERT pseudo-PPL, LM PPL).

    Example: kdasr teacher bench --tokenizer data/demo/tokenizer.model --bert exp/teachers/bert \\
    --lm exp/teachers/lm --train data/demo/train.jsonl --dev data/demo/dev.jsonl
    """
    from ..teachers.bench import TeacherBenchConfig, run_bench
    from ..teachers.bench_report import write_teacher_bench
    from ..training.kd_bench import bench_kd_step
    from ..training.presets import read_preset

    cfg = TeacherBenchConfig(tokenizer, bert_teacher, lm_teacher, train, dev, utterances, config, threads, repeats,
                             command=command_line())
    with user_errors():
        preset = read_preset(config)  # the KD step's student; run_bench passes the name back
        text = write_teacher_bench(run_bench(cfg, kd_step=lambda tok, _name: bench_kd_step(tok, preset)),
                                   report, report.with_suffix(".json"))
    typer.echo(text)
