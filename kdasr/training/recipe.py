"""`kdasr train` as a library call: a TrainRun (the request) and its Preset (the config, read by the
caller) -> features -> examples (+ soft labels) -> trainer."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from ..data.manifest import read_training_manifest
from ..errors import KdasrError
from ..io_utils import remove_orphan_temps
from ..models.config import ModelConfig
from ..models.student import build_frontend, build_model
from ..models.student_io import load_student
from ..teachers.kd_mode import KdMode
from ..text import Tokenizer
from .checkpoint import TrainingCheckpoint, check_branchable, check_resumable, check_resume_settings
from .config import TrainConfig
from .data import Examples, make_examples
from .distributed import barrier, init_distributed
from .encoder_cache import compute_encoder_cache, prefix_model
from .features import FEATURE_SHARD_NAME, compute_features
from .presets import Preset
from .request import TrainRun
from .trainer import train

CHECKPOINT_NAME = re.compile(r"(last|epoch-\d+|snapshot-[\d.e+-]+min)\.pt")  # what the trainer writes


def check_soft_labels(soft_dir: Path, kd: KdMode, tok: Tokenizer) -> None:
    """Refuse soft labels of the wrong teacher, mode or tokenizer (before any feature work)."""
    from ..teachers.storage import read_meta, tokenizer_sha1

    meta = read_meta(soft_dir)
    if KdMode.of_soft_labels(meta.teacher, meta.mode) is not kd:
        raise KdasrError(
            f"--kd {kd} needs {kd.teacher} soft labels in {kd.label_mode} mode; {soft_dir} holds "
            f"{meta.teacher} labels in {meta.mode} mode"
        )
    if meta.tokenizer_sha1 != tokenizer_sha1(tok.model_bytes):
        raise KdasrError(f"{soft_dir}: soft labels were made with another tokenizer than {tok}")


def attach_soft_labels(ex: Examples, soft_dir: Path, kd: KdMode, tok: Tokenizer) -> tuple[Examples, dict]:
    """Examples with each utterance's soft-label rows; checks teacher, mode and tokenizer."""
    from ..teachers.storage import load_soft_labels

    check_soft_labels(soft_dir, kd, tok)
    sl = load_soft_labels(soft_dir)
    soft, missing = [], 0
    for uid, toks in zip(ex.ids, ex.tokens):
        row = sl.get(uid)
        if row is None or row[0].shape[0] != len(toks):
            missing += 1
            row = None
        soft.append(row)
    if missing == len(ex.ids):
        raise KdasrError(f"{soft_dir}: no soft labels for any training utterance (made for another manifest?)")
    info = {
        "teacher": sl.meta.teacher,
        "mode": sl.meta.mode,
        "top_k": sl.meta.top_k,
        "temperature": sl.meta.temperature,
        "window": sl.meta.window,
        "soft_labels": str(soft_dir),
        "teacher_path": sl.meta.teacher_path,
        "utterances_without_soft_labels": missing,
    }
    if missing:
        print(f"warning: {missing} of {len(ex.ids)} training utterances have no soft labels (hard labels only)")
    return Examples(ex.ids, ex.feats, ex.tokens, ex.texts, soft, ex.frame_scale), info


def load_init_weights(source: Path, tok: Tokenizer) -> tuple[ModelConfig, dict, dict]:
    """Architecture, weights and training summary to start from: a checkpoint (.pt) or an
    exported model dir. The tokenizer must be the one the source was trained with (same units)."""
    student = load_student(source)  # weights that do not fit fail here, in one line
    src = student.tokenizer
    # same units in the same order is what matters (the serialized bytes also hold training paths)
    if [src.id_to_piece(i) for i in range(src.vocab_size)] != [tok.id_to_piece(i) for i in range(tok.vocab_size)]:
        raise KdasrError(f"--init-from {source}: it was trained with another tokenizer than {tok.path}")
    return student.model.cfg, student.model.state_dict(), student.history


ENCODER_SCOPES = ("encoder.", "ctc_head.")  # what --init-encoder-from takes; the decoder starts fresh


def encoder_init_weights(source: Path, tok: Tokenizer, model_cfg: ModelConfig) -> tuple[dict, dict]:
    """The encoder and CTC head of `source`, for a model of `model_cfg` whose encoder is the same
    (its decoder may be another kind): refused in one line when a tensor is missing or differs in shape."""
    _, weights, history = load_init_weights(source, tok)
    target = {k: v for k, v in build_model(model_cfg).state_dict().items() if k.startswith(ENCODER_SCOPES)}
    bad = [k for k, v in target.items() if k not in weights or tuple(weights[k].shape) != tuple(v.shape)]
    if bad:
        raise KdasrError(
            f"--init-encoder-from {source}: its encoder is not this config's ({len(bad)} tensors differ, e.g. {bad[0]})"
        )
    return {k: weights[k] for k in target}, history


def run_training(run: TrainRun, preset: Preset) -> Path:
    """Features, examples (+ soft labels), then the trainer, for the request `run` with the config
    `preset` (read by the caller: presets.read_preset). `run.init_from`: a fresh run from other
    weights; `run.branch_from`: continue another run's checkpoint (same architecture, tokenizer,
    schedule and data order) with this run's loss settings (see `prepare_branch`). `run.init_encoder_from`:
    a fresh run whose encoder and CTC head start from other weights and whose decoder (of the preset's
    kind) starts from scratch. Manifests are checked like `kdasr data validate`: utterances that
    break the text policy are reported and left out (`run.strict`: refused)."""
    kd, out_dir, init_from, init_encoder_from = run.kd, run.out, run.init_from, run.init_encoder_from
    tok = Tokenizer(run.tokenizer)
    model_cfg, train_cfg = preset.model_config(tok.vocab_size), run.train_config(preset.train)
    init_weights, init_history = None, {}
    if init_from is not None:
        # the source fixes the architecture; the preset still sets the training knobs
        init_cfg, init_weights, init_history = load_init_weights(init_from, tok)
        model_cfg = dataclasses.replace(init_cfg, ctc_weight=model_cfg.ctc_weight)
    if run.ctc_weight is not None:
        model_cfg = dataclasses.replace(model_cfg, ctc_weight=run.ctc_weight)
    if init_encoder_from is not None:
        init_weights, init_history = encoder_init_weights(init_encoder_from, tok, model_cfg)
    if kd is not KdMode.NONE:
        check_soft_labels(run.soft_labels, kd, tok)
    resumed = None
    if run.resume and (out_dir / "last.pt").exists():
        # read and checked before any feature work: a foreign or mismatched last.pt fails in one line
        resumed = TrainingCheckpoint.load(out_dir / "last.pt")
        check_resumable(out_dir / "last.pt", resumed, model_cfg, tok, preset.name)
        check_resume_settings(out_dir / "last.pt", resumed, train_cfg)
    branch = None
    if run.branch_from is not None:
        branch = prepare_branch(run.branch_from, resumed, out_dir, model_cfg, train_cfg, tok, preset.name)
    info = init_distributed()
    cache = run.feature_cache or out_dir / "feats"
    if info.main:  # temp files of checkpoint and feature writes a killed run left (only those)
        remove_orphan_temps(out_dir, CHECKPOINT_NAME.fullmatch)
        for name in ("train", "dev"):
            remove_orphan_temps(cache / name, FEATURE_SHARD_NAME.fullmatch)
    frontend = build_frontend(model_cfg)  # whisper encoders: whisper's own log-mel
    # a frozen pretrained encoder part: its output cached once per utterance (training/encoder_cache.py)
    start = resumed or branch
    prefix = prefix_model(model_cfg, start.model if start is not None else init_weights) \
        if train_cfg.encoder_cache else None
    sets = {}
    for name, manifest in (("train", run.train_manifest), ("dev", run.dev_manifest)):
        utts, skipped = read_training_manifest(manifest, run.strict)
        if skipped and info.main:
            report_skipped(manifest, skipped, len(utts))
        if not info.main:
            barrier(info)  # rank 0 computes the feature cache first; the others then read it
        if prefix is not None:
            feats, _ = compute_encoder_cache(utts, cache / name, prefix, desc=f"{name} encoder cache")
        else:
            feats = compute_features(utts, cache / name, frontend, model_cfg.sample_rate, desc=f"{name} features")
        if info.main:
            barrier(info)
        ex = make_examples(utts, feats, tok)
        ex.frame_scale = 2 if prefix is not None else 1  # whisper states are 20 ms frames
        sets[name] = (utts, ex)
    train_ex = sets["train"][1]
    if not train_ex.ids:  # else the trainer divides by zero batches
        raise KdasrError(
            f"{run.train_manifest}: no usable training utterances ({len(sets['train'][0])} passed the checks; "
            "those with unreadable audio, under 16 feature frames or no tokens are left out): nothing to train on"
        )
    kd_info = {}
    if kd is not KdMode.NONE:
        train_ex, kd_info = attach_soft_labels(train_ex, run.soft_labels, kd, tok)
    hours = sum(u.duration for u in sets["train"][0]) / 3600
    summary = {
        "train_manifest": str(run.train_manifest),
        "train_hours": round(hours, 2),
        "train_utterances": len(train_ex.ids),
        "preset": preset.name,
        "kd": kd.value,
        "kd_weight": train_cfg.kd_weight if kd is not KdMode.NONE else 0.0,
        **({"kd_" + k: v for k, v in kd_info.items()}),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        # where the weights came from, with that model's own training summary (its history)
        **({"initialised_from": {"path": str(init_from), "training": init_history}} if init_from is not None else {}),
        **(
            {"encoder_initialised_from": {"path": str(init_encoder_from), "training": init_history}}
            if init_encoder_from is not None
            else {}
        ),
    }
    if branch is not None:
        summary["branched_from"] = branch_record(run.branch_from, branch)
        src_utts = branch.summary.get("train_utterances")
        if src_utts is not None and src_utts != len(train_ex.ids):
            raise KdasrError(
                f"--branch-from {run.branch_from}: the source run trained on {src_utts} utterances, this one has "
                f"{len(train_ex.ids)} (another --train manifest?): the data order would differ"
            )
    return train(
        model_cfg,
        train_cfg,
        train_ex,
        sets["dev"][1],
        tok,
        out_dir,
        resume=run.resume,
        summary=summary,
        dist_info=info,
        init_weights=init_weights,
        checkpoint=resumed,
        branch=branch,
    )


SHOWN_SKIPS = 10


def report_skipped(manifest: Path, skipped: list[str], kept: int) -> None:
    for line in skipped[:SHOWN_SKIPS]:
        print(f"warning: {line}")
    more = f" ({len(skipped) - SHOWN_SKIPS} more not shown)" if len(skipped) > SHOWN_SKIPS else ""
    print(f"warning: {manifest}: {len(skipped)} of {len(skipped) + kept} utterances left out by the text and length "
          f"checks{more}; `kdasr data validate {manifest}` lists them all, --strict refuses them")


def prepare_branch(
    source: Path,
    resumed: TrainingCheckpoint | None,
    out_dir: Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    tok: Tokenizer,
    preset: str,
) -> TrainingCheckpoint | None:
    """The source checkpoint of a new branch, checked; None when out_dir/last.pt exists (then the
    run resumes, and that last.pt must be a branch of the same source)."""
    if resumed is not None:
        recorded = resumed.summary.get("branched_from")
        if recorded is None or Path(recorded["path"]).resolve() != source.resolve():
            was = f"a branch of {recorded['path']}" if recorded else "not a branch"
            raise KdasrError(
                f"{out_dir / 'last.pt'}: cannot branch into {out_dir} from {source}: that run exists and is {was} "
                "(resume it without --branch-from, or choose another --out)"
            )
        return None
    ck = TrainingCheckpoint.load(source, action="branch")
    check_resumable(source, ck, model_cfg, tok, preset, action="branch")
    check_branchable(source, ck, train_cfg)
    return ck


def branch_record(source: Path, ck: TrainingCheckpoint) -> dict:
    """What a branch keeps of its source in its summary (and so in its checkpoints and exports)."""
    src = ck.summary
    return {
        "path": str(source),
        "step": ck.step,
        "epoch": ck.epoch,
        "batch_pos": ck.batch_pos,
        "elapsed_s": round(ck.elapsed),
        "kd": src.get("kd", ck.train_config.get("kd", KdMode.NONE.value)),
        "kd_weight": src.get("kd_weight", 0.0),
        # the source's own history (when it started, where its weights came from, its own branch)
        **{k: src[k] for k in ("started", "initialised_from", "branched_from") if k in src},
    }
