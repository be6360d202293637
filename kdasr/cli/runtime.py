"""`kdasr transcribe / eval / export / export-lm / bench`: thin commands over kdasr.runtime,
kdasr.eval and kdasr.export. Runtime commands import no torch (DESIGN.md §2); the decode flags
are declared once (decode_flags.py), default to "not given", and go over the model's recommended
decoding in `_transcriber_and_options`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..defaults import VAD_DEFAULT
from .data import command_line, user_errors
from .decode_flags import DECODING, with_decode_flags
from .progress import progress_bar

ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Model directory or installed model name (kdasr models; "
                              "default: $KDASR_MODEL, else demo-en).")
]
ThreadsOpt = Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores).")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu' or 'cuda' (needs the gpu extra).")]
PrecisionOpt = Annotated[str, typer.Option(help="Graphs to run: fp32, int8 (export --quantize int8) or fp16 (GPU).")]
LmOpt = Annotated[Path | None, typer.Option(help="Exported LM/BERT dir (kdasr export-lm); default: the model dir.")]
TRANSCRIBE_FLAGS = ("method", "beam", "nbest", "ctc_weight", "lm_weight", "length_bonus", "length_penalty", "rescore",
                    "rescore_weight", "max_segment", "batch_size", "pad", "pad_to")
TUNED_FILE = "tuned.json"  # a run's dev-tuned decoding, beside its checkpoints (kdasr tune --out RUN/tuned.json)
EVAL_FLAGS = ("method", "beam", "ctc_weight", "lm_weight", "length_bonus", "length_penalty", "rescore",
              "rescore_weight", "batch_size", "pad", "pad_to")


def _transcriber_and_options(model, device, threads, precision, lm, vad=None, **decode):
    """The Transcriber, and the decode flags given (DecodeOptions fields; None = not given) over
    the model's recommended decoding. `vad`: VadOptions or None (off: eval scores each manifest
    slice whole). Call inside `user_errors()`."""
    from ..runtime import Transcriber

    teacher = {"lm": lm, "bert": lm}  # one dir may hold lm.json and bert.json; each loads on first use
    t = Transcriber(model, device=device, threads=threads, precision=precision, vad=vad or False, **teacher)
    try:
        return t, t.recommended_options(**{k: v for k, v in decode.items() if v is not None})
    except ValueError as e:
        _bad_decoding(e)


def _bad_decoding(e: ValueError):
    """DecodeOptions' refusal of a flag (NaN, out of range): one line and the usage exit status."""
    typer.echo(f"error: invalid decoding option: {e}", err=True)
    raise typer.Exit(2)


def _check_recommended_decoding(decoding: dict) -> None:
    from ..decode_options import DecodeOptions

    try:
        DecodeOptions(**decoding)
    except ValueError as e:
        _bad_decoding(e)


@with_decode_flags(*TRANSCRIBE_FLAGS)
def transcribe(
    files: Annotated[
        list[str] | None,
        typer.Argument(help="Audio files, folders (searched recursively by audio extension), glob patterns "
                       "(quote them), or '-' to read one path per line from stdin."),
    ] = None,
    model: ModelOpt = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Also transcribe a JSONL manifest's items ('audio', optional 'id', "
                                  "'start', 'duration'); outputs are named by id.")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="text (path<TAB>text), txt (transcript only), jsonl, json, srt, vtt, "
                          "tsv; several joined by commas, or all (txt,vtt,srt,tsv,json): one file per format per "
                          "input, needs --output-dir.")
    ] = "text",
    language: Annotated[
        str | None, typer.Option(help="Language of the audio. Accepted when it is the model's (en for the shipped "
                                 "models), refused otherwise: the models are not multilingual.")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Write one output per input here, each as soon as it is done (names mirror the inputs' "
                     "paths under their common folder; needed for srt/vtt of several)."),
    ] = None,
    skip_existing: Annotated[
        bool, typer.Option(help="With --output-dir: skip inputs whose output exists (resume a killed batch).")
    ] = False,
    shard: Annotated[
        str | None, typer.Option(help="i/n: only every n-th input, starting at i (0 <= i < n): job arrays.")
    ] = None,
    vad: Annotated[
        bool, typer.Option(help="Voice-activity detection (Silero): decode only speech; silence gives empty text. "
                           "The library's default, the same for Transcriber(vad=...) and kdasr serve.")
    ] = VAD_DEFAULT,
    vad_threshold: Annotated[float, typer.Option(help="Speech probability at which the VAD starts a region.")] = 0.5,
    word_timestamps: Annotated[
        bool, typer.Option(help="Word start/end times and probabilities from the CTC head's alignment, in json/jsonl "
                           "segments ('words').")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary, no warnings.")] = False,
    lm: LmOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    ray: Annotated[
        str | None, typer.Option(help="Decode on Ray Data: auto, local, local:N (N CPUs) or a cluster address; "
                                 "same outputs (ray extra; see kdasr/runtime/ray_batch.py).")
    ] = None,
    ray_actors: Annotated[int | None, typer.Option(help="With --ray: Transcriber actors (default: CPUs/threads).")] = (
        None
    ),
    decode: dict | None = None,
) -> None:
    """Transcribe audio with an exported model (torch-free).

    Bad inputs get one `error:` line each on stderr, the others are still transcribed, and the
    exit status is 1 if any failed. Clipped or nearly silent inputs get a `warning:` line. A
    progress bar (on a terminal) and a one-line summary go to stderr.

    Example: kdasr transcribe talk.flac --beam 5 --ctc-weight 0.3 --format srt

    Example (resumable, 4 jobs): kdasr transcribe corpus/ --output-dir out --skip-existing --shard 0/4
    """
    import sys

    from ..inputs import expand_inputs, parse_shard, shown
    from ..inputs import shard as take_shard
    from ..runtime.batch_io import prepare_outputs
    from ..runtime.batch_run import run_batch
    from ..runtime.formats import SUBTITLES, parse_formats
    from ..runtime.vad import VadOptions

    try:
        formats = parse_formats(format)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="'--format'") from None
    if len(formats) > 1 and output_dir is None:
        raise typer.BadParameter(f"several formats ({', '.join(formats)}) need --output-dir: one file per format "
                                 "per input", param_hint="'--format'")
    if skip_existing and output_dir is None:
        raise typer.BadParameter("--skip-existing needs --output-dir")
    with user_errors():
        items = expand_inputs(files or [], manifest, sys.stdin if "-" in (files or []) else None)
        if not items:
            raise typer.BadParameter("nothing to transcribe: give files, folders, patterns, '-' or --manifest")
        if shard is not None:
            items = take_shard(items, *parse_shard(shard))
        if formats[0] in SUBTITLES and len(items) > 1 and output_dir is None:
            raise typer.BadParameter(f"--format {formats[0]} with several inputs needs --output-dir")
        outputs, skipped = None, 0
        if output_dir is not None:  # named, checked and resumed before the model loads
            items, outputs, skipped, orphans = prepare_outputs(items, output_dir, formats, skip_existing)
            if orphans and not quiet:
                typer.echo(f"removed {orphans} unfinished temp file(s) left by an interrupted run", err=True)
        t, opts = _transcriber_and_options(
            model,
            device,
            threads,
            precision,
            lm,
            vad=VadOptions(threshold=vad_threshold) if vad else None,
            **(decode or {}),
        )
        _check_language(language, t.model.spec.language)
        with progress_bar(items, quiet) as advance:

            def on_result(item, r) -> None:
                if not hasattr(r, "reason"):
                    for w in [] if quiet else r.warnings:
                        advance.echo(shown(f"warning: {r.source}: {w}"))
                else:
                    advance.echo(shown(f"error: {r.source}: {r.reason}"))
                advance()
                if ray is not None and not hasattr(r, "reason"):
                    advance.audio(r.duration)  # no per-chunk hook across Ray actors: by file

            t.progress = advance.audio  # the local Transcriber moves the bar as audio is decoded

            if ray is not None and word_timestamps:
                raise typer.BadParameter("--word-timestamps is not available with --ray")
            if ray is not None:  # the same run_batch; only the decoding moves to a Ray actor pool
                from ..runtime.ray_batch import RaySpec, RayTranscriber

                spec = RaySpec(ray, ray_actors, threads or 1)
                t = RayTranscriber(spec, dict(model_dir=t.model.model_dir.resolve(), device=device,
                                              precision=precision, lm=lm, bert=lm, vad=t.vad_options))
            # a file name that is not UTF-8 is printed as its own bytes (surrogateescape), never a crash
            summary = run_batch(t, items, opts, formats, outputs,
                                lambda text: typer.echo(text.encode("utf-8", "surrogateescape"), nl=False),
                                on_result, skipped, word_timestamps)
    if not quiet:
        typer.echo(summary.line(), err=True)
    if summary.failed:
        typer.echo(f"{summary.failed} of {summary.inputs} files failed", err=True)
        raise typer.Exit(1)


LANGUAGE_NAMES = {"en": "english"}  # what whisper-style clients send besides the code


def _check_language(given: str | None, model_language: str) -> None:
    if given and given.strip().lower() not in (model_language, LANGUAGE_NAMES.get(model_language)):
        raise typer.BadParameter(f"this model transcribes {model_language!r} only, not {given!r} (no multilingual "
                                 "models: omit --language or give the model's)", param_hint="'--language'")


@with_decode_flags(*EVAL_FLAGS)
def evaluate(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest with reference texts.")],
    model: ModelOpt = None,
    hyps: Annotated[Path | None, typer.Option(help="Write per-utterance hypotheses (JSONL) here.")] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
    lm: LmOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "fp32",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the scores, decoding and RTFx as "
                                                  "JSON here (input of report tables).")] = None,
    system: Annotated[str | None, typer.Option(help="Name of the system in --json (default: the model dir).")] = None,
    options: Annotated[Path | None, typer.Option(help="Decoding options file from `kdasr tune --out` (dev-chosen); "
                                                 "decode flags given here still win.")] = None,
    decode: dict | None = None,
) -> None:
    """Score a model on a manifest: WER and CER (jiwer), torch-free.

    Each utterance is its `start`/`duration` slice of the audio; references are normalised like
    training text. References with digits are not scored (warning lines); empty references count
    their hypothesis words as insertions. Unreadable audio: an `error:` line each, exit status 1.

    Example: kdasr eval --manifest data/demo/test_heldout.jsonl --beam 5 --ctc-weight 0.3
    """
    from ..eval.run import evaluate_manifest, problem_lines, summary_line
    from ..io_utils import remove_orphan_temps_of
    from ..runtime.batch_io import check_writable_file

    with user_errors():
        if hyps is not None:
            check_writable_file(hyps)  # before any decoding (the file itself is written atomically)
            remove_orphan_temps_of([hyps])  # what a killed run's write of it left
        decode = decode or {}
        if options is not None:
            from .paper import options_file_under_flags

            decode, lm = options_file_under_flags(ctx, options, decode, lm)
        t, opts = _transcriber_and_options(model, device, threads, precision, lm, **decode)
        t0 = time.perf_counter()
        report = evaluate_manifest(manifest, None, limit=limit, hyps_path=hyps, transcriber=t, opts=opts)
        if json_out is not None:
            from dataclasses import asdict

            from ..eval.results import result_record, write_result

            write_result(json_out, result_record(system or str(t.model.model_dir), manifest, report,
                                                 time.perf_counter() - t0, threads, limit=limit,
                                                 model=str(t.model.model_dir), decoding=asdict(opts),
                                                 options_file=str(options) if options else None,
                                                 command=command_line()))
    for line in problem_lines(report):
        typer.echo(line, err=True)
    typer.echo(summary_line(manifest, report))
    if report.failures:
        raise typer.Exit(1)


def _print_checks(checks, tolerance: float) -> bool:
    for c in checks:
        verdict = "reported" if c.informational else ("ok" if c.ok(tolerance) else "FAIL")
        typer.echo(
            f"check {c.graph}: max |torch - onnx| = {c.max_error:.2e} over {c.cases} {c.unit} "
            f"({verdict}, tolerance {tolerance * c.tolerance_factor:g})" + (f": {c.detail}" if c.detail else "")
        )
    return all(c.ok(tolerance) for c in checks)


QuantizeOpt = Annotated[
    list[str] | None, typer.Option("--quantize", help="Also write variants: int8 (CPU), fp16 (GPU). Repeatable.")
]


@with_decode_flags(*DECODING, recommend=True)
def export_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoint(s); several are averaged.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    check: Annotated[
        bool, typer.Option("--check", help="Compare every graph with torch; fail above --tolerance.")
    ] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
    quantize: QuantizeOpt = None,
    options: Annotated[
        Path | None, typer.Option(help="Decoding tuned on dev (kdasr tune --out FILE) to record as the recommendation; "
                                  f"decode flags given here win. Default: the run's {TUNED_FILE} beside the "
                                  "checkpoint when there is one.")
    ] = None,
    decode: dict | None = None,
) -> None:
    """Export a trained checkpoint to a model directory: encoder.onnx, decoder.onnx,
    tokenizer.model, model.json (and *.int8.onnx / *.fp16.onnx with --quantize).

    model.json records the decoding transcribe/eval/serve use unless told: the decode flags given,
    over --options (or the run's tuned.json, written by `kdasr tune --out CKPT_DIR/tuned.json`).
    Without any, none is recorded and the model decodes greedy; the command says so.

    Example: kdasr export exp/demo/epoch-9.pt exp/demo/epoch-10.pt --out export/demo-en --check --quantize int8 \\
    --beam 5 --ctc-weight 0.5
    """
    from ..export.pipeline import export_checkpoint

    with user_errors():
        decoding, source = _export_decoding(checkpoints, options, decode or {})
        _check_recommended_decoding(decoding)
        desc, checks = export_checkpoint(checkpoints, out_dir, check=check, quantize=quantize or (), decoding=decoding)
    typer.echo(f"wrote {out_dir}")
    recorded = desc.get("decoding") or {}
    if recorded:
        fields = ", ".join(f"{k}={v}" for k, v in recorded.items())
        typer.echo(f"recommended decoding recorded in model.json: {fields}" + (f" (from {source})" if source else ""))
    else:
        ckpt_dir = Path(checkpoints[0]).parent
        typer.echo(f"note: no decoding recorded: {out_dir} decodes greedy (beam 1, no CTC weight) unless told. "
                   f"Tune it on dev (kdasr tune --model {out_dir} --manifest DEV.jsonl --grid beam=1,5,10 --grid "
                   f"ctc_weight=0,0.3,0.5 --out {ckpt_dir / TUNED_FILE}) and export again, or give "
                   "--beam/--ctc-weight.", err=True)
    if not _print_checks(checks, tolerance):
        raise typer.Exit(1)


def _export_decoding(checkpoints: list[Path], options: Path | None, flags: dict) -> tuple[dict, str]:
    """(the decoding export records, where it came from): flags over --options; without both, the
    run's tuned.json beside the checkpoint when it exists."""
    from ..eval.tune import read_options

    tuned = Path(checkpoints[0]).parent / TUNED_FILE if checkpoints else None
    if options is None and not flags and tuned is not None and tuned.is_file():
        options = tuned
    base = read_options(options).decoding if options is not None else {}
    source = ", ".join(([f"{options}"] if options is not None else []) + (["flags"] if flags else []))
    return {**base, **flags}, source


def export_lm(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to write (a model directory, or its own).")],
    lm: Annotated[Path | None, typer.Option(help="LM teacher directory (lm.pt).")] = None,
    bert: Annotated[Path | None, typer.Option(help="BERT teacher directory (save_pretrained + tokenizer).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Compare with torch; fail above --tolerance.")] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
    quantize: QuantizeOpt = None,
) -> None:
    """Export the teachers for inference: lm.onnx (one step, KV cache in/out) for shallow fusion and
    rescoring, bert.onnx (masked-LM scoring) for pseudo-log-likelihood rescoring.

    Example: kdasr export-lm --lm exp/teachers/lm --bert exp/teachers/bert --out export/demo-en --check
    """
    from ..export.teacher_export import export_teachers

    with user_errors():
        checks = export_teachers(out_dir, lm, bert, check=check, quantize=quantize or ())
    typer.echo(f"wrote {out_dir}")
    if not _print_checks(checks, tolerance):
        raise typer.Exit(1)


def bench(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest: the audio benchmarked (and its CER).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown report to write, its records as JSON beside "
                                      "it (X.json). The repository's is eval/reports/runtime.md.")],
    model: ModelOpt = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Adds the torch-eager comparison (imports torch): the model's checkpoint (.pt) or an "
            "exported model dir (weights read back from its ONNX graphs), e.g. the --model dir itself."
        ),
    ] = None,
    lm: LmOpt = None,
    limit: Annotated[int, typer.Option(help="Utterances benchmarked.")] = 64,
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads of every engine benchmarked.")] = 2,
    long_file: Annotated[
        Path | None, typer.Option(help="A long recording for the segmentation timing and transcribe's peak RSS.")
    ] = None,
    note: Annotated[str, typer.Option(help="A line added to the report (e.g. 'machine busy with training').")] = "",
    repeats: Annotated[int, typer.Option(help="Each timing is the best of this many runs.")] = 1,
    system: Annotated[
        list[str] | None,
        typer.Option(help="NAME=MODEL_DIR[:OPTIONS.json] (repeatable): instead of the engine report, the systems' "
                     "decoding cost side by side (batch 1 and 16, p50/p95 latency), Markdown at --out and JSON "
                     "beside it (kdasr paper-table reads it); OPTIONS from kdasr tune."),
    ] = None,
) -> None:
    """Benchmark the runtime on one set of audio, side by side in one run: torch eager vs ORT fp32 vs
    int8, batch 1 vs 16, greedy vs beam vs the model's recommended decoding, fusion and rescoring,
    each beside its encoder alone, with a per-stage breakdown and the aimed-for ratios; peak RSS
    of `kdasr transcribe`. Torch is imported only for --checkpoint.

    Example: kdasr bench --model export/demo-en --checkpoint export/demo-en --manifest data/demo/test.jsonl
    --threads 1 --out runtime.md

    Example (systems): kdasr bench --manifest data/v2/test.jsonl --threads 1 --system baseline=export/baseline
    --system fusion=export/baseline:exp/tune/fusion.json --out eval/reports/paper-bench.md
    """
    from ..eval.bench import BenchConfig, run_bench

    command = command_line()
    if system:
        from .paper import bench_systems

        return bench_systems(ctx, system, manifest, out, checkpoint, limit, threads, repeats, note, command)
    cfg = BenchConfig(manifest, model, lm, limit, threads, long_file, note, repeats, command, str(checkpoint or ""))
    with user_errors():
        reference = None
        if checkpoint is not None:
            from ..models.reference_decode import TorchEagerEngine  # the bench's only torch import

            reference = TorchEagerEngine.load(checkpoint, threads)
        record = run_bench(cfg, reference, progress=lambda msg: typer.echo(msg, err=True))
    from ..eval.bench_report import write_runtime_bench

    write_runtime_bench(record, out, out.with_suffix(".json"))
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}")


def register(app: typer.Typer) -> None:
    app.command()(transcribe)
    app.command("eval")(evaluate)
    app.command("export")(export_cmd)
    app.command("export-lm")(export_lm)
    app.command("bench")(bench)
