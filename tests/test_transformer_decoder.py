"""The Transformer decoder option (issue 11 item 3): its cached step equals teacher forcing, it
trains through the real trainer (CE, KD, CTC), and the torch reference decoders run it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import corpus_waves, run_kdasr, save_random_lm

from kdasr.models.config import ModelConfig
from kdasr.models.encoder import padding_mask
from kdasr.models.student import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_TF = ModelConfig(
    vocab_size=40, d_model=32, encoder_layers=1, attention_heads=2, subsampling_channels=8, dropout=0.0,
    decoder_type="transformer", decoder_layers=2, decoder_heads=2, decoder_ff_dim=64,
)


@torch.no_grad()
def test_cached_steps_equal_teacher_forcing_and_ignore_padding():
    torch.manual_seed(0)
    dec = build_model(TINY_TF).eval().decoder
    memory, lens = torch.randn(3, 20, 32), torch.tensor([20, 15, 9])
    mask = padding_mask(lens, 20)
    tokens = torch.randint(0, 40, (3, 7))
    full = dec(memory, mask, tokens)
    keys, state, steps = dec.memory_keys(memory), dec.initial_state(memory, mask), []
    for u in range(tokens.shape[1]):
        logits, state = dec.step(tokens[:, u], state, memory, keys, mask)
        steps.append(logits)
    assert state.kv[0][0].shape == (3, 2, 7, 16)  # the cache grew one step per token
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    # the shortest utterance alone, without the batch's padding frames: the same logits
    alone = dec(memory[2:, :9], mask[2:, :9], tokens[2:])
    torch.testing.assert_close(alone, full[2:], atol=1e-5, rtol=1e-5)
    # and the logits do depend on the audio (cross-attention is wired)
    assert (dec(memory.flip(1), mask, tokens) - full).abs().max() > 1e-3


def test_unknown_decoder_type_is_refused():
    with pytest.raises(ValueError, match="decoder_type"):
        build_model(dataclasses.replace(TINY_TF, decoder_type="gru"))


def test_kd_and_ctc_losses_train_the_transformer_student():
    """The trainer's loss (λ·CE(soft) + (1 − λ)·CE(hard), plus auxiliary CTC) on the Transformer
    student: every part is finite, gradients reach the decoder, and a few steps lower the loss."""
    from kdasr.training.config import TrainConfig
    from kdasr.training.data import Batch
    from kdasr.training.trainer import compute_loss

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(TINY_TF, ctc_weight=0.3))
    b, t, u, k = 2, 120, 6, 4
    tokens = torch.randint(5, 40, (b, u))
    soft_ids = torch.randint(5, 40, (b, u + 1, k))
    soft_probs = torch.softmax(torch.randn(b, u + 1, k), -1)
    soft_mask = torch.ones(b, u + 1, dtype=torch.bool)
    soft_mask[:, -1] = False  # no teacher row for <eos>
    batch = Batch(
        feats=torch.randn(b, t, 80), feat_lens=torch.tensor([t, t - 30]),
        tokens_in=torch.cat([torch.full((b, 1), 2), tokens], 1), targets=torch.cat([tokens, torch.full((b, 1), 3)], 1),
        ctc_targets=tokens, target_lens=torch.tensor([u, u]),
        soft_ids=soft_ids, soft_probs=soft_probs, soft_mask=soft_mask,
    )

    class Tok:
        pad_id = 0

    cfg = TrainConfig(kd="bert", kd_weight=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(8):
        losses = compute_loss(model, batch, Tok(), cfg)
        assert all(torch.isfinite(v) for v in losses.values()) and {"soft", "hard", "ctc"} <= set(losses)
        opt.zero_grad()
        losses["loss"].backward()
        assert model.decoder.layers[0].cross_kv.weight.grad.abs().sum() > 0
        opt.step()
        first = first if first is not None else losses["loss"].item()
    assert losses["loss"].item() < first


# --- exported: trained a few steps through the CLI, exported with --check, run by onnxruntime ---


@pytest.fixture(scope="module")
def tf_model(tiny_corpus, tmp_path_factory):
    """The tiny corpus' student with a Transformer decoder: `kdasr train --config tiny-transformer`,
    then `kdasr export --check --quantize int8 --int8-decoder` (fp32 within tolerance, int8 reported)."""
    exp = tmp_path_factory.mktemp("exp-transformer")
    run_kdasr(
        "train", "--train", str(tiny_corpus / "train.jsonl"), "--dev", str(tiny_corpus / "dev.jsonl"),
        "--tokenizer", str(tiny_corpus / "tokenizer.model"), "--out", str(exp), "--config", "tiny-transformer",
        "--max-steps", "6", "--threads", "1",
    )
    proc = run_kdasr("export", str(exp / "last.pt"), "--out", str(exp / "model"), "--check", "--quantize", "int8",
                     "--int8-decoder")
    checks = {line.split(":")[0]: line for line in proc.stdout.splitlines() if line.startswith("check")}
    assert set(checks) == {"check encoder", "check decoder", "check weights read back", "check encoder.int8",
                           "check decoder.int8"}, proc.stdout
    for name in ("check encoder", "check decoder", "check weights read back"):
        assert float(checks[name].split("=")[1].split()[0]) < 1e-4 and "ok" in checks[name]
    return exp / "model"


def test_model_dir_declares_the_kv_cache_and_cross_attention_inputs(tf_model):
    from kdasr.runtime.onnx_model import OnnxStudent
    from kdasr.spec.graph_spec import FRAMES, STEPS
    from kdasr.spec.modelspec import load_model_spec

    spec = load_model_spec(tf_model)
    assert spec.architecture["decoder"] == "transformer"
    assert [s.name for s in spec.decoder.state] == ["self_k_0", "self_v_0", "self_k_1", "self_v_1"]
    assert all(s.shape == ("batch", 2, STEPS, 16) and s.init == "zeros" for s in spec.decoder.state)
    cross = [m for m in spec.decoder.memory if m.name.startswith("cross_")]
    assert len(cross) == 4 and all(m.shape[2] == FRAMES and m.source in spec.encoder.graph.outputs for m in cross)
    assert all(m.per_utterance for m in spec.decoder.memory)  # one row per utterance, shared by its hypotheses
    # the cross-attention keys/values come out of the encoder graph (once per utterance), and the
    # step graph has no input for the encoder states themselves: it never re-projects them
    assert "memory" not in spec.decoder.graph.inputs
    assert OnnxStudent.load(tf_model, precision="int8").spec.decoder.graph.inputs == spec.decoder.graph.inputs


@pytest.mark.parametrize(
    "opts",
    [
        dict(beam=3, nbest=3, length_penalty=1.0),
        dict(beam=3, nbest=3, ctc_weight=0.3, length_bonus=0.5),
    ],
    ids=["attention", "joint-ctc"],
)
def test_ort_beam_equals_torch_reference(tiny_corpus, tf_model, opts):
    import numpy as np

    from kdasr.models.reference_beam import torch_beam_search
    from kdasr.models.student_io import load_student
    from kdasr.runtime import DecodeOptions, Transcriber

    opts = DecodeOptions(**opts)
    model = load_student([tf_model.parent / "last.pt"]).model
    t = Transcriber(tf_model, threads=1, vad=False)
    ids = t.model.spec.special_ids
    waves = corpus_waves(tiny_corpus, 2)
    for wave, got in zip(waves, t.transcribe(waves, opts)):
        ref = torch_beam_search(model, torch.from_numpy(wave), ids.bos, ids.eos, ids.blank, opts)
        assert len(ref) == 3 and [n.tokens for n in got.nbest] == [r[0] for r in ref]
        np.testing.assert_allclose([n.score for n in got.nbest], [r[1] for r in ref], rtol=1e-4, atol=1e-3)


def test_greedy_equals_torch_and_batch_does_not_matter(tiny_corpus, tf_model):
    from dataclasses import replace

    from kdasr.models.reference_decode import torch_greedy
    from kdasr.models.student_io import load_student
    from kdasr.runtime import DecodeOptions, Transcriber

    model = load_student([tf_model.parent / "last.pt"]).model
    t = Transcriber(tf_model, threads=1, vad=False)
    ids = t.model.spec.special_ids
    waves = corpus_waves(tiny_corpus, 4)
    greedy = DecodeOptions(beam=1, ctc_weight=0.0, method="attention")
    for wave, got in zip(waves, t.transcribe(waves, replace(greedy, batch_size=16))):
        ref = torch_greedy(model, torch.from_numpy(wave), ids.bos, ids.eos, ids.blank, greedy)
        assert list(got.tokens) == ref
    joint = DecodeOptions(beam=4, nbest=4, ctc_weight=0.3)
    batched = t.transcribe(waves, replace(joint, batch_size=16))
    single = [t.transcribe([w], replace(joint, batch_size=1))[0] for w in waves]
    assert [[n.tokens for n in r.nbest] for r in batched] == [[n.tokens for n in r.nbest] for r in single]


def test_lm_fusion_and_rescoring_run_on_the_transformer_decoder(tiny_corpus, tf_model, tmp_path):
    """Shallow fusion through the same beam search equals the torch reference with the same LM;
    LM n-best rescoring re-ranks by search score + weight x LM score."""
    import shutil

    import numpy as np

    from kdasr.models.reference_beam import torch_beam_search
    from kdasr.models.student_io import load_student
    from kdasr.runtime import DecodeOptions, Transcriber
    from kdasr.teachers.lm_train import load_lm_teacher as load_lm
    from kdasr.text import Tokenizer

    tok = Tokenizer(tf_model / "tokenizer.model")
    save_random_lm(tok, tmp_path / "lm", d_model=32, layers=2)
    model_dir = tmp_path / "model"
    shutil.copytree(tf_model, model_dir)
    run_kdasr("export-lm", "--lm", str(tmp_path / "lm"), "--out", str(model_dir), "--check")
    lm, _ = load_lm(tmp_path / "lm", None)

    def lm_step(tokens, cache):
        logits, cache = lm.step(tokens, cache)
        return torch.log_softmax(logits, -1), cache

    model = load_student([tf_model.parent / "last.pt"]).model
    t = Transcriber(model_dir, threads=1, vad=False)
    ids = t.model.spec.special_ids
    wave = corpus_waves(tiny_corpus, 1)[0]
    opts = DecodeOptions(beam=3, nbest=2, lm_weight=0.5, length_bonus=0.3)
    got = t.transcribe([wave], opts)[0]
    with torch.no_grad():
        ref = torch_beam_search(model, torch.from_numpy(wave), ids.bos, ids.eos, ids.blank, opts, lm=(lm_step, None))
    assert [n.tokens for n in got.nbest] == [r[0] for r in ref]
    plain = t.transcribe([wave], DecodeOptions(beam=3, nbest=3))[0]
    res = t.transcribe([wave], DecodeOptions(beam=3, nbest=3, rescore="lm", rescore_weight=1.0))[0]
    lm_scores = t.teacher("lm").sequence_scores([tuple(n.tokens) for n in plain.nbest])
    # no length penalty: a plain hypothesis' score is its search score
    want = sorted(((n.score + s, n.tokens) for n, s in zip(plain.nbest, lm_scores)), key=lambda x: -x[0])
    assert [n.tokens for n in res.nbest] == [w[1] for w in want]
    np.testing.assert_allclose([n.score for n in res.nbest], [w[0] for w in want], rtol=1e-5, atol=1e-4)


def test_transcribe_and_eval_cli(tiny_corpus, tf_model, tmp_path):
    import json

    from kdasr.data.manifest import read_manifest

    paths = [u.audio for u in read_manifest(tiny_corpus / "test.jsonl")[:2]]
    out = run_kdasr("transcribe", *paths, "--model", str(tf_model), "--format", "jsonl", "--beam", "3",
                    "--ctc-weight", "0.3", "--precision", "int8").stdout.splitlines()
    assert [json.loads(x)["path"] for x in out] == paths
    hyps = tmp_path / "hyps.jsonl"
    proc = run_kdasr("eval", "--model", str(tf_model), "--manifest", str(tiny_corpus / "test.jsonl"),
                     "--hyps", str(hyps), "--beam", "3")
    assert "WER" in proc.stdout and len(hyps.read_text().splitlines()) == len(read_manifest(tiny_corpus / "test.jsonl"))


def test_weights_read_back_from_the_model_dir(tf_model):
    """`--init-from MODEL_DIR` and the torch-eager bench engine rebuild the student from the ONNX
    graphs: for the Transformer decoder too, every parameter, exactly."""
    from kdasr.models.student_io import load_student

    recovered = load_student(tf_model).model.state_dict()
    trained = load_student(tf_model.parent / "last.pt").model.state_dict()
    assert set(recovered) == set(trained)
    assert all(torch.equal(recovered[k], trained[k]) for k in trained)


def test_paper_v2_transformer_config_differs_from_paper_v2_in_the_decoder_only():
    """The equal-training-time comparison (eval/tuning/decoder_compare.sh) changes one thing."""
    from kdasr.training.presets import load_preset

    lstm_model, lstm_train = load_preset("paper-v2", 256)
    tf_model, tf_train = load_preset("paper-v2-transformer", 256)
    decoder_fields = {"decoder_type", "decoder_layers", "decoder_heads", "decoder_ff_dim", "embed_dim",
                      "decoder_hidden", "attention_dim", "location_channels", "location_kernel"}
    differ = {k for k, v in lstm_model.to_dict().items() if tf_model.to_dict()[k] != v}
    assert "decoder_type" in differ and differ <= decoder_fields
    assert lstm_train == tf_train
