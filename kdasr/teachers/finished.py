"""A teacher command rerun on a run that has already spent its budget keeps the saved teacher.

Saving again would swap the teacher's files under a soft-label pass that may be reading them, and
redo the dev pass (minutes for BERT) to write the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

from ..models.torch_files import load_torch_file
from .bert import TEACHER_JSON
from .lm_train import LM_FILE


def saved_summary(out: Path) -> dict | None:
    """The summary stored with the teacher saved in OUT (BERT or LM), None when none is saved."""
    out = Path(out)
    if (out / TEACHER_JSON).is_file() and (out / "config.json").is_file():
        return json.loads((out / TEACHER_JSON).read_text()).get("summary")
    if (out / LM_FILE).is_file():
        return load_torch_file(out / LM_FILE, "kdasr LM teacher").get("summary")
    return None


def already_trained(out: Path, summary: dict) -> dict | None:
    """The saved teacher's summary, marked already_trained, when this run took no step (its checkpoint
    had spent the budget) and a teacher is saved in OUT; None when the run must save."""
    if summary["steps"] != summary["resumed_from_step"]:
        return None
    prior = saved_summary(out)
    return None if prior is None else {**prior, "already_trained": True}
