"""load_audio / load_audio_bytes / audio_duration on real files written with soundfile."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from kdasr.audio import SAMPLE_RATE, audio_duration, load_audio, load_audio_bytes
from kdasr.errors import AudioError


def _tone(sr: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_8k_wav_is_downmixed_and_resampled(tmp_path):
    left, right = _tone(8000, 1.0), np.zeros(8000, np.float32)
    path = tmp_path / "stereo8k.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - SAMPLE_RATE) <= 2
    # mean of a 0.5-amplitude tone and silence: peak 0.25, still a 440 Hz tone after resampling
    assert 0.23 < np.abs(x[1000:-1000]).max() < 0.27
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(x) - 440) < 3


def test_flac_slice_and_duration(tmp_path):
    sr = 16000
    ramp = np.linspace(-0.9, 0.9, 3 * sr).astype(np.float32)
    path = tmp_path / "ramp.flac"
    sf.write(path, ramp, sr)
    assert audio_duration(path) == pytest.approx(3.0)
    full = load_audio(path)
    assert len(full) == 3 * sr
    part = load_audio(path, start=1.0, duration=0.5)
    assert len(part) == sr // 2
    np.testing.assert_allclose(part, ramp[sr : sr + sr // 2], atol=1e-4)  # 16-bit flac quantisation
    tail = load_audio(str(path), start=2.5)
    assert len(tail) == sr // 2
    # other target rate
    assert len(load_audio(path, sample_rate=8000)) == pytest.approx(3 * 8000, abs=2)


def test_load_audio_bytes_matches_file(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(22050, 0.5), 22050)
    from_bytes = load_audio_bytes(path.read_bytes(), name="up.wav")
    np.testing.assert_array_equal(from_bytes, load_audio(path))
    with pytest.raises(AudioError, match=r"up\.wav: empty file \(0 bytes\)"):
        load_audio_bytes(b"", name="up.wav")
    with pytest.raises(AudioError, match=r"<upload>: not a readable audio file: Format not recognised"):
        load_audio_bytes(b"this is not audio at all")


@pytest.mark.parametrize("fn", [load_audio, audio_duration])
def test_unusable_paths(tmp_path, fn):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError) as e:
        fn(missing)
    assert e.value.path == str(missing) and e.value.reason == "no such file"

    with pytest.raises(AudioError, match="is a directory, not an audio file") as e:
        fn(tmp_path)
    assert str(tmp_path) in str(e.value)

    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        fn(empty)

    fake = tmp_path / "notes.wav"
    fake.write_text("these are my meeting notes, not audio\n")
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file: Format not recognised"):
        fn(fake)

    header_only = tmp_path / "header_only.wav"
    sf.write(header_only, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match=r"header_only\.wav: contains no samples"):
        fn(header_only)


def test_nan_and_inf_samples_rejected(tmp_path):
    for bad in (np.nan, np.inf):
        x = _tone(16000, 0.1)
        x[100] = bad
        path = tmp_path / f"bad_{bad}.wav"
        sf.write(path, x, 16000, subtype="FLOAT")
        with pytest.raises(AudioError, match="contains NaN or infinite samples") as e:
            load_audio(path)
        assert e.value.path == str(path)


def test_start_beyond_end_and_bad_slices(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _tone(16000, 1.0), 16000)
    with pytest.raises(AudioError, match=r"short\.wav: start 2\.000 s is beyond the end of the audio \(1\.000 s\)"):
        load_audio(path, start=2.0)
    with pytest.raises(AudioError, match="negative start"):
        load_audio(path, start=-0.1)
    with pytest.raises(AudioError, match="non-positive duration"):
        load_audio(path, duration=0.0)


def test_data_modules_are_torch_free():
    import subprocess

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import kdasr.audio, kdasr.text, kdasr.data.manifest, kdasr.data.kaldi, kdasr.cli.data\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
