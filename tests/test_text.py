"""normalize_text policy, train_tokenizer and Tokenizer on a real (tiny) sentencepiece model."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from kdasr.cli.data import tokenizer_app
from kdasr.errors import KdasrError, ManifestError, ModelError, TextError
from kdasr.text import Tokenizer, normalize_text, train_tokenizer

WORDS = [
    "the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "hat", "big", "small", "red",
    "blue", "green", "quickly", "slowly", "don't", "saul's", "house", "river", "tree", "stone",
    "light", "dark", "morning", "evening",
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("  Café   naïve\tRÉSUMÉ\n", "cafe naive resume"),
        ("Don't stop; Saul's dog", "don't stop saul's dog"),
        ("Don\u2019t say \u2018hi\u2019", "don't say hi"),
        ("'tis the dogs' bone", "tis the dogs bone"),
        ("rock & roll", "rock and roll"),
        ("Straße, Æsop", "strasse aesop"),
        ("well--I mean...", "well i mean"),
        ("", ""),
        ("?!", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_is_idempotent():
    s = "Don\u2019t & É'tre 'quoted' — end"
    assert normalize_text(normalize_text(s)) == normalize_text(s)


@pytest.mark.parametrize("raw", ["in 1984 it rained", "chapter ²", "about ½ of it", "page ٣"])
def test_digits_are_rejected_with_the_text(raw):
    with pytest.raises(TextError, match="contains digits") as e:
        normalize_text(raw)
    assert repr(raw) in str(e.value)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    d = tmp_path_factory.mktemp("tok")
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize() + "." for _ in range(300)]
    lines += ["There were 3 cats.", "", "   "]  # skipped: digits, empty
    (d / "text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def model(corpus):
    return train_tokenizer([corpus / "text.txt"], corpus / "out" / "sp40", vocab_size=40)


def test_train_writes_model_atomically(model, corpus):
    assert model == corpus / "out" / "sp40.model" and model.is_file()
    assert (corpus / "out" / "sp40.vocab").is_file()
    assert sorted(p.name for p in (corpus / "out").iterdir()) == ["sp40.model", "sp40.vocab"]  # no temp left


def test_tokenizer_special_ids_and_roundtrip(model):
    tok = Tokenizer(model)
    assert tok.vocab_size == 40
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.id_to_piece(4) == "<mask>" and tok.id_to_piece(0) == "<pad>"
    text = "the big dog don't sat under saul's tree"
    ids = tok.encode(text)
    assert ids and all(5 <= i < 40 for i in ids)
    assert tok.decode(ids) == text
    # specials (CTC blank, bos/eos, mask) are dropped; numpy-style ints accepted
    noisy = [tok.bos_id, ids[0], tok.pad_id, *ids[1:], tok.mask_id, tok.eos_id, tok.pad_id]
    assert tok.decode(noisy) == text
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([40])
    assert tok.model_bytes == model.read_bytes() and tok.path == model


def test_tokenizer_from_bytes(model):
    tok = Tokenizer.from_bytes(model.read_bytes())
    assert tok.encode("red cat") == Tokenizer(model).encode("red cat") and tok.path is None


def test_tokenizer_errors(tmp_path, model):
    with pytest.raises(ModelError, match="nothere.model: tokenizer model not found"):
        Tokenizer(tmp_path / "nothere.model")
    junk = tmp_path / "junk.model"
    junk.write_text("not a model")
    with pytest.raises(ModelError, match="junk.model: not a sentencepiece model"):
        Tokenizer(junk)


def test_foreign_sentencepiece_model_rejected(corpus, tmp_path):
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=str(corpus / "text.txt"), model_prefix=str(tmp_path / "plain"), vocab_size=60, minloglevel=2
    )
    with pytest.raises(ModelError, match="not trained by kdasr"):
        Tokenizer(tmp_path / "plain.model")


def test_train_errors(corpus, tmp_path):
    with pytest.raises(TextError, match=r"vocab_size 5000 is too large .*--vocab-size \d+ or less"):
        train_tokenizer([corpus / "text.txt"], tmp_path / "big", vocab_size=5000)
    with pytest.raises(TextError, match="too small"):
        train_tokenizer([corpus / "text.txt"], tmp_path / "tiny", vocab_size=8)
    digits = tmp_path / "digits.txt"
    digits.write_text("1 2 3\n\n")
    with pytest.raises(TextError, match="no usable transcript lines"):
        train_tokenizer([digits], tmp_path / "none", vocab_size=40)
    with pytest.raises(KdasrError, match="missing.txt: no such text file"):
        train_tokenizer([tmp_path / "missing.txt"], tmp_path / "x")
    assert not list(tmp_path.glob("*.model")) and not list(tmp_path.glob(".*"))  # failures leave nothing


def test_cli_train_from_jsonl_manifest(corpus, tmp_path):
    rng = random.Random(1)
    rows = [{"id": f"u{i}", "text": " ".join(rng.choice(WORDS) for _ in range(6))} for i in range(200)]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(tokenizer_app, [str(manifest), "--out", str(tmp_path / "m"), "--vocab-size", "36"])
    assert res.exit_code == 0, res.output
    assert "vocab size 36" in res.output
    assert Tokenizer(tmp_path / "m.model").decode(Tokenizer(tmp_path / "m.model").encode("red hat")) == "red hat"

    manifest.write_text(json.dumps(rows[0]) + "\n{broken\n")
    with pytest.raises(ManifestError, match=r"train\.jsonl:2"):
        train_tokenizer([manifest], tmp_path / "m2", vocab_size=36)
    res = CliRunner().invoke(tokenizer_app, [str(manifest), "--out", str(tmp_path / "m2")])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: ") and "train.jsonl:2" in res.stderr
