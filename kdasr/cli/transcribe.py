"""`kdasr transcribe` and `kdasr eval`: thin commands over kdasr.runtime and kdasr.eval. They import
no torch (DESIGN.md §2); the decode flags
come from the DecodeOptions fields (decode_flags.py), default to "not given", and go over the model's recommended
decoding in `_transcriber_and_options`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..defaults import VAD_DEFAULT
from ..spec.decode_options import EVAL, TRANSCRIBE
from .common import DeviceOpt, LmOpt, ModelOpt, PrecisionOpt, ThreadsOpt, bad_decoding, command_line, user_errors
from .decode_flags import with_decode_flags
from .progress import progress_bar


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
        bad_decoding(e)


@with_decode_flags(TRANSCRIBE)
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
    precision: PrecisionOpt = None,
    ray: Annotated[
        str | None, typer.Option(help="Decode on Ray Data: auto, local, local:N (N CPUs) or a cluster address; "
                                 "same outputs (ray extra; see kdasr/runtime/jobs/ray_batch.py).")
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

    from ..runtime import Failure
    from ..runtime.jobs.batch_io import prepare_outputs
    from ..runtime.jobs.batch_run import run_batch
    from ..runtime.jobs.formats import SUBTITLES, parse_formats
    from ..runtime.jobs.inputs import expand_inputs, parse_shard, shown
    from ..runtime.jobs.inputs import shard as take_shard
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
                if not isinstance(r, Failure):
                    for w in [] if quiet else r.warnings:
                        advance.echo(shown(f"warning: {r.source}: {w}"))
                else:
                    advance.echo(shown(f"error: {r.source}: {r.reason}"))
                advance()
                if ray is not None and not isinstance(r, Failure):
                    advance.audio(r.duration)  # no per-chunk hook across Ray actors: by file

            t.progress = advance.audio  # the local Transcriber moves the bar as audio is decoded

            if ray is not None and word_timestamps:
                raise typer.BadParameter("--word-timestamps is not available with --ray")
            if ray is not None:  # the same run_batch; only the decoding moves to a Ray actor pool
                from ..runtime.jobs.ray_batch import RaySpec, RayTranscriber

                spec = RaySpec(ray, ray_actors, threads or 1)
                t = RayTranscriber(spec, dict(model_dir=t.model.model_dir.resolve(), device=device,
                                              precision=t.model.precision, lm=lm, bert=lm, vad=t.vad_options))
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


@with_decode_flags(EVAL)
def evaluate(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest with reference texts.")],
    model: ModelOpt = None,
    hyps: Annotated[Path | None, typer.Option(help="Write per-utterance hypotheses (JSONL) here.")] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
    lm: LmOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = None,
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
    from ..runtime.jobs.batch_io import check_writable_file

    with user_errors():
        if hyps is not None:
            check_writable_file(hyps)  # before any decoding (the file itself is written atomically)
            remove_orphan_temps_of([hyps])  # what a killed run's write of it left
        decode = decode or {}
        if options is not None:
            from .common import options_file_under_flags

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
                                                 device=device, precision=t.model.precision,
                                                 options_file=str(options) if options else None,
                                                 command=command_line()))
    for line in problem_lines(report):
        typer.echo(line, err=True)
    typer.echo(summary_line(manifest, report))
    if report.failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(transcribe)
    app.command("eval")(evaluate)
