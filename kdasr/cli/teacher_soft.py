"""`kdasr teacher soft-derive` and `soft-stats`: commands on a finished soft-label folder, without the
teacher (torch-free); registered on `kdasr teacher` by kdasr/cli/teacher.py. And `kdasr teacher
soft-labels --teacher count:TEXT`'s torch-free path (the count model's labels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import user_errors


def soft_derive(
    source: Annotated[Path, typer.Argument(help="Finished soft-label folder (kdasr teacher soft-labels --out).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Soft-label folder to write (shards + meta.json).")],
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the derived labels.")],
    top_k: Annotated[int, typer.Option(help="Entries kept per token (at most the source's K).")],
) -> None:
    """Soft labels at another temperature and a smaller K, from a finished folder, without the teacher:
    the source's top K are softmax(logits / T_src), so p ∝ p_src^(T_src / T) over the first K gives what
    the teacher would have written (up to the source's float16 storage). One teacher pass at the
    largest K then serves a whole T × K sweep. Resumable; summary.json is written last.

    Example: kdasr teacher soft-derive exp/soft/bert-t1-k32 --temperature 3 --top-k 8 --out exp/soft/bert-t3-k8
    """
    from ..teachers.soft_derive import derive_soft_labels

    with user_errors():
        stats = derive_soft_labels(source, out, temperature, top_k)
    typer.echo(f"wrote {out}: {json.dumps(stats)}")


def soft_stats(
    folder: Annotated[Path, typer.Argument(help="Soft-label folder (kdasr teacher soft-labels --out).")],
    vocab_size: Annotated[
        int | None, typer.Option(help="The student's output units V (default: the folder's tokenizer's, meta.json).")
    ] = None,
    kd_smoothing: Annotated[
        float, typer.Option(help="σ of the soft target (1 − σ)·top-K + σ·uniform, as kdasr train --kd-smoothing.")
    ] = 0.1,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures here (JSON).")] = None,
) -> None:
    """How flat the soft targets are, over every token: mean entropy (nats) of the target the trainer
    builds, (1 − σ)·top-K + σ·uniform over V units, beside ln V; the teacher's top-K rows alone
    (entropy beside ln K, top-1 probability); K and T; and the label smoothing ε whose target
    (1 − ε)·one-hot + ε·uniform has the same entropy: the smoothing control's --label-smoothing.

    Example: kdasr teacher soft-stats exp/soft/bert-context --kd-smoothing 0.1 --json exp/soft/bert-context.stats.json
    """
    from ..io_utils import atomic_write_text
    from ..teachers.soft_stats import soft_stats as compute

    with user_errors():
        stats = compute(folder, vocab_size, kd_smoothing)
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(stats.to_dict(), indent=2) + "\n")
    typer.echo(stats.render())


def count_soft_labels(manifests: list[Path], tokenizer: Path, text: Path, out: Path, mode: str, top_k: int,
                      temperature: float) -> None:
    """`kdasr teacher soft-labels --teacher count:TEXT` (kdasr/teachers/count_labels.py)."""
    from ..teachers.count_labels import CountLabelConfig, run_count_soft_labels

    if mode != "utterance":
        raise typer.BadParameter("a count:TEXT teacher sees one unit on each side inside the utterance: "
                                 "--mode must be 'utterance'")
    with user_errors():
        stats = run_count_soft_labels(manifests, tokenizer, text, out, CountLabelConfig(top_k, temperature))
    typer.echo(f"wrote {out}: {json.dumps(stats)}")
