"""The KD path through the CLI on the tiny corpus: BERT teacher -> context soft labels -> KD student;
and the clear errors for a teacher or soft labels that do not fit."""

from __future__ import annotations

import pytest
import torch
from conftest import run_kdasr

from kdasr.errors import ModelError
from kdasr.text import Tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def bert_teacher(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("teachers") / "bert"
    run_kdasr(
        "teacher",
        "bert",
        str(tiny_corpus / "teacher.jsonl"),
        "--tokenizer",
        str(tiny_corpus / "tokenizer.model"),
        "--out",
        str(out),
        "--size",
        "tiny",
        "--window",
        "64",
        "--steps",
        "3",
        "--threads",
        "1",
        "--dev",
        str(tiny_corpus / "dev.jsonl"),
    )
    assert (out / "config.json").is_file() and (out / "tokenizer.model").is_file()
    return out


def test_bert_context_kd_training_through_the_cli(tiny_corpus, bert_teacher, tmp_path):
    tok = str(tiny_corpus / "tokenizer.model")
    soft = tmp_path / "soft"
    from kdasr.teachers.run import run_soft_labels
    from kdasr.teachers.soft_labels import SoftLabelConfig

    # the library call behind `kdasr teacher soft-labels` (the CLI is exercised by `teacher bert` above)
    threads = torch.get_num_threads()
    run_soft_labels(
        [tiny_corpus / "train.jsonl"],
        tiny_corpus / "tokenizer.model",
        bert_teacher,
        soft,
        SoftLabelConfig(mode="context"),
        threads=1,
        progress=False,
    )
    torch.set_num_threads(threads)
    assert (soft / "meta.json").is_file() and list(soft.glob("shard-*.npz"))
    exp = tmp_path / "exp"
    args = [
        "train",
        "--train",
        str(tiny_corpus / "train.jsonl"),
        "--dev",
        str(tiny_corpus / "dev.jsonl"),
        "--tokenizer",
        tok,
        "--out",
        str(exp),
        "--config",
        "tiny",
        "--threads",
        "1",
    ]
    from kdasr.errors import KdasrError
    from kdasr.training.presets import read_preset
    from kdasr.training.recipe import run_training
    from kdasr.training.request import TrainRun

    with pytest.raises(KdasrError, match="needs lm soft labels"):  # refused before any feature work
        run_training(
            TrainRun(
                tiny_corpus / "train.jsonl",
                tiny_corpus / "dev.jsonl",
                tiny_corpus / "tokenizer.model",
                exp,
                config="tiny",
                kd="lm",
                soft_labels=soft,
            ),
            read_preset("tiny"),
        )
    run_kdasr(*args, "--kd", "bert-context", "--soft-labels", str(soft), "--max-steps", "3")
    ck = torch.load(exp / "last.pt", weights_only=False)
    assert ck["summary"]["kd"] == "bert-context" and ck["summary"]["kd_weight"] == 0.3
    assert ck["summary"]["kd_mode"] == "context" and ck["summary"]["kd_utterances_without_soft_labels"] == 0
    header, first = (exp / "train_log.csv").read_text().splitlines()[:2]
    row = dict(zip(header.split(","), first.split(",")))
    assert float(row["soft"]) > 0 and float(row["hard"]) > 0


def test_teacher_with_other_units_is_refused(tiny_corpus, bert_teacher, tmp_path):
    from kdasr.teachers.bert import load_bert_teacher

    (tmp_path / "t.txt").write_text("completely different words here\nand some more text to learn from\n" * 20)
    other = Tokenizer(train_tokenizer([tmp_path / "t.txt"], tmp_path / "other", vocab_size=30))
    with pytest.raises(ModelError, match="differs from the ASR tokenizer"):
        load_bert_teacher(bert_teacher, other)
    with pytest.raises(ModelError, match="no config.json"):
        load_bert_teacher(tmp_path, other)
