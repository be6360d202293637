"""Both BERT architectures are teachers everywhere a teacher goes: fast soft labels equal the
straightforward ones, `--teacher DIR` accepts the saved directory, and `export-lm --bert --check`
exports it for rescoring (ModernBERT's export is also run by tests/test_beam.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdasr.teachers.bert import load_bert_teacher
from kdasr.teachers.context import Window
from kdasr.teachers.soft_labels import SoftLabelConfig, fast_window_labels, straightforward_labels
from kdasr.teachers.storage import load_soft_labels
from kdasr.text import Tokenizer, train_tokenizer
from tests.conftest import run_kdasr, save_random_bert

SENTENCES = ["the earth was formless and empty", "god said let there be light and there was light"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    d = tmp_path_factory.mktemp("tok")
    (d / "text.txt").write_text("\n".join(SENTENCES * 5) + "\n")
    return Tokenizer(train_tokenizer([d / "text.txt"], d / "sp", vocab_size=29))


def saved_teacher(tok: Tokenizer, arch: str, path):
    return save_random_bert(tok, path, hidden=32, layers=2, ff_dim=48, arch=arch, summary={"note": "untrained"})


@pytest.mark.parametrize("arch", ["modernbert", "bert"])
def test_saved_teacher_loads_and_fast_labels_equal_straightforward(tok, tmp_path, arch):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "train_log.csv").write_text("step\n")  # training files beside it survive the save
    teacher = load_bert_teacher(saved_teacher(tok, arch, tmp_path / "bert"), tok)
    assert teacher.model.config.model_type == arch and (tmp_path / "bert" / "train_log.csv").is_file()
    assert json.loads((tmp_path / "bert" / "kdasr_teacher.json").read_text())["arch"] == arch
    ids = [tuple(tok.encode(s)) for s in SENTENCES]
    windows = [Window(ids[0], 0, len(ids[0])), Window(ids[0] + ids[1], len(ids[0]), len(ids[1]))]
    cfg = SoftLabelConfig(top_k=8, batch_tokens=64)
    for (fi, fp), (si, sp) in zip(
        fast_window_labels(teacher.model, windows, cfg), straightforward_labels(teacher.model, windows, cfg)
    ):
        np.testing.assert_array_equal(fi, si)
        np.testing.assert_allclose(fp, sp, atol=1e-5)


def test_post_norm_bert_still_exports_for_rescoring(tok, tmp_path):
    from kdasr.export.teacher_export import export_teachers

    checks = export_teachers(tmp_path / "out", bert_dir=saved_teacher(tok, "bert", tmp_path / "bert"), check=True)
    assert checks and all(c.max_error < 1e-4 for c in checks if not c.informational)


@pytest.mark.slow
def test_teacher_option_accepts_a_modernbert_directory(tok, tmp_path):
    bert = saved_teacher(tok, "modernbert", tmp_path / "bert")
    manifest = tmp_path / "train.jsonl"
    rows = [
        {"id": f"u{i}", "audio": "x.wav", "text": s, "duration": 1.0, "doc": "d", "pos": i}
        for i, s in enumerate(SENTENCES)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tok.model").write_bytes(tok.model_bytes)
    run_kdasr(
        "teacher",
        "soft-labels",
        str(manifest),
        "--tokenizer",
        str(tmp_path / "tok.model"),
        "--teacher",
        str(bert),
        "--mode",
        "context",
        "--window",
        "32",
        "--out",
        str(tmp_path / "soft"),
        "--threads",
        "1",
    )
    sl = load_soft_labels(tmp_path / "soft")
    assert set(sl.rows) == {"u0", "u1"} and sl.meta.mode == "context"
