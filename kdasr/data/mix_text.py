"""The mix's teacher text: corpus v2's teacher text plus the real corpora's train transcripts, one
document per game dialogue in the order its lines are spoken (BERT's context mode reads neighbours).
A line whose text is also in any dev or test set is left out, so the teachers never saw a held-out
sentence (short game lines such as "yes" recur across characters). Torch-free."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from kdasr.data.manifest import read_manifest
from kdasr.io_utils import atomic_write_text


def write_teacher_text(out: Path, synthetic: Path, real: list[Path], held_out: list[Path]) -> dict:
    """Write out/teacher.txt; returns counts (documents and lines added, lines left out as held out)."""
    base = synthetic / "teacher.txt"  # corpus v2 has one; another synthetic corpus may not
    held = {u.text for m in held_out if m.is_file() for u in read_manifest(m)}
    docs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    left_out = 0
    for folder in real:
        for u in read_manifest(folder / "train.jsonl"):
            if u.text in held:
                left_out += 1
                continue
            docs[u.doc or u.id].append((u.pos, u.text))
    blocks = ["\n".join(text for _, text in sorted(lines)) + "\n" for _, lines in sorted(docs.items())]
    head = base.read_text(encoding="utf-8").rstrip("\n") + "\n\n" if base.is_file() else ""
    text = head + "\n".join(blocks)
    atomic_write_text(out / "teacher.txt", text)
    return {"documents_added": len(blocks), "lines_added": sum(len(v) for v in docs.values()),
            "lines_left_out_held_out": left_out, "base": str(base) if head else None}
