"""Load audio as float32 mono at the model rate, with one clear error per way a file can be unusable.

Torch-free (numpy, soundfile, soxr only): the deployment runtime and the HTTP server use this module.
"""

from __future__ import annotations

import errno
import io
import os
import stat

import numpy as np
import soundfile as sf
import soxr

from kdasr.errors import AudioError

SAMPLE_RATE = 16000


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    start: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Read any format libsndfile decodes (wav, flac, ogg, ...) as float32 mono at `sample_rate`.

    `start` and `duration` are in seconds; only that slice is read from disk (Kaldi segments).
    Raises AudioError naming the file and the reason.
    """
    _check_path(path)
    return _decode(os.fsencode(path), str(path), sample_rate, start, duration)


def load_audio_bytes(
    data: bytes,
    name: str = "<upload>",
    sample_rate: int = SAMPLE_RATE,
    start: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Like `load_audio` for an in-memory file (an HTTP upload); `name` is used in errors."""
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, sample_rate, start, duration)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding); same errors as `load_audio`."""
    _check_path(path)
    try:
        info = sf.info(os.fsencode(path))  # bytes: any name the OS allows, UTF-8 or not
    except sf.SoundFileError as e:
        raise AudioError(path, f"not a readable audio file: {_short(e)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "contains no samples")
    return info.frames / info.samplerate


def _check_path(path: str | os.PathLike) -> None:
    # Checked before libsndfile, whose messages for these cases are cryptic ("System error"). One
    # stat, so a path the OS refuses (too long, a NUL byte) is this file's error, not a traceback;
    # devices and FIFOs are named as such (a FIFO would block the open, /dev/zero never end).
    try:
        st = os.stat(path)
    except ValueError:
        raise AudioError(path, "path contains a NUL byte") from None
    except OSError as e:
        reason = {errno.ENOENT: "no such file", errno.ENOTDIR: "no such file (a parent is not a folder)",
                  errno.ENAMETOOLONG: "path too long for the file system"}.get(e.errno, e.strerror or str(e))
        raise AudioError(path, reason) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(path, f"is a {_file_kind(st.st_mode)}, not an audio file")
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
             (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def _short(e: Exception) -> str:
    # LibsndfileError carries the bare libsndfile reason; str(e) repeats the path or a BytesIO repr.
    return getattr(e, "error_string", None) or str(e)


def _check_slice(name: str, start: float, duration: float | None) -> None:
    if start < 0:
        raise AudioError(name, f"negative start ({start} s)")
    if duration is not None and duration <= 0:
        raise AudioError(name, f"non-positive duration ({duration} s)")


def _seek_start(f: sf.SoundFile, name: str, start: float) -> tuple[int, int, int]:
    """Seek an open file to `start`; (sample rate, total frames, first frame). Empty files and a
    start past the end are AudioErrors."""
    sr, total = f.samplerate, f.frames
    if total <= 0:
        raise AudioError(name, "contains no samples")
    first = round(start * sr)
    if first >= total:
        raise AudioError(name, f"start {start:.3f} s is beyond the end of the audio ({total / sr:.3f} s)")
    f.seek(first)
    return sr, total, first


def _decode(
    src: bytes | io.BytesIO, name: str, sample_rate: int, start: float, duration: float | None
) -> np.ndarray:
    _check_slice(name, start, duration)
    try:
        with sf.SoundFile(src) as f:
            sr, total, first = _seek_start(f, name, start)
            frames = -1 if duration is None else round(duration * sr)
            x = f.read(frames, dtype="float32", always_2d=True)
    except sf.SoundFileError as e:
        raise AudioError(name, f"not a readable audio file: {_short(e)}") from None
    if x.shape[0] == 0:
        raise AudioError(name, "contains no samples")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if not np.isfinite(x).all():
        raise AudioError(name, "contains NaN or infinite samples")
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32)


CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (full scale is 1.0)


def header_mismatch(extra_info: str) -> str:
    """libsndfile's own complaint (in a file's `extra_info`) when a chunk size in the header exceeds
    the file ("data : 32000 (should be 15978)"), else "". It then reads only what is there and
    reports that as the length, so a WAV cut short (an interrupted copy or recording) would
    otherwise pass unnoticed. A stream-written WAV whose header was never finalised shows up here
    too: decoded all the same."""
    for line in extra_info.splitlines():
        if "(should be" in line:
            return " ".join(line.split())
    return ""


def truncation_warning(mismatch: str) -> str:
    return f"truncated? the header promises more than the file holds ({mismatch}); decoded what is there"


class AudioStats:
    """What reading a file showed: peak, RMS, share of clipped samples, a header longer than the file."""

    def __init__(self) -> None:
        self.samples = self.clipped = 0
        self.peak = self.sumsq = 0.0
        self.header_mismatch = ""  # the header's sizes disagree with the file (cut short?)

    def add(self, raw: np.ndarray) -> None:  # raw: [frames, channels] at the file's rate
        mag = np.abs(raw)
        self.samples += mag.size
        self.clipped += int(np.count_nonzero(mag >= CLIP_LEVEL))
        self.peak = max(self.peak, float(mag.max(initial=0.0)))
        self.sumsq += float(np.square(raw, dtype=np.float64).sum())

    @property
    def clipped_fraction(self) -> float:
        return self.clipped / self.samples if self.samples else 0.0

    def dbfs(self, value: float) -> float:
        return 20 * np.log10(max(value, 1e-10))

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.sumsq / self.samples)) if self.samples else 0.0


MAX_BLOCK_VALUES = 1 << 20  # samples x channels read at once (4 MB of float32), whatever the rate and channels


def iter_audio_blocks(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    start: float = 0.0,
    duration: float | None = None,
    block_seconds: float = 30.0,
    stats: AudioStats | None = None,
):
    """Like `load_audio`, but yields the audio in blocks of about `block_seconds` (float32 mono at
    `sample_rate`), so a file of any length is read in bounded memory. Raises AudioError (naming
    the file) before the first block or at the block where the problem is found."""
    _check_path(path)
    name = str(path)
    _check_slice(name, start, duration)
    yield from _iter_blocks(name, name, sample_rate, start, duration, block_seconds, stats)


def iter_audio_bytes_blocks(
    data: bytes, name: str = "<upload>", sample_rate: int = SAMPLE_RATE, block_seconds: float = 30.0
):
    """`iter_audio_blocks` for an in-memory file (an HTTP upload): the server decodes uploads this way,
    so memory is bounded by the decoded 16 kHz mono audio, not the file's own rate and channels."""
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    yield from _iter_blocks(io.BytesIO(data), name, sample_rate, 0.0, None, block_seconds, None)


def _iter_blocks(src, name: str, sample_rate: int, start: float, duration: float | None, block_seconds: float,
                 stats: AudioStats | None):
    try:
        # a path is opened as bytes: libsndfile opens names that are not UTF-8
        with sf.SoundFile(os.fsencode(src) if isinstance(src, str) else src) as f:
            sr, total, first = _seek_start(f, name, start)
            if stats is not None:
                stats.header_mismatch = header_mismatch(f.extra_info)
            left = total - first if duration is None else min(total - first, round(duration * sr))
            stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32") if sr != sample_rate else None
            block = max(1, min(int(block_seconds * sr), MAX_BLOCK_VALUES // max(1, f.channels)))
            emitted = 0
            while left > 0:
                raw = f.read(min(block, left), dtype="float32", always_2d=True)
                if raw.shape[0] == 0:
                    break
                left -= raw.shape[0]
                if not np.isfinite(raw).all():
                    raise AudioError(name, "contains NaN or infinite samples")
                if stats is not None:
                    stats.add(raw)
                x = raw.mean(axis=1) if raw.shape[1] > 1 else raw[:, 0]
                if stream is not None:
                    x = stream.resample_chunk(x, last=left <= 0)
                emitted += len(x)
                if len(x):
                    yield np.ascontiguousarray(x, dtype=np.float32)
            if stream is not None and left > 0:  # the file ended early (header overstated frames): flush
                x = stream.resample_chunk(np.zeros(0, np.float32), last=True)
                emitted += len(x)
                if len(x):
                    yield np.ascontiguousarray(x, dtype=np.float32)
            if emitted == 0:
                raise AudioError(name, "contains no samples")
    except sf.SoundFileError as e:
        raise AudioError(name, f"not a readable audio file: {_short(e)}") from None
