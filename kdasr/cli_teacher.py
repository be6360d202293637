"""`kdasr teacher ...`: train the BERT and LM teachers, write soft labels, benchmark them.
Thin: parse, call kdasr.teachers, print. Imports happen inside each command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_data import user_errors

teacher_app = typer.Typer(help="Teachers for distillation: BERT, Transformer LM, soft labels.", no_args_is_help=True)

# (layers, hidden, heads, ff) per size; "paper" is Futami et al.'s BERT
SIZES = {"paper": (6, 512, 8, 2048), "demo": (4, 256, 4, 1024), "tiny": (2, 32, 2, 64)}

TextArg = Annotated[
    Path,
    typer.Argument(
        help="Teacher text: .jsonl documents ({doc, sentences}) or a manifest, "
        "or .txt (one sentence a line, blank line between documents)."
    ),
]
TokOpt = Annotated[Path, typer.Option(help="The ASR's sentencepiece model.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Teacher directory to write.")]
SizeOpt = Annotated[str, typer.Option(help="paper (6x512, 8 heads), demo (4x256, 4 heads) or tiny (2x32, tests).")]
DevOpt = Annotated[Path | None, typer.Option(help="Dev text or manifest: perplexity reported after training.")]
StepsOpt = Annotated[int, typer.Option(help="Optimiser steps.")]
MinutesOpt = Annotated[float | None, typer.Option(help="Stop after this many minutes.")]
ThreadsOpt = Annotated[int | None, typer.Option(help="torch threads.")]


def _sizes(size: str, layers, hidden, heads) -> tuple[int, int, int, int]:
    if size not in SIZES:
        raise typer.BadParameter(f"--size must be one of {', '.join(SIZES)}")
    l_, h, n, ff = SIZES[size]
    hidden = hidden or h
    return layers or l_, hidden, heads or n, ff * hidden // h


@teacher_app.command("bert")
def bert(
    text: TextArg,
    tokenizer: TokOpt,
    out: OutOpt,
    size: SizeOpt = "demo",
    layers: Annotated[int | None, typer.Option(help="Override the size's layer count.")] = None,
    hidden: Annotated[int | None, typer.Option(help="Override the size's hidden width.")] = None,
    heads: Annotated[int | None, typer.Option(help="Override the size's attention heads.")] = None,
    window: Annotated[int, typer.Option(help="Tokens per training window (and the context window).")] = 256,
    steps: StepsOpt = 3000,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-4,
    minutes: MinutesOpt = None,
    threads: ThreadsOpt = None,
    dev: DevOpt = None,
) -> None:
    """Pretrain a BERT teacher (masked LM only, no NSP/CLS/SEP) on whole-document windows of the
    ASR's units; saved with save_pretrained plus tokenizer.model.

    Example: kdasr teacher bert data/demo/teacher.jsonl --tokenizer data/demo/tokenizer.model \\
    --out exp/teachers/bert --size demo --minutes 30 --dev data/demo/dev.jsonl
    """
    from .teachers.bert import BertConfigLite
    from .teachers.common import TeacherTrainConfig
    from .teachers.run import run_bert_teacher

    n_layers, n_hidden, n_heads, ff = _sizes(size, layers, hidden, heads)
    cfg = BertConfigLite(layers=n_layers, hidden=n_hidden, heads=n_heads, ff_dim=ff, window=window)
    tcfg = TeacherTrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        minutes=minutes,
        threads=threads,
        warmup_steps=min(200, max(1, steps // 10)),
    )
    with user_errors():
        summary = run_bert_teacher(text, tokenizer, out, cfg, tcfg, dev)
    typer.echo(f"wrote {out}: {json.dumps({k: v for k, v in summary.items() if k != 'config'})}")


@teacher_app.command("lm")
def lm(
    text: TextArg,
    tokenizer: TokOpt,
    out: OutOpt,
    size: SizeOpt = "demo",
    layers: Annotated[int | None, typer.Option(help="Override the size's layer count.")] = None,
    hidden: Annotated[int | None, typer.Option(help="Override the size's model width.")] = None,
    heads: Annotated[int | None, typer.Option(help="Override the size's attention heads.")] = None,
    steps: StepsOpt = 3000,
    batch_size: Annotated[int, typer.Option(help="Sentences per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    minutes: MinutesOpt = None,
    threads: ThreadsOpt = None,
    dev: DevOpt = None,
) -> None:
    """Train a left-to-right Transformer LM teacher on the ASR's units (also used for shallow
    fusion and rescoring); saved as OUT/lm.pt.

    Example: kdasr teacher lm data/demo/teacher.jsonl --tokenizer data/demo/tokenizer.model \\
    --out exp/teachers/lm --minutes 20 --dev data/demo/dev.jsonl
    """
    from .models.lm import LMConfig
    from .teachers.common import TeacherTrainConfig
    from .teachers.run import run_lm_teacher
    from .text import Tokenizer

    n_layers, n_hidden, n_heads, ff = _sizes(size, layers, hidden, heads)
    with user_errors():
        vocab = Tokenizer(tokenizer).vocab_size
        cfg = LMConfig(vocab_size=vocab, d_model=n_hidden, layers=n_layers, heads=n_heads, ff_dim=ff)
        tcfg = TeacherTrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            minutes=minutes,
            threads=threads,
            warmup_steps=min(200, max(1, steps // 10)),
        )
        summary = run_lm_teacher(text, tokenizer, out, cfg, tcfg, dev)
    typer.echo(f"wrote {out}: {json.dumps({k: v for k, v in summary.items() if k != 'config'})}")


@teacher_app.command("soft-labels")
def soft_labels(
    manifests: Annotated[list[Path], typer.Argument(help="Speech manifests whose transcripts get soft labels.")],
    tokenizer: TokOpt,
    teacher: Annotated[
        Path,
        typer.Option(
            help="BERT teacher dir (any local masked LM with the ASR's tokenizer.model) or LM teacher dir (lm.pt)."
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
) -> None:
    """Write soft labels (top-K ids + float16 probs per transcript token) for KD training.
    Resumable: re-run the same command after an interruption and finished shards are kept.

    Example: kdasr teacher soft-labels data/demo/train.jsonl --tokenizer data/demo/tokenizer.model \\
    --teacher exp/teachers/bert --mode context --out exp/soft/bert-context
    """
    from .teachers.run import run_soft_labels
    from .teachers.soft_labels import SoftLabelConfig

    if mode not in ("utterance", "context"):
        raise typer.BadParameter("--mode must be 'utterance' or 'context'")
    cfg = SoftLabelConfig(mode=mode, top_k=top_k, temperature=temperature, window=window)
    with user_errors():
        stats = run_soft_labels(manifests, tokenizer, teacher, out, cfg, threads=threads)
    typer.echo(f"wrote {out}: {json.dumps(stats)}")


@teacher_app.command("bench")
def bench(
    tokenizer: TokOpt,
    bert_teacher: Annotated[Path, typer.Option("--bert", help="BERT teacher directory.")],
    lm_teacher: Annotated[Path, typer.Option("--lm", help="LM teacher directory.")],
    train: Annotated[Path, typer.Option(help="Speech manifest for soft-label and KD-step timing.")],
    dev: Annotated[Path, typer.Option(help="Dev manifest for teacher perplexities.")],
    report: Annotated[Path, typer.Option(help="Markdown report to write.")] = Path("eval/reports/teachers.md"),
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
    from .teachers.bench import run_bench

    with user_errors():
        text = run_bench(
            tokenizer,
            bert_teacher,
            lm_teacher,
            train,
            dev,
            report,
            utterances,
            config,
            threads,
            repeats,
            command="kdasr " + " ".join(sys.argv[1:]),
        )
    typer.echo(text)
