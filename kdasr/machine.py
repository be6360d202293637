"""What machine this is, for benchmark reports: the CPU's model name and its instruction-set flags."""

from __future__ import annotations

import platform
from pathlib import Path


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """e.g. 'Intel(R) Xeon(R) Platinum 8488C' (Linux), else what `platform` knows."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def cpu_has_amx() -> bool:
    """AMX bf16 tiles: where bf16 autocast pays off on a CPU (elsewhere it is emulated and slower)."""
    return "amx_bf16" in (_cpuinfo_field("flags") or "").split()
