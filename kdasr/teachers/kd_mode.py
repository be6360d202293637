"""The distillation mode, one type for the CLI (`--kd`), the soft-label files (teacher + mode in
meta.json), the trainer and the recipe. Its string values are the ones on the command line and in
checkpoints and summaries (`"bert"` is utterance-level BERT), so nothing on disk changes. `"count"`
distils from the two-sided unit count model (kdasr.teachers.count_labels), a control for BERT's knowledge."""

from __future__ import annotations

from enum import StrEnum

from ..errors import KdasrError

COUNT_LABEL_MODE = "two-sided-count"  # meta.json's mode of count-model labels (kdasr.teachers.count_labels)


class KdMode(StrEnum):
    NONE = "none"
    LM = "lm"  # left-to-right Transformer LM teacher ("causal" soft labels)
    BERT = "bert"  # BERT over the utterance alone ("utterance" soft labels)
    BERT_CONTEXT = "bert-context"  # BERT over a document window around the utterance ("context")
    COUNT = "count"  # the two-sided unit count model p(u | left unit, right unit): a knowledge control

    @classmethod
    def parse(cls, value: str | KdMode) -> KdMode:
        """The mode `value` names; KdasrError (the `--kd` message) for anything else."""
        try:
            return cls(value)
        except ValueError:
            raise KdasrError(f"--kd must be one of {', '.join(m.value for m in cls)}, got {value!r}") from None

    @classmethod
    def of_soft_labels(cls, teacher: str, label_mode: str) -> KdMode | None:
        """The mode soft labels of `teacher` ("bert"/"lm"/"count") in `label_mode` (meta.json's mode) serve;
        None if none."""
        return next((m for m in cls if m is not cls.NONE and (m.teacher, m.label_mode) == (teacher, label_mode)), None)

    @property
    def teacher(self) -> str | None:
        """The teacher kind whose soft labels this mode trains on: "lm", "bert", "count", or None."""
        return {KdMode.NONE: None, KdMode.LM: "lm", KdMode.COUNT: "count"}.get(self, "bert")

    @property
    def context(self) -> bool:
        """Does the teacher see the utterance's document context?"""
        return self is KdMode.BERT_CONTEXT

    @property
    def label_mode(self) -> str | None:
        """The soft labels' mode as `kdasr teacher soft-labels` writes it in meta.json."""
        return {KdMode.LM: "causal", KdMode.BERT: "utterance", KdMode.BERT_CONTEXT: "context",
                KdMode.COUNT: COUNT_LABEL_MODE}.get(self)

    @property
    def default_weight(self) -> float:
        """λ of the soft term (Futami et al.: 0.1 utterance-level BERT and the LM, 0.3 with context; the
        count model, a control for utterance-level BERT, takes utterance BERT's 0.1)."""
        return {KdMode.NONE: 0.0, KdMode.BERT_CONTEXT: 0.3}.get(self, 0.1)


BERT_LABEL_MODES = ("utterance", "context")  # what `kdasr teacher soft-labels --mode` takes for a BERT teacher


def bert_label_mode(mode: str) -> KdMode:
    """The KD mode BERT soft labels of `mode` ("utterance" or "context") are for; KdasrError otherwise."""
    found = KdMode.of_soft_labels("bert", mode)
    if found is None:
        raise KdasrError(f"unknown soft-label mode {mode!r} (utterance or context)")
    return found
