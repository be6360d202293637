"""Uploaded bytes -> a 16 kHz waveform, with the server's limits and an HTTP status per reason:
unrecognised format 415, corrupt or empty 400, too long 413. numpy + soundfile + soxr only.

Memory and CPU are bounded by what is decoded, not by what a small file can claim: everything the header
says is checked before the first sample is decoded (duration, a sample rate below MIN_RATE, more input
samples than MAX_INPUT_RATE allows), then the file is decoded in blocks, downmixed and resampled as it
goes, and stopped as soon as it passes the duration limit (headers can understate). A 30 KB FLAC of
constant frames at 96 kHz x 8 channels once became 1.8 GB of float32 before any limit applied."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ..audio import header_mismatch, iter_audio_bytes_blocks, truncation_warning
from ..errors import AudioError
from .errors import ApiError

MIN_RATE = 4000  # Hz; telephone speech is 8 kHz
MAX_INPUT_RATE = 2 * 96000  # input samples per second of the duration limit: up to 96 kHz stereo
BLOCK_SECONDS = 5.0  # decoded per step (also capped at 4 MB of input samples: kdasr.audio.MAX_BLOCK_VALUES)


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
    if info.samplerate < MIN_RATE:  # a WAV "at 1 Hz": 1 KB claims minutes, and upsampling it costs seconds
        raise ApiError(400, f"{name}: sample rate {info.samplerate} Hz is below {MIN_RATE} Hz: not speech audio",
                       "invalid_audio", "file")
    if info.frames / info.samplerate > max_seconds:
        raise _too_long(name, info.frames / info.samplerate, max_seconds)
    if info.frames * info.channels > max_seconds * MAX_INPUT_RATE:
        raise ApiError(413, f"{name}: {info.channels} channels at {info.samplerate} Hz for "
                       f"{info.frames / info.samplerate:.1f} s is more input than the server decodes "
                       f"(at most {max_seconds:g} s x {MAX_INPUT_RATE} samples/s over all channels)",
                       "audio_too_large", "file")
    blocks, total, most = [], 0, int(max_seconds * sample_rate) + sample_rate // 100
    try:
        for block in iter_audio_bytes_blocks(data, name, sample_rate, BLOCK_SECONDS):
            blocks.append(block)
            total += len(block)
            if total > most:  # headers can understate (streams without a frame count): stop here
                raise _too_long(name, total / sample_rate, max_seconds, "at least ")
    except AudioError as e:
        raise ApiError(400, f"{name}: {e.reason}", "invalid_audio", "file") from None
    wave = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    mismatch = header_mismatch(info.extra_info)
    return wave, ((truncation_warning(mismatch),) if mismatch else ())


def _too_long(name: str, seconds: float, max_seconds: float, qualifier: str = "") -> ApiError:
    return ApiError(413, f"{name}: audio is {qualifier}{seconds:.1f} s, the server's limit is {max_seconds:g} s",
                    "audio_too_long", "file")
