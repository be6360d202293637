"""What `kdasr bench` (the engine report) measured, as typed records: the settings it timed, each
with its engine's encoder alone beside it, and the long-audio run. Nothing here formats; the
writers (kdasr.reports.bench_report) read the records and look settings up by name. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from .engines import Row

# the names the report's sections and ratios are built on (measured by kdasr.reports.bench)
ORT_FP32_B1 = "ORT fp32, batch 1"
ORT_INT8_B1 = "ORT int8, batch 1"
ORT_FP32_B16 = "ORT fp32, batch 16"
# search settings are named "<precision> <label>" (search_name)
GREEDY = "greedy (beam 1)"  # the base the search rows are compared with
BEAM5 = "beam 5"  # plain beam search: the base the fusion and rescoring rows are compared with


def search_name(precision: str, label: str) -> str:
    return f"{precision} {label}"


@dataclass(frozen=True)
class Measured:
    """One setting end to end (`row`) and the same engine's encoder alone on the same batches."""

    row: Row
    encoder: Row
    note: str = ""  # what sets the setting apart, shown before its stage times

    @property
    def name(self) -> str:
        return self.row.name


@dataclass(frozen=True)
class LongAudio:
    """The long file transcribed in process (greedy), then `kdasr transcribe` on it in a fresh
    process for its peak RSS (greedy and beam 5; wall time includes start-up)."""

    seconds_audio: float
    segment_ends: tuple[float, ...]
    wall_s: float
    rss_mb_greedy: float
    wall_s_greedy: float
    rss_mb_beam5: float
    wall_s_beam5: float


@dataclass(frozen=True)
class RuntimeBench:
    run: str  # when it started (UTC)
    machine: dict  # kdasr.reports.bench.machine_info()
    command: str
    note: str
    manifest: str
    utterances: int
    seconds_audio: float
    sample_rate: int  # the model's (the audio was loaded at it)
    model: str
    threads: int
    repeats: int
    reference: str | None  # the reference engine's name (None: no reference engine)
    reference_source: str  # what it was built from
    has_int8: bool
    engines: tuple[Measured, ...]  # greedy, batch 1, one per engine
    batch16: Measured  # ORT fp32 greedy at batch 16
    search: tuple[Measured, ...]  # batch 16
    recommended: str  # the name of the search setting model.json recommends
    recommended_label: str  # that decoding in words ("beam 10 + CTC 0.2 (model.json recommends)")
    fusion: tuple[Measured, ...]  # fusion and rescoring settings (empty: no LM/BERT exported)
    long_audio: LongAudio

    @property
    def engines_base(self) -> str:
        """The setting the engines are compared with: the reference engine's, else ORT fp32's."""
        return f"{self.reference}, batch 1" if self.reference is not None else ORT_FP32_B1

    def settings(self) -> tuple[Measured, ...]:
        return (*self.engines, self.batch16, *self.search, *self.fusion)

    def setting(self, name: str) -> Measured:
        for m in self.settings():
            if m.name == name:
                return m
        raise KeyError(f"no setting {name!r} in this bench run")

    def get(self, name: str) -> Measured | None:
        return next((m for m in self.settings() if m.name == name), None)
