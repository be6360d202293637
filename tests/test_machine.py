"""kdasr.machine's CPU facts: which flags make bf16 autocast worth it (the recipe's TEACHER_AMP)."""

from __future__ import annotations

import pytest

from kdasr import machine


@pytest.mark.parametrize(
    ("flags", "fast"),
    [
        ("fpu sse avx2 avx512f amx_tile amx_bf16 amx_int8", True),  # Intel Sapphire Rapids
        ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4/5
        ("fpu sse avx2 avx512f avx512_vnni", False),  # AVX-512 without bf16: emulated
        ("", False),  # no /proc/cpuinfo
    ],
)
def test_fast_bf16_from_flags(monkeypatch, flags, fast):
    monkeypatch.setattr(machine, "_cpuinfo_field", lambda name: flags if name == "flags" else None)
    assert machine.cpu_has_fast_bf16() is fast
    assert machine.cpu_has_amx() is ("amx_bf16" in flags)
