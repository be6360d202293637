"""`kdasr claim-table`: systems trained with several seeds, compared with intervals over seeds and
utterances together; `kdasr claim-verdicts`: which of the paper's claims those numbers support.
Torch-free; thin over kdasr.reports.claim_table and kdasr.reports.claim_verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command_line, user_errors


def claim_table(
    results: Annotated[
        list[Path], typer.Argument(help="Result records (`kdasr eval --json`) or folders of them (searched "
                                   "recursively; other JSON skipped). Each names its seed: --system SYSTEM@sN "
                                   "(e.g. ce@s1, ce@s2), or a 'seed' field in the record.")
    ],
    baseline: Annotated[str, typer.Option(help="System name of the baseline, without @sN (listed first).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown to write.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the same numbers as JSON here.")] = None,
    protocol_block: Annotated[
        Path | None, typer.Option(help="Protocol file shown verbatim at the top of the table.")
    ] = None,
    sets: Annotated[
        str | None, typer.Option(help="Comma-separated evaluation sets, in order (default: every set the records "
                                 "hold).")
    ] = None,
    systems: Annotated[
        str | None, typer.Option(help="Comma-separated systems (rows), in order; others left out (default: all, "
                                 "baseline first). Each pair reads 'later vs earlier'.")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap draws.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (numpy).")] = 0,
) -> None:
    """Systems × training seeds: WER mean ± sd over seeds per set, and per set every pair of systems
    compared by the relative WER change with a 95 % interval from a bootstrap that resamples seeds
    and utterances together, and P(WER A < WER B); a reading line per pair whose interval excludes 0.

    Seeds: a record written by `kdasr eval --system ce@s2 --json ...` is system ce, seed 2 (or give
    the record a 'seed' field). Every seed of every system must score the same utterances of a set.

    Example: kdasr claim-table exp/claim/results --baseline ce --sets dev,test,test_real
    --protocol-block exp/claim/protocol.json --out eval/reports/claim-table.md --json eval/reports/claim-table.json
    """
    import json

    from ..errors import KdasrError
    from ..io_utils import atomic_write_text
    from ..reports.claim_table import ClaimConfig, build_claim, load_seeded

    if resamples < 1000:
        raise typer.BadParameter("--resamples must be at least 1000")
    with user_errors():
        text = None
        if protocol_block is not None:
            try:
                text = protocol_block.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise KdasrError(f"{protocol_block}: cannot read the protocol block: {e}") from None
        chosen = tuple(s for s in sets.split(",") if s) if sets else None
        rows = tuple(s for s in systems.split(",") if s) if systems else None
        cfg = ClaimConfig(baseline, chosen, rows, text, str(protocol_block) if protocol_block else None,
                          command_line(), resamples, seed)
        claim = build_claim(load_seeded(results), cfg)
        atomic_write_text(out, claim.markdown)
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(claim.doc, indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {out}" + (f" and {json_out}" if json_out else ""))


def claim_verdicts(
    claim_json: Annotated[
        Path, typer.Argument(metavar="CLAIM_TEST_JSON",
                             help="The test sets' claim table as JSON (`kdasr claim-table --json`).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown to write.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the verdicts as JSON here.")] = None,
    bench: Annotated[
        Path | None, typer.Option(help="A `kdasr bench --system` JSON of the alternatives beside their students "
                                  "(the inference-cost claim; without it that claim says not measured).")
    ] = None,
    choices: Annotated[
        Path | None, typer.Option(help="The claim recipe's EXP/choices.json: what was tried on dev, and best-kd.")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="The CE baseline (default: the table's baseline).")] = None,
    smoothing: Annotated[str, typer.Option(help="The label-smoothing control system.")] = "smoothing-control",
    lm_kd: Annotated[str, typer.Option(help="The LM-KD system.")] = "lm-kd",
    utterance: Annotated[str, typer.Option(help="The utterance BERT-KD system.")] = "bert-utterance",
    context: Annotated[str, typer.Option(help="The context BERT-KD system.")] = "bert-context",
    best_kd: Annotated[
        str | None, typer.Option(help="The KD student the alternatives ran on (default: best-kd of --choices, else "
                                 "the one non-baseline STUDENT of the STUDENT+METHOD systems).")
    ] = None,
) -> None:
    """Which claims of Futami et al. 2020 hold on our data: one bullet per claim with a verdict per test
    set — holds (the interval of the relative WER change lies below 0), does not hold (above 0), not
    resolved (it includes 0) — and over the sets by a rule stated in the output (holds on more than half
    of the sets and contradicted on none). Every verdict is read from the claim table's numbers, never
    typed. Claims: BERT-KD vs CE; context vs utterance; BERT-KD vs LM-KD; BERT-KD vs the smoothing
    control; inference cost (from --bench); KD vs fusion and rescoring; KD + fusion vs CE + fusion.
    A system without records makes its claim 'not measured'. Then what was tried (from --choices).

    Example: kdasr claim-verdicts exp/claim/report/claim-test.json --bench exp/claim/report/bench.json
    --choices exp/claim/choices.json --out exp/claim/report/verdicts.md --json exp/claim/report/verdicts.json
    """
    import json

    from ..errors import KdasrError
    from ..io_utils import atomic_write_text
    from ..reports.claim_verdicts import Roles, build_verdicts, load_bench, load_choices, load_table

    with user_errors():
        table, bench_doc, choices_doc = load_table(claim_json), load_bench(bench), load_choices(choices)
        roles = Roles(baseline, smoothing, lm_kd, utterance, context, best_kd)
        sources = {"claim_table": str(claim_json), "bench": str(bench) if bench else None,
                   "choices": str(choices) if choices else None}
        try:
            verdicts = build_verdicts(table, roles, bench_doc, choices_doc, sources, command_line())
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field of the wrong kind
            named = ", ".join(f for f in sources.values() if f)
            raise KdasrError(f"{named}: a malformed field ({e.__class__.__name__}: {e})") from None
        atomic_write_text(out, verdicts.markdown)
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(verdicts.doc, indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {out}" + (f" and {json_out}" if json_out else ""))


def register(app: typer.Typer) -> None:
    app.command("claim-table")(claim_table)
    app.command("claim-verdicts")(claim_verdicts)
