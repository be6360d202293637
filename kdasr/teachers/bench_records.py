"""What `kdasr teacher bench` measured, as typed records (kdasr.teachers.bench measures,
kdasr.teachers.bench_report writes). KdStepTimes is filled by the trainer's benchmark
(kdasr.training.kd_bench), which the command passes in."""

from __future__ import annotations

from dataclasses import dataclass

BASELINE_STEP = "baseline (CE)"


@dataclass(frozen=True)
class SoftLabelSpeed:
    """Soft-label generation in one mode: the paper code's straightforward way, fast, fast + dedup
    (labels compared with the straightforward ones), and bf16 autocast against fp32 fast + dedup."""

    mode: str  # "utterance" or "context"
    utterances: int
    tokens: int
    mean_window: float
    unique_windows: int
    windows: int
    slow_tps: float
    fast_tps: float
    dedup_tps: float
    same_ids: float  # fraction of top-8 ids equal (fast vs straightforward)
    max_prob_diff: float
    bf16_tps: float
    bf16_same_top1: float
    bf16_same_ids: float
    bf16_max_prob_diff: float


@dataclass(frozen=True)
class KdStepTimes:
    """Median seconds of one training step per variant (one of them `baseline`), on a synthetic
    batch of `batch` x `frames` feature frames and `units` tokens, over `steps` interleaved steps."""

    preset: str
    batch: int
    frames: int
    units: int
    steps: int
    seconds: dict[str, float]
    baseline: str = BASELINE_STEP


@dataclass(frozen=True)
class BertInfo:
    path: str
    layers: int
    hidden: int
    heads: int
    window: int


@dataclass(frozen=True)
class LmInfo:
    layers: int
    d_model: int


@dataclass(frozen=True)
class TeacherBench:
    run: str  # when it started (UTC)
    machine: str  # kdasr.teachers.bench.machine()
    command: str
    utterances: int  # training utterances timed per soft-label method
    repeats: int
    threads: int | None
    bert: BertInfo
    lm: LmInfo
    soft_labels: tuple[SoftLabelSpeed, ...]
    lm_tokens: int
    lm_tps: float  # LM labels: one causal forward per utterance
    bytes_per_token: float  # soft-label storage
    kd_step: KdStepTimes | None  # None: not measured
    dev_sentences: int
    bert_pppl: float
    lm_ppl: float

    def soft_label(self, mode: str) -> SoftLabelSpeed:
        for r in self.soft_labels:
            if r.mode == mode:
                return r
        raise KeyError(f"no soft-label timing for mode {mode!r}")
