"""What both teachers share: reading the teacher text, and the training settings (the loop itself
is `train_loop.train_steps`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import KdasrError, TextError
from ..text import normalize_text


@dataclass(frozen=True)
class TeacherTrainConfig:
    steps: int = 2000  # step budget (with `minutes`, whichever is spent first ends the run)
    batch_size: int = 16  # windows (BERT) or sentences (LM) per step
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    minutes: float | None = None  # wall-clock budget, summed over resumed runs
    seed: int = 0
    threads: int | None = None
    log_every: int = 50  # steps between train_log.csv rows
    eval_every: int = 500  # steps between dev-loss rows (0: never)
    save_every_s: float = 300.0  # seconds between checkpoints
    decay_frac: float = 0.2  # share of the budget over which the lr decays at the end
    amp: str = "none"  # "bf16": autocast the forward pass (weights and optimizer stay fp32)
    device: str = "cpu"  # a torch device string (resolve_device turns "auto" into one)


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; a CUDA device torch cannot use is a
    one-line error (a CPU build of torch, no driver, an index past the GPU count)."""
    import torch

    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise KdasrError(f"--device {name}: torch {torch.__version__} ({build}) sees no CUDA GPU; use --device cpu")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            raise KdasrError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return name
    raise KdasrError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")


def read_documents(path: Path) -> list[list[str]]:
    """Documents as lists of normalised sentences. `.jsonl`: one {"doc", "sentences"} per line, or
    a speech manifest ({"text", "doc", "pos"}: grouped by doc, ordered by pos). Other files: one
    sentence per line, documents separated by blank lines. Sentences the text policy rejects
    (digits) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise KdasrError(f"{path}: no such text file")

    def norm(s: str) -> str | None:
        try:
            return normalize_text(s) or None
        except TextError:
            return None

    docs: list[list[str]] = []
    if path.suffix == ".jsonl":
        manifest: dict[str, dict[int, str]] = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                raise KdasrError(f"{path}:{n}: not JSON") from None
            if "sentences" in d:
                docs.append([s for s in map(norm, d["sentences"]) if s])
            elif "text" in d:
                manifest.setdefault(d.get("doc") or d.get("id", str(n)), {}).setdefault(d.get("pos", 0), d["text"])
            else:
                raise KdasrError(f"{path}:{n}: expected 'sentences' or 'text'")
        for by_pos in manifest.values():
            docs.append([s for s in (norm(by_pos[p]) for p in sorted(by_pos)) if s])
    else:
        current: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                if current:
                    docs.append(current)
                current = []
            elif s := norm(line):
                current.append(s)
        if current:
            docs.append(current)
    docs = [d for d in docs if d]
    if not docs:
        raise KdasrError(f"{path}: no usable text")
    return docs
