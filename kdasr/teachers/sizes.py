"""Teacher sizes (`kdasr teacher bert/lm --size`): named shapes, with per-run overrides."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeacherSize:
    layers: int
    hidden: int
    heads: int
    ff_dim: int

    def override(self, layers: int | None = None, hidden: int | None = None, heads: int | None = None) -> TeacherSize:
        """This size with the given fields replaced; the feed-forward width keeps its ratio to hidden."""
        width = hidden or self.hidden
        return TeacherSize(layers or self.layers, width, heads or self.heads, self.ff_dim * width // self.hidden)


# "paper" is Futami et al.'s BERT
TEACHER_SIZES = {
    "paper": TeacherSize(6, 512, 8, 2048),
    "demo": TeacherSize(4, 256, 4, 1024),
    "tiny": TeacherSize(2, 32, 2, 64),
}

