"""A teacher's masked prediction depends on its input.

The BERT teacher of issue 10 collapsed: it predicted the same distribution at every masked
position whatever the context. Here each architecture is trained through kdasr's own sampler,
masking and loop on a tiny text where the context alone determines the masked unit (the words
follow a fixed cycle, "cat dog fox owl ...", from a random start); afterwards two contexts must
give different distributions with the right unit on top. The same probe must say "collapsed"
for a model whose output ignores its input."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from kdasr.teachers.bert import BertConfigLite, masked_distribution, train_bert
from kdasr.teachers.common import TeacherTrainConfig
from kdasr.text import Tokenizer, train_tokenizer

STEPS = 150
WORDS = ["cat", "dog", "fox", "owl", "bee", "ant", "cow", "pig"]


pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Tokenizer, list[list[str]]]:
    rng = random.Random(0)

    def sentence() -> str:
        start = rng.randrange(len(WORDS))
        return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(6))

    docs = [[sentence() for _ in range(8)] for _ in range(60)]
    d = tmp_path_factory.mktemp("toy")
    (d / "text.txt").write_text("\n".join(s for doc in docs for s in doc) + "\n")
    tok = Tokenizer(train_tokenizer([d / "text.txt"], d / "sp", vocab_size=29))
    assert all(len(tok.encode(w)) == 1 for w in WORDS), "the toy needs one unit per word"
    return tok, docs


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def depends_on_input(model, tok: Tokenizer) -> tuple[bool, float]:
    """Mask the middle word of two contexts: the distributions must differ (TV > 0.5) and each put
    the right word on top."""
    dists, right = [], True
    for text in ("cat dog fox", "owl bee ant"):
        ids = tok.encode(text)
        p = masked_distribution(model, ids, 1, tok.mask_id)
        right &= int(p.argmax()) == ids[1]
        dists.append(p)
    tv = total_variation(*dists)
    return bool(right and tv > 0.5), tv


# post-norm BERT needs more steps: at 150 it still sits on the toy's unigram plateau (loss 2.11 ≈ ln 8,
# TV 0.014), as it does on the real text; it leaves it slowly and passes by 600 (TV 0.89)
# bf16: the recipe's setting on CPUs with AMX; the teacher must learn as well and stay an fp32 model
@pytest.mark.parametrize(
    "arch,lr,steps,amp",
    [("modernbert", 3e-3, STEPS, "none"), ("modernbert", 3e-3, STEPS, "bf16"), ("bert", 1e-3, 600, "none")],
)
def test_trained_teacher_prediction_depends_on_context(toy, arch, lr, steps, amp):
    tok, docs = toy
    cfg = BertConfigLite(layers=2, hidden=64, heads=2, ff_dim=128, window=32, arch=arch, dropout=0.0)
    tcfg = TeacherTrainConfig(steps=steps, batch_size=16, lr=lr, warmup_steps=30, log_every=1000, amp=amp)
    model, summary = train_bert(docs, tok, cfg, tcfg, short_prob=0.0)
    ok, tv = depends_on_input(model, tok)
    assert ok, f"{arch}/{amp}: prediction ignores the context (TV {tv:.3f}, loss {summary['final_loss_ema']})"
    assert summary["amp"] == amp and all(p.dtype == torch.float32 for p in model.parameters())


def test_probe_flags_a_collapsed_teacher(toy):
    """A teacher whose last hidden state is constant predicts the same thing everywhere."""
    tok, docs = toy
    cfg = BertConfigLite(layers=2, hidden=64, heads=2, ff_dim=128, window=32, dropout=0.0)
    tcfg = TeacherTrainConfig(steps=STEPS, batch_size=16, lr=3e-3, warmup_steps=30, log_every=1000)
    model, _ = train_bert(docs, tok, dataclasses.replace(cfg), tcfg, short_prob=0.0)
    assert depends_on_input(model, tok)[0]
    with torch.no_grad():
        model.model.final_norm.weight.zero_()  # output no longer depends on the input
    ok, tv = depends_on_input(model, tok)
    assert not ok and tv < 1e-6
