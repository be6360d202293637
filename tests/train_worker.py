"""Train the tiny student on synthetic features, for the resume and DDP tests (run as a script,
also under torchrun). Usage: train_worker.py OUT MAX_STEPS [--save-rank-state] [--branch-from CKPT]"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from kdasr.text import Tokenizer, train_tokenizer
from kdasr.training.checkpoint import TrainingCheckpoint
from kdasr.training.data import Examples
from kdasr.training.distributed import init_distributed, shutdown
from kdasr.training.presets import load_preset
from kdasr.training.trainer import train

WORDS = "the man knew eve his wife and she conceived gave birth to cain god said let there be light".split()


def tokenizer(folder: Path) -> Tokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "sp.model").exists():
        rng = np.random.default_rng(0)
        lines = [" ".join(rng.choice(WORDS, 6)) for _ in range(200)]
        (folder / "text.txt").write_text("\n".join(lines) + "\n")
        train_tokenizer([folder / "text.txt"], folder / "sp", vocab_size=40)
    return Tokenizer(folder / "sp.model")


def examples(tok: Tokenizer, n: int, seed: int) -> Examples:
    rng = np.random.default_rng(seed)
    ids, feats, tokens, texts = [], [], [], []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, int(rng.integers(2, 5))))
        ids.append(f"utt{seed}-{i}")
        feats.append(rng.standard_normal((int(rng.integers(60, 200)), 80)).astype(np.float16))
        tokens.append(tok.encode(text))
        texts.append(text)
    return Examples(ids, feats, tokens, texts)


def main() -> None:
    out, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    info = init_distributed()
    tok = tokenizer(out.parent / f"{out.name}-tok-{info.rank}")
    model_cfg, cfg = load_preset("tiny", tok.vocab_size)
    cfg = dataclasses.replace(
        cfg,
        max_steps=max_steps,
        max_frames=600,
        checkpoint_minutes=0.0,
        threads=1,
        specaug_start_step=3,
        dev_utterances=4,
    )

    def save_rank_state(model: torch.nn.Module) -> None:
        if "--save-rank-state" in sys.argv:
            torch.save(model.state_dict(), out / f"rank{info.rank}.pt")

    branch, summary = None, None
    if "--branch-from" in sys.argv:  # as `kdasr train --branch-from`: only when OUT holds no run yet
        source = Path(sys.argv[sys.argv.index("--branch-from") + 1])
        summary = {"branched_from": {"path": str(source)}}
        branch = None if (out / "last.pt").exists() else TrainingCheckpoint.load(source, action="branch")
    train(
        model_cfg, cfg, examples(tok, 16, 1), examples(tok, 4, 2), tok, out, dist_info=info,
        on_finish=save_rank_state, branch=branch, summary=summary,
    )
    shutdown(info)


if __name__ == "__main__":
    main()
