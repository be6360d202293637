"""Decoding options in one frozen dataclass; override with dataclasses.replace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecodeOptions:
    method: str = "attention"  # "attention" (the seq2seq decoder) or "ctc" (the auxiliary head, greedy)
    beam: int = 1  # 1 = greedy
    max_len_ratio: float = 0.6  # output tokens per encoder frame, hard cap
    # The CTC head's greedy length bounds the attention output (len * ratio + slack): small
    # attention decoders otherwise loop and stop late.
    ctc_length_ratio: float = 1.5
    ctc_length_slack: int = 4
    batch_size: int = 16
    max_batch_seconds: float = 400.0  # padded audio per encoder call

    def __post_init__(self) -> None:
        if self.method not in ("attention", "ctc"):
            raise ValueError(f"method must be 'attention' or 'ctc', not {self.method!r}")
        if self.beam != 1:
            raise ValueError("only greedy decoding (beam 1) is implemented so far")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
