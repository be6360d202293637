"""KD from the two-sided count model (issue 28 item 2, a knowledge control): `kdasr teacher soft-labels
--teacher count:TEXT` writes p(u | left unit, right unit) top K at temperature T, equal to a direct count
on a tiny text; resumable, derivable, torch-free; `kdasr train --kd count` takes those labels and refuses
BERT's (and --kd bert refuses them) in one line; a protocol may list a count-KD system and the claim
recipe's soft stage makes its labels."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_protocol import BASE, SETUP
from test_torch_free import BLOCKER
from train_worker import WORDS, tokenizer

from kdasr.data.manifest import read_manifest
from kdasr.errors import KdasrError
from kdasr.spec.protocol import read_protocol, render_protocol_block
from kdasr.teachers.count_labels import (
    SPECIAL_IDS,
    CountLabelConfig,
    count_model,
    generate_count_labels,
    run_count_soft_labels,
    topk_from_probs,
)
from kdasr.teachers.kd_mode import KdMode
from kdasr.teachers.soft_derive import derive_soft_labels
from kdasr.teachers.storage import SoftLabelMeta, load_soft_labels, prepare_dir, read_meta
from kdasr.text import BOS_ID, EOS_ID, MASK_ID

KDASR = [sys.executable, "-m", "kdasr"]
D = 0.75  # the count models' discount


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A tokenizer, a teacher text (some sentences repeated: trigrams seen more than once) and a
    manifest of 9 utterances (real wav files of noise, so the trainer can take a step)."""
    d = tmp_path_factory.mktemp("count")
    tokenizer(d / "tok")
    rng = np.random.default_rng(3)
    lines = [" ".join(rng.choice(WORDS, int(rng.integers(1, 7)))) for _ in range(60)]
    (d / "teacher.txt").write_text("\n".join(lines + lines[:10]) + "\n")
    rows = []
    for i in range(9):
        wav = d / f"u{i}.wav"
        sf.write(wav, (0.1 * rng.standard_normal(24000)).astype(np.float32), 16000)
        text = lines[i] if i < 3 else " ".join(rng.choice(WORDS, int(rng.integers(1, 4))))  # seen and unseen
        rows.append(json.dumps({"id": f"u{i}", "audio": str(wav), "text": text, "duration": 1.5}))
    (d / "train.jsonl").write_text("\n".join(rows) + "\n")
    return d


def direct_two_sided(sentences: list[list[int]], v: int, left: int, right: int) -> np.ndarray:
    """p(w | left, right) counted by hand from ngram.py's formulas (dicts, no numpy tables)."""
    seqs = [[BOS_ID, *s, EOS_ID] for s in sentences]
    cand = [*range(MASK_ID + 1, v), EOS_ID]
    uni = Counter(t for s in seqs for t in s[1:])
    n = sum(uni[w] for w in cand)
    p_uni = {w: (uni[w] + 1) / (n + len(cand)) for w in cand}
    big = Counter((a, b) for s in seqs for a, b in zip(s, s[1:]))

    def p_big(w: int, prev: int) -> float:
        follow = {b: c for (a, b), c in big.items() if a == prev}
        total = sum(follow.values())
        if total == 0:
            return p_uni.get(w, 0.0)
        return max(follow.get(w, 0) - D, 0) / total + D * len(follow) / total * p_uni.get(w, 0.0)

    units = range(MASK_ID + 1, v)
    q = np.zeros(v)
    for w in units:
        q[w] = p_big(w, left) * p_big(right, w)
    q /= q.sum()
    mid = Counter(s[i] for s in seqs for i in range(1, len(s) - 1) if (s[i - 1], s[i + 1]) == (left, right))
    total = sum(mid.values())
    if total == 0:
        return q
    p = D * len(mid) / total * q
    for w, c in mid.items():
        p[w] += max(c - D, 0) / total
    return p


def test_labels_equal_a_direct_count_of_the_teacher_text(files, tmp_path):
    tok = tokenizer(files / "tok")
    sents = [t for line in (files / "teacher.txt").read_text().splitlines() if (t := tok.encode(line))]
    model, n = count_model(files / "teacher.txt", tok, D)
    assert n == len(sents) == 70
    utts = read_manifest(files / "train.jsonl")
    cfg = CountLabelConfig(top_k=5, temperature=2.0, shard_size=4, batch_pairs=7)  # batches across pairs
    meta = SoftLabelMeta("count", "two-sided-count", 5, 2.0, 0, tok.vocab_size, "x")
    stats = generate_count_labels(utts, tok, model, cfg, tmp_path / "soft", meta, progress=False)
    assert stats["shards_written"] == 3 and stats["tokens"] == stats["written_tokens"]
    store = load_soft_labels(tmp_path / "soft")
    seen = 0
    for u in utts:
        toks = tok.encode(u.text)
        ids, probs = store.get(u.id)
        assert ids.shape == probs.shape == (len(toks), 5)
        padded = [BOS_ID, *toks, EOS_ID]
        for i in range(len(toks)):
            left, right = padded[i], padded[i + 2]
            p = direct_two_sided(sents, tok.vocab_size, left, right)
            np.testing.assert_allclose(model.two_sided(left, right), p, rtol=1e-12)  # the quality command's model
            want = sorted(range(tok.vocab_size), key=lambda w: (-p[w], w))[:5]
            assert list(ids[i]) == want and not set(want) & set(SPECIAL_IDS)
            soft = p[want] ** (1 / 2.0)  # softmax(log p / T) over the top K
            np.testing.assert_allclose(probs[i], soft / soft.sum(), atol=1e-3)  # float16 storage
            seen += p[want[0]] > 0.5  # a middle counted between its neighbours dominates
    assert seen > 0


def test_the_batched_model_equals_the_one_pair_model_and_an_unk_neighbour_is_no_evidence():
    from kdasr.teachers.ngram import CountModels
    from kdasr.text import UNK_ID

    rng = np.random.default_rng(0)
    sents = [list(rng.integers(MASK_ID + 1, 30, rng.integers(1, 8))) for _ in range(200)] + [[7, 8, 9]] * 3
    model = CountModels([*sents, [6, UNK_ID, 6]], 30)
    pairs = [(a, b) for a in (BOS_ID, UNK_ID, 6, 7) for b in (EOS_ID, UNK_ID, 6, 9)]
    batch = model.two_sided_batch(*np.array(pairs).T)
    for row, (left, right) in zip(batch, pairs):
        np.testing.assert_array_equal(row, model.two_sided(left, right))
        assert np.isfinite(row).all() and abs(row.sum() - 1) < 1e-12
    assert model.two_sided(6, 6)[UNK_ID] > 0.1  # <unk> counted between 6 and 6: mass, never a label
    ids, probs = topk_from_probs(model.two_sided_batch([6], [6]), 25, 1.0)
    assert UNK_ID not in ids and not set(ids[0]) & set(SPECIAL_IDS) and abs(probs.sum() - 1) < 1e-6
    # a text without <unk>: no unit is ever followed by it, so it tells nothing: p(w | l, <unk>) ∝ p(w | l)
    clean = CountModels(sents, 30)
    alone = clean.bigram[7, clean.units] / clean.bigram[7, clean.units].sum()
    np.testing.assert_allclose(clean.two_sided(7, UNK_ID)[clean.units], alone, rtol=1e-12)
    np.testing.assert_allclose(clean.two_sided_batch([7], [UNK_ID])[0, clean.units], alone, rtol=1e-12)


def test_resumed_shards_are_kept_and_other_settings_refused(files, tmp_path):
    tok = tokenizer(files / "tok")
    model, _ = count_model(files / "teacher.txt", tok, D)
    utts = read_manifest(files / "train.jsonl")
    cfg = CountLabelConfig(top_k=4, temperature=3.0, shard_size=4)
    meta = SoftLabelMeta("count", "two-sided-count", 4, 3.0, 0, tok.vocab_size, "x", teacher_sha1="a" * 40)
    first = generate_count_labels(utts, tok, model, cfg, tmp_path, meta, progress=False, stop_after_shards=1)
    assert first["shards_written"] == 1
    before = (tmp_path / "shard-00000.npz").stat().st_mtime_ns
    rest = generate_count_labels(utts, tok, model, cfg, tmp_path, meta, progress=False)
    assert rest["shards_written"] == 2 and (tmp_path / "shard-00000.npz").stat().st_mtime_ns == before
    with pytest.raises(KdasrError, match=r"other settings \(teacher_sha1\)"):  # another text: not mixed
        prepare_dir(tmp_path, SoftLabelMeta("count", "two-sided-count", 4, 3.0, 0, tok.vocab_size, "x",
                                            teacher_sha1="b" * 40))


def test_soft_derive_on_count_labels_equals_a_direct_run(files, tmp_path):
    tok = files / "tok" / "sp.model"
    run_count_soft_labels([files / "train.jsonl"], tok, files / "teacher.txt", tmp_path / "t1k8",
                          CountLabelConfig(top_k=8, temperature=1.0), progress=False)
    run_count_soft_labels([files / "train.jsonl"], tok, files / "teacher.txt", tmp_path / "t3k4",
                          CountLabelConfig(top_k=4, temperature=3.0), progress=False)
    derive_soft_labels(tmp_path / "t1k8", tmp_path / "derived", 3.0, 4)
    a, b = load_soft_labels(tmp_path / "t3k4"), load_soft_labels(tmp_path / "derived")
    assert (b.meta.teacher, b.meta.mode, b.meta.teacher_sha1) == ("count", "two-sided-count", a.meta.teacher_sha1)
    for uid, (ids, probs) in a.rows.items():
        np.testing.assert_array_equal(ids, b.rows[uid][0])
        np.testing.assert_allclose(probs, b.rows[uid][1], atol=3e-3)


def test_the_trainer_takes_count_labels_under_kd_count_only(files, tmp_path):
    from kdasr.text import Tokenizer
    from kdasr.training.recipe import check_soft_labels

    tok = Tokenizer(files / "tok" / "sp.model")
    run_count_soft_labels([files / "train.jsonl"], tok.path, files / "teacher.txt", tmp_path / "count",
                          CountLabelConfig(top_k=4), progress=False)
    assert KdMode.parse("count") is KdMode.COUNT and KdMode.COUNT.default_weight == 0.1
    check_soft_labels(tmp_path / "count", KdMode.COUNT, tok)  # accepted
    bert = SoftLabelMeta("bert", "utterance", 4, 3.0, 0, tok.vocab_size, read_meta(tmp_path / "count").tokenizer_sha1)
    prepare_dir(tmp_path / "bert", bert)  # the meta.json `kdasr teacher soft-labels --teacher BERT_DIR` writes
    with pytest.raises(KdasrError) as e:
        check_soft_labels(tmp_path / "bert", KdMode.COUNT, tok)
    assert str(e.value) == (f"--kd count needs count soft labels in two-sided-count mode; {tmp_path / 'bert'} "
                            "holds bert labels in utterance mode")
    with pytest.raises(KdasrError, match="^--kd bert needs bert soft labels in utterance mode; .* holds count labels "
                                         "in two-sided-count mode$"):
        check_soft_labels(tmp_path / "count", KdMode.BERT, tok)


@pytest.mark.slow  # a `kdasr train` subprocess (torch import: ~15 s on a busy 2-core machine)
def test_kdasr_train_refuses_count_labels_for_bert_in_one_line(files, tmp_path):
    tok = files / "tok" / "sp.model"
    run_count_soft_labels([files / "train.jsonl"], tok, files / "teacher.txt", tmp_path / "count",
                          CountLabelConfig(top_k=4), progress=False)
    proc = subprocess.run([*KDASR, "train", "--train", str(files / "train.jsonl"), "--dev", str(files / "train.jsonl"),
                           "--tokenizer", str(tok), "--out", str(tmp_path / "exp"), "--config", "tiny",
                           "--kd", "bert-context", "--soft-labels", str(tmp_path / "count")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: --kd bert-context needs bert soft labels in context mode; "
                                   f"{tmp_path / 'count'} holds count labels in two-sided-count mode")


@pytest.mark.slow  # a real training step (~15 s on a busy 2-core machine)
def test_a_student_trains_on_count_labels(files, tmp_path):
    import torch

    from kdasr.training.presets import read_preset
    from kdasr.training.recipe import run_training
    from kdasr.training.request import TrainRun

    manifest, tok = files / "train.jsonl", files / "tok" / "sp.model"
    run_count_soft_labels([manifest], tok, files / "teacher.txt", tmp_path / "soft", CountLabelConfig(top_k=4),
                          progress=False)
    run_training(TrainRun(manifest, manifest, tok, tmp_path / "exp", config="tiny", kd="count",
                          soft_labels=tmp_path / "soft", max_steps=1, threads=1), read_preset("tiny"))
    s = torch.load(tmp_path / "exp" / "last.pt", weights_only=False)["summary"]
    assert (s["kd"], s["kd_weight"], s["kd_teacher"], s["kd_mode"]) == ("count", 0.1, "count", "two-sided-count")
    assert s["kd_utterances_without_soft_labels"] == 0
    header, first = (tmp_path / "exp" / "train_log.csv").read_text().splitlines()[:2]
    assert float(dict(zip(header.split(","), first.split(",")))["soft"]) > 0


COUNT_SYSTEM = textwrap.dedent("""
    [[system]]
    name = "count-kd"
    kd = "count"
    label_smoothing = 0.1
    kd_weight = [0.1]
    """)


def test_a_protocol_may_list_a_count_kd_system(tmp_path):
    plain = read_protocol(_write(tmp_path / "a.toml", BASE + SETUP))
    assert plain.fingerprint == "82e6c489d509a5dd926f730f2a7d4a6fbdb789d561dc34e8395d479dc937e735"  # as before
    with_text = SETUP.replace("sweep_steps = 50", 'sweep_steps = 50\nteacher_text = "data/mix/teacher.txt"')
    p = read_protocol(_write(tmp_path / "b.toml", BASE + COUNT_SYSTEM + with_text))
    assert p.system("count-kd").kd == "count" and p.setup.teacher_text == "data/mix/teacher.txt"
    assert p.content()["setup"]["teacher_text"] == "data/mix/teacher.txt"
    assert "count model from `data/mix/teacher.txt`" in render_protocol_block(p)
    assert read_protocol(_write(tmp_path / "c.toml", BASE + COUNT_SYSTEM)).system("count-kd").kd == "count"
    path = _write(tmp_path / "bad.toml", BASE + COUNT_SYSTEM + SETUP)
    with pytest.raises(KdasrError, match=f"^{path}: .*'count-kd' \\(kd = 'count'\\) needs \\[setup\\] teacher_text"):
        read_protocol(path)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.slow  # two CLI subprocesses (~4 s each on a busy 2-core machine)
def test_the_recipe_makes_count_labels_through_the_cli_without_torch(files, tmp_path, monkeypatch):
    """The claim recipe's soft stage on a count-KD system: `kdasr teacher soft-labels --teacher count:TEXT`
    run as the recipe runs it, with torch blocked (the count path is numpy only)."""
    from kdasr.recipe.claim import ClaimCtx
    from kdasr.recipe.claim_stages import soft_one
    from kdasr.recipe.runner import Runner

    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    setup = SETUP.replace('"data/mix/train.jsonl"', f'"{files / "train.jsonl"}"').replace(
        '"data/mix/tok1000.model"', f'"{files / "tok" / "sp.model"}"').replace(
        "sweep_steps = 50", f'sweep_steps = 50\nteacher_text = "{files / "teacher.txt"}"')
    protocol = _write(tmp_path / "p.toml", BASE + COUNT_SYSTEM + setup)
    c = ClaimCtx(protocol, tmp_path / "exp", Runner(tmp_path / "exp" / "logs", 1), KDASR)
    out = soft_one(c, "count", 3.0, 8)
    log = "".join(p.read_text() for p in (tmp_path / "exp" / "logs").glob("*.log"))
    assert (out / "summary.json").is_file(), log
    meta = read_meta(out)
    text = (files / "teacher.txt").read_bytes()
    assert (meta.teacher, meta.mode, meta.top_k, meta.temperature) == ("count", "two-sided-count", 8, 3.0)
    assert (meta.teacher_sha1, meta.teacher_bytes) == (hashlib.sha1(text).hexdigest(), len(text))
    assert set(load_soft_labels(out).rows) == {u.id for u in read_manifest(files / "train.jsonl")}
    proc = subprocess.run([*KDASR, "teacher", "soft-labels", str(files / "train.jsonl"), "--tokenizer",
                           str(files / "tok" / "sp.model"), "--teacher", f"count:{tmp_path / 'none.txt'}",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "blocked" not in proc.stderr
    assert proc.stderr.strip() == f"error: {tmp_path / 'none.txt'}: no such teacher text (--teacher count:TEXT)"
