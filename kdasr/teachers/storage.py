"""Soft labels as a versioned artifact (DESIGN.md §4 storage): a folder with `meta.json` and
numpy shards, never pickle.

Each shard `shard-NNNNN.npz` holds, for a fixed slice of the utterance list:
  utt_ids  str [n]          utterance ids
  offsets  int64 [n + 1]    rows of utterance i are ids[offsets[i]:offsets[i+1]]
  ids      int16|int32 [N, K]  top-K token ids per transcript token (<eos> has no row)
  probs    float16 [N, K]   softmax at temperature T over those K (each row sums to 1)
Shards are written atomically and skipped when present, so a killed run resumes where it stopped.
`meta.json` records what made them; a re-run with other settings refuses to mix shards.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..dir_lock import dir_lock
from ..errors import KdasrError
from ..io_utils import atomic_open, atomic_write_text

FORMAT_VERSION = 1
Rows = dict[str, tuple[np.ndarray, np.ndarray]]  # utt id -> (top-K ids [n, K], probs [n, K])


@dataclass(frozen=True)
class SoftLabelMeta:
    teacher: str  # "bert", "lm" or "count"
    mode: str  # "utterance", "context" (BERT), "causal" (LM) or "two-sided-count" (count model)
    top_k: int
    temperature: float
    window: int  # BERT context window in tokens (0 for utterance / LM)
    vocab_size: int
    tokenizer_sha1: str
    teacher_path: str = ""
    format_version: int = FORMAT_VERSION
    amp: str = "none"  # the teacher's forward precision ("bf16": autocast)
    # a teacher read from one file (the count model's text): its sha1 and size, so that a resume with
    # another text is refused; omitted from meta.json when empty (BERT and LM folders are unchanged)
    teacher_sha1: str = ""
    teacher_bytes: int = 0

    def to_json(self) -> str:
        d = asdict(self)
        if not d["teacher_sha1"]:
            del d["teacher_sha1"], d["teacher_bytes"]
        return json.dumps(d, indent=2) + "\n"


def tokenizer_sha1(model_bytes: bytes) -> str:
    return hashlib.sha1(model_bytes).hexdigest()


def shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"shard-{index:05d}.npz"


WRITER_LOCK = ".writer.lock"
PROGRESS = "progress.json"  # the seconds and runs spent on a folder's shards so far


def _progress(out_dir: Path) -> dict:
    try:
        doc = json.loads((Path(out_dir) / PROGRESS).read_text())
        return {"seconds": float(doc["seconds"]), "runs": int(doc["runs"])}
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or from before it was kept: counted from now
        return {"seconds": 0.0, "runs": 0}


@contextmanager
def one_writer(out_dir: Path, poll_s: float = 30.0) -> Iterator[None]:
    """One process writing OUT_DIR's soft labels at a time: a second run into the same folder (a recipe
    beside a run started by hand) waits for the first, then keeps its shards, instead of computing the same
    shards beside it."""
    def say(holder: str) -> None:
        print(f"{out_dir}: another run is writing these soft labels ({holder}); waiting for it to end",
              file=sys.stderr, flush=True)

    with dir_lock(out_dir, WRITER_LOCK, wait=True, say=say, poll_s=poll_s):
        yield


def prepare_dir(out_dir: Path, meta: SoftLabelMeta) -> None:
    """Create out_dir with meta.json, or check an existing one matches (so a resume cannot mix)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "meta.json"
    if path.exists():
        old = {"amp": "none", **json.loads(path.read_text())}  # dirs from before `amp` was recorded
        new = json.loads(meta.to_json())
        diff = {k for k in new if k != "teacher_path" and old.get(k) != new[k]}
        if diff:
            raise KdasrError(
                f"{out_dir} holds soft labels made with other settings ({', '.join(sorted(diff))}); "
                "use another --out or delete it"
            )
    else:
        atomic_write_text(path, meta.to_json())


def write_shard(path: Path, rows: Rows, vocab_size: int) -> None:
    """rows: utt id -> (ids [n, K], probs [n, K]) in the order to store."""
    uids = list(rows)
    counts = [rows[u][0].shape[0] for u in uids]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    k = next((rows[u][0].shape[1] for u in uids), 1)
    id_dtype = np.int16 if vocab_size <= np.iinfo(np.int16).max else np.int32
    ids = np.concatenate([rows[u][0] for u in uids]).astype(id_dtype) if uids else np.zeros((0, k), id_dtype)
    probs = np.concatenate([rows[u][1] for u in uids]).astype(np.float16) if uids else np.zeros((0, k), np.float16)
    with atomic_open(path, "wb") as f:
        np.savez(f, utt_ids=np.array(uids, dtype=str), offsets=offsets, ids=ids, probs=probs)


def write_label_shards(
    out_dir: Path,
    shards: Sequence[Sequence],
    label: Callable[[Sequence], tuple[Rows, int]],
    vocab_size: int,
    stats: dict,
    title: str = "soft labels",
    progress: bool = True,
    stop_after_shards: int | None = None,
) -> None:
    """Label each shard of utterances (`label(shard)` -> rows, tokens labelled) and write it as
    shard-NNNNN.npz in order; a shard already on disk is kept (the resume). Counts `seconds` and
    `shards_written` into `stats` (this run's), and over every run that wrote shards into OUT_DIR
    (`seconds_all_runs`, `runs`: kept in OUT_DIR/progress.json after each shard, so a pass resumed after
    a kill still reports what it cost in all); the teacher-specific counts are `label`'s to keep."""
    before = _progress(out_dir)
    runs = before["runs"] + 1

    def account() -> None:
        stats["seconds_all_runs"] = round(before["seconds"] + stats["seconds"], 1)
        stats["runs"] = runs if stats["shards_written"] else before["runs"]
        atomic_write_text(out_dir / PROGRESS, json.dumps({"seconds": stats["seconds_all_runs"],
                                                           "runs": stats["runs"]}) + "\n")

    columns = [TextColumn(title), BarColumn(), TextColumn("{task.completed}/{task.total} utts"),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("", total=sum(len(s) for s in shards), info="")
        for index, shard in enumerate(shards):
            path = shard_path(out_dir, index)
            if path.exists():
                bar.advance(task, len(shard))
                continue
            t0 = time.time()
            rows, tokens = label(shard)
            write_shard(path, rows, vocab_size)
            stats["seconds"] += time.time() - t0
            stats["shards_written"] += 1
            account()
            bar.update(task, advance=len(shard), info=f"{tokens / max(time.time() - t0, 1e-9):.0f} tokens/s")
            if stop_after_shards is not None and stats["shards_written"] >= stop_after_shards:
                break
    account()


@dataclass
class SoftLabels:
    meta: SoftLabelMeta
    rows: dict[str, tuple[np.ndarray, np.ndarray]]  # utt id -> (ids int64 [n, K], probs float32 [n, K])
    bytes_on_disk: int

    def get(self, utt_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self.rows.get(utt_id)


def read_meta(out_dir: Path) -> SoftLabelMeta:
    out_dir = Path(out_dir)
    meta_path = out_dir / "meta.json"
    if not meta_path.is_file():
        raise KdasrError(f"{out_dir}: no soft labels here (meta.json missing; run `kdasr teacher soft-labels`)")
    d = json.loads(meta_path.read_text())
    if d.get("format_version") != FORMAT_VERSION:
        raise KdasrError(f"{out_dir}: soft-label format {d.get('format_version')}, this kdasr reads {FORMAT_VERSION}")
    return SoftLabelMeta(**d)


def load_soft_labels(out_dir: Path) -> SoftLabels:
    out_dir = Path(out_dir)
    meta = read_meta(out_dir)
    rows, size = {}, 0
    for path in sorted(out_dir.glob("shard-*.npz")):
        size += path.stat().st_size
        with np.load(path) as z:
            offsets, ids, probs = z["offsets"], z["ids"].astype(np.int64), z["probs"].astype(np.float32)
            for i, uid in enumerate(z["utt_ids"]):
                a, b = offsets[i], offsets[i + 1]
                rows[str(uid)] = (ids[a:b], probs[a:b])
    return SoftLabels(meta, rows, size)
