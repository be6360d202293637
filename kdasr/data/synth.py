"""`kdasr data synth`: build the synthetic demo corpus (teacher text + TTS speech manifests).

Output folder layout:
  text/documents.v1.jsonl    cached extracted documents (WEB + Austen)
  teacher.jsonl, teacher.txt text-only split for the LM/BERT teachers
  train.jsonl                speech split, each sentence x voices_per_sentence seen voices, augmented
  dev.jsonl, test.jsonl      one clean utterance per sentence, seen voices
  test_heldout.jsonl         the test sentences again, spoken by held-out voices only
  audio/<split>/<id>.flac    16 kHz mono 16-bit audio (not committed)

Deterministic from the seed: each sentence's voices and each utterance's augmentation
come from rngs seeded by (seed, id). Resumable: existing audio files are kept, and each
manifest is written atomically once its split is complete.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from kdasr.data.synthesize import RenderJob, plan_augment, render_chunk, utt_rng
from kdasr.data.textcorpus import Document, cap_sentences, load_documents, require_program, split_documents
from kdasr.data.voices import Voice, draw_voice, draw_voices
from kdasr.errors import KdasrError
from kdasr.io_utils import atomic_write_text

SPEECH_SPLITS = ("train", "dev", "test", "test_heldout")
SPEECH_SPLITS_V2 = (*SPEECH_SPLITS, "test_neural_heldout", "test_noisy")
NEURAL_HELDOUT_EVERY = 5  # test_neural_heldout speaks every 5th test sentence (Kokoro is slow)
CHUNK = 16  # utterances per worker task: amortises festival start-up, keeps progress smooth
TOOLS = (("espeak-ng", "espeak-ng"), ("flite", "flite"),
         ("festival", "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"))


@dataclass(frozen=True)
class _Planned:
    job: RenderJob
    doc: str
    pos: int


def _slug(doc_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", doc_id.lower()).strip("_")


def _plan_split(split: str, docs: list[Document], seed: int, out_dir: Path, vps: int) -> list[_Planned]:
    """Voices and augmentation for every utterance of one split (cheap, no audio)."""
    planned: list[_Planned] = []
    for d in docs:
        for pos, text in enumerate(d.sentences):
            base = f"{_slug(d.id)}-{pos:03d}"
            voices: list[tuple[str, Voice]]
            if split == "train":
                vs = draw_voices(utt_rng(seed, "voices:" + base), vps)
                voices = [(f"{base}-{k}", v) for k, v in enumerate(vs)]
            elif split == "test_heldout":
                voices = [(f"{base}-h", draw_voice(utt_rng(seed, "voice:" + base + "-h"), held_out=True))]
            else:
                voices = [(base, draw_voice(utt_rng(seed, "voice:" + base)))]
            for uid, v in voices:
                aug = plan_augment(utt_rng(seed, uid), train=split == "train")
                path = out_dir / "audio" / split / f"{uid}.flac"
                planned.append(_Planned(RenderJob(uid, text, v, path, aug, seed), d.id, pos))
    return planned


def _plan_split_v2(split: str, docs: list[Document], seed: int, out_dir: Path, vps: int) -> list[_Planned]:
    """Corpus v2: seen voices from voices_v2 (classic + hibari + Kokoro blends), v2 conditions."""
    from kdasr.data.conditions import plan_conditions
    from kdasr.data.voices_v2 import draw_kokoro, draw_voice_v2, draw_voices_v2

    planned: list[_Planned] = []
    noise_dir = out_dir / "noise"
    k = 0
    for d in docs:
        for pos, text in enumerate(d.sentences):
            base = f"{_slug(d.id)}-{pos:03d}"
            if split == "train":
                vs = draw_voices_v2(utt_rng(seed, "voices:" + base), vps)
                voices = [(f"{base}-{i}", v) for i, v in enumerate(vs)]
            elif split == "test_heldout":
                voices = [(f"{base}-h", draw_voice(utt_rng(seed, "voice:" + base + "-h"), held_out=True))]
            elif split == "test_neural_heldout":
                k += 1
                if (k - 1) % NEURAL_HELDOUT_EVERY:
                    continue
                voices = [(f"{base}-nh", draw_kokoro(utt_rng(seed, "voice:" + base + "-nh"), held_out=True))]
            else:  # dev, test, and test_noisy (the test sentence in the test voice, in noise)
                uid = base if split != "test_noisy" else f"{base}-n"
                voices = [(uid, draw_voice_v2(utt_rng(seed, "voice:" + base)))]
            kind = {"train": "train", "test_noisy": "noisy"}.get(split, "clean")
            for uid, v in voices:
                cond = plan_conditions(utt_rng(seed, "cond:" + uid), kind)
                path = out_dir / "audio" / split / f"{uid}.flac"
                planned.append(_Planned(RenderJob(uid, text, v, path, cond, seed, noise_dir), d.id, pos))
    return planned


def _manifest_rows(planned: list[_Planned], durations: dict[str, float], out_dir: Path) -> list[dict]:
    rows = []
    for p in planned:
        j = p.job
        rows.append({
            "id": j.id, "audio": j.out_path.relative_to(out_dir).as_posix(), "text": j.text,
            "duration": round(durations[j.id], 4), "speaker": j.voice.speaker, "doc": p.doc, "pos": p.pos,
            "start": 0.0, "engine": j.voice.engine, "voice": j.voice.describe(), "augment": j.augment.label(),
        })
        if j.voice.engine == "kokoro":
            rows[-1]["blend"] = j.voice.name
    return rows


def _write_manifest(path: Path, rows: list[dict]) -> None:
    try:
        from kdasr.data.manifest import Utterance, write_manifest
    except ImportError:  # manifest module not available: same keys, written directly
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        return
    keys = ("id", "audio", "text", "duration", "speaker", "doc", "pos", "start")
    utts = [Utterance(**{k: r[k] for k in keys if k != "audio"}, audio=str(path.parent / r["audio"]),
                      extra={k: v for k, v in r.items() if k not in keys}) for r in rows]
    write_manifest(path, utts)


def _write_teacher(out_dir: Path, docs: list[Document]) -> None:
    atomic_write_text(out_dir / "teacher.jsonl", "".join(
        json.dumps({"doc": d.id, "sentences": list(d.sentences)}) + "\n" for d in docs))
    # one sentence a line, a blank line between documents (what `kdasr teacher --help` promises)
    atomic_write_text(out_dir / "teacher.txt", "\n".join("".join(s + "\n" for s in d.sentences) for d in docs))


def check_tools() -> None:
    """Fail early, naming the missing program and its apt-get package."""
    for program, package in TOOLS:
        require_program(program, package)


def _render_failed(chunk: list[RenderJob], e: BaseException) -> KdasrError:
    """One error line for a chunk that failed in an unexpected way (a tool, a package's cache, the disk):
    which utterances, what went wrong, and that a rerun resumes (every finished clip is on disk)."""
    if isinstance(e, KdasrError):
        return e
    return KdasrError(f"rendering {chunk[0].id} .. {chunk[-1].id} ({chunk[0].out_path.parent}) failed: "
                      f"{type(e).__name__}: {e}; the clips written so far are kept, rerun the same command "
                      "to go on")


def _render(todo: list[RenderJob], pool: ProcessPoolExecutor | None, advance) -> dict[str, float]:
    chunks = [todo[i: i + CHUNK] for i in range(0, len(todo), CHUNK)]
    out: dict[str, float] = {}
    if pool is None:
        for c in chunks:
            try:
                out.update(render_chunk(c))
            except Exception as e:
                raise _render_failed(c, e) from e
            advance(len(c))
        return out
    futures: dict[Future, list[RenderJob]] = {pool.submit(render_chunk, c): c for c in chunks}
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for f in done:
            if (e := f.exception()) is not None:
                for p in pending:
                    p.cancel()
                raise _render_failed(futures[f], e) from e
            out.update(f.result())
            advance(len(futures[f]))
    return out


def synth_corpus(
    out_dir: Path,
    *,
    seed: int = 0,
    jobs: int = os.cpu_count() or 1,
    voices_per_sentence: int = 2,
    max_train_sentences: int | None = None,
    max_eval_sentences: int | None = None,
    progress: bool = True,
    version: int = 2,
) -> dict:
    """Build (or resume) the demo corpus in out_dir; returns a summary per split.

    version 1: WEB + Austen, Debian engines (the corpus of the first shipped models).
    version 2: + SOTU, Moby-Dick, TDavid text; + hibari and Kokoro voices; real-world conditions;
    test_neural_heldout and test_noisy (kdasr.data.text_v2, voices_v2, conditions).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if version not in (1, 2):
        raise KdasrError(f"unknown corpus version {version} (1 or 2)")
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_tools()
    leak_stats: dict = {}
    if version == 1:
        splits = split_documents(load_documents(out_dir / "text"))
        speech_splits, plan = SPEECH_SPLITS, _plan_split
    else:
        from kdasr.data.neural_tts import check_neural_packages
        from kdasr.data.text_v2 import load_documents_v2, split_documents_v2

        check_neural_packages()
        require_program("sox", "sox")
        splits, leak_stats = split_documents_v2(load_documents_v2(out_dir / "text"))
        speech_splits, plan = SPEECH_SPLITS_V2, _plan_split_v2
    _write_teacher(out_dir, splits["teacher"])
    docs = {
        "train": cap_sentences(splits["speech"], max_train_sentences),
        "dev": cap_sentences(splits["dev"], max_eval_sentences),
        "test": cap_sentences(splits["test"], max_eval_sentences),
    }
    for derived in speech_splits[3:]:
        docs[derived] = docs["test"]
    plans = {s: plan(s, docs[s], seed, out_dir, voices_per_sentence) for s in speech_splits}

    summary: dict = {"out_dir": str(out_dir), "seed": seed, "version": version, "splits": {}, "teacher": {
        "documents": len(splits["teacher"]), "sentences": sum(len(d.sentences) for d in splits["teacher"])}}
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    bar = Progress(TextColumn("{task.description:>20}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), disable=not progress)
    hours_by_engine: dict[str, dict[str, float]] = {}
    try:
        with bar:
            for split in speech_splits:
                planned = plans[split]
                done = {p.job.id: sf.info(p.job.out_path).frames / 16000
                        for p in planned if p.job.out_path.exists()}
                todo = [p.job for p in planned if p.job.id not in done]
                task = bar.add_task(split, total=len(planned), completed=len(done))
                done.update(_render(todo, pool, lambda n, t=task: bar.advance(t, n)))
                _write_manifest(out_dir / f"{split}.jsonl", _manifest_rows(planned, done, out_dir))
                by_engine = hours_by_engine.setdefault(split, {})
                for p in planned:
                    e = p.job.voice.engine
                    by_engine[e] = by_engine.get(e, 0.0) + done[p.job.id] / 3600
                summary["splits"][split] = {
                    "utterances": len(planned), "hours": round(sum(done.values()) / 3600, 3),
                    "sentences": len({p.job.text for p in planned}), "documents": len({p.doc for p in planned}),
                    "speakers": len({p.job.voice.speaker for p in planned}),
                    "synthesized": len(todo), "reused": len(planned) - len(todo),
                }
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    summary["seconds"] = round(time.time() - t0, 1)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if version == 2:
        from kdasr.data.build_info import write_build_info

        write_build_info(out_dir, summary, splits, leak_stats,
                         {s: {e: round(h, 3) for e, h in v.items()} for s, v in hours_by_engine.items()})
    return summary
