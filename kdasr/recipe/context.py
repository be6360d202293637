"""What every stage of the paper recipe reads: the settings, the command runner, and the files of EXP
that stages hand to each other (the teachers, systems.txt)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .runner import RecipeError, Runner
from .settings import Settings


@dataclass(frozen=True)
class Ctx:
    s: Settings
    r: Runner

    @property
    def exp(self) -> Path:
        return self.s.exp

    def kdasr(self, *args) -> list[str]:
        return [*self.s.kdasr, *map(str, args)]

    def logf(self, name: str) -> Path:
        return self.r.logs / f"{name}.log"

    def manifest(self, name: str) -> Path:
        return self.s.data / f"{name}.jsonl"

    def teacher_dir(self, name: str) -> Path:
        return self.exp / "teachers" / name

    def bert_done(self) -> bool:  # a finished teacher is a saved model (config.json is moved in last)
        d = self.teacher_dir("bert")
        return (d / "config.json").is_file() and (d / "kdasr_teacher.json").is_file()

    def lm_done(self) -> bool:  # lm.pt is written atomically
        d = self.teacher_dir("lm")
        return (d / "lm.pt").is_file() and (d / "tokenizer.model").is_file()

    def soft_done(self, mode: str) -> bool:  # summary.json is written at the end (meta.json first)
        return (self.exp / "soft" / mode / "summary.json").is_file()

    def systems(self) -> list[str]:
        """The students of the table, one a line in EXP/systems.txt (written by the students stage)."""
        path = self.exp / "systems.txt"
        if not path.is_file():
            raise RecipeError(f"{path} missing: run the students stage first")
        return path.read_text().split()


def sha1_of(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()
