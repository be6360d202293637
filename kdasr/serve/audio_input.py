"""Uploaded bytes -> a 16 kHz waveform, with the server's limits and an HTTP status per reason:
unrecognised format 415, corrupt or empty 400, too long 413. numpy + soundfile only."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ..audio import header_mismatch, load_audio_bytes, truncation_warning
from ..errors import AudioError
from .errors import ApiError


def decode_upload(data: bytes, name: str, sample_rate: int, max_seconds: float) -> tuple[np.ndarray, tuple[str, ...]]:
    """(waveform, warnings about the file itself: a header longer than the file). The duration is
    read from the header first, so a too-long file is refused before decoding."""
    if not data:
        raise ApiError(400, f"{name}: empty file (0 bytes)", "invalid_audio", "file")
    try:
        info = sf.info(io.BytesIO(data))
    except sf.SoundFileError as e:
        reason = getattr(e, "error_string", None) or str(e)
        if "not recognised" in reason.lower() or "unknown format" in reason.lower():
            raise ApiError(
                415, f"{name}: unsupported audio format ({reason.strip()}); send wav, flac, ogg or mp3",
                "unsupported_audio_format", "file",
            ) from None
        raise ApiError(400, f"{name}: not a readable audio file ({reason.strip()})", "invalid_audio", "file") from None
    if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
        raise _too_long(name, info.frames / info.samplerate, max_seconds)
    try:
        wave = load_audio_bytes(data, name, sample_rate)
    except AudioError as e:
        raise ApiError(400, f"{name}: {e.reason}", "invalid_audio", "file") from None
    if len(wave) / sample_rate > max_seconds:  # headers can understate (streams without a frame count)
        raise _too_long(name, len(wave) / sample_rate, max_seconds)
    mismatch = header_mismatch(info.extra_info)
    return wave, ((truncation_warning(mismatch),) if mismatch else ())


def _too_long(name: str, seconds: float, max_seconds: float) -> ApiError:
    return ApiError(
        413, f"{name}: audio is {seconds:.1f} s, the server's limit is {max_seconds:g} s", "audio_too_long", "file"
    )
