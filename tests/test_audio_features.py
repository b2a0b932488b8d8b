"""Audio features: filterbank placement, frame alignment, lengths, MFCC definition."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.extract.audio_features import (
    FMAX,
    FMIN,
    N_MELS,
    audio_features,
    audio_schema,
    audio_to_table,
    deltas,
    is_silent,
    mel_filterbank,
)

SR = 16000
HOP = 640


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _htk_centres() -> np.ndarray:
    """Filter centres computed here independently: HTK mel, equally spaced, 80 filters."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    return inv(np.linspace(mel(FMIN), mel(FMAX), N_MELS + 2))[1:-1]


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0])
def test_tone_lands_in_the_right_mel_bin(freq):
    feats = audio_features(_tone(freq))
    spectrum = feats["mel"][5:-5].mean(axis=0)
    expected = int(np.argmin(np.abs(_htk_centres() - freq)))
    assert int(np.argmax(spectrum)) == expected
    # and falls off by orders of magnitude two bins away
    assert spectrum[expected] - spectrum[min(expected + 3, N_MELS - 1)] > 3.0


def test_filterbank_shape_and_peaks():
    fb = mel_filterbank(SR, 2 * HOP)
    assert fb.shape == (N_MELS, 2 * HOP // 2 + 1)
    assert fb.max() <= 1.0 + 1e-9 and (fb.sum(axis=1) > 0).all()
    freqs = np.fft.rfftfreq(2 * HOP, 1 / SR)
    peaks = freqs[fb.argmax(axis=1)]
    np.testing.assert_allclose(peaks, _htk_centres(), atol=SR / (2 * HOP))  # within one FFT bin
    with pytest.raises(ValueError, match="Nyquist"):
        mel_filterbank(8000, 512, fmax=7600)


@pytest.mark.parametrize("k, offset, expected_row", [(7, 0, 7), (12, 300, 12), (12, 340, 13), (0, 0, 0), (24, -200, 24)])
def test_click_peaks_at_its_video_frame(k, offset, expected_row):
    x = np.zeros(SR, np.float32)  # 1 s = 25 frames
    x[k * HOP + offset] = 1.0
    feats = audio_features(x)
    assert len(feats["energy"]) == 25
    assert int(np.argmax(feats["energy"])) == expected_row
    assert int(np.argmax(feats["mel"].mean(axis=1))) == expected_row
    np.testing.assert_allclose(feats["t"][expected_row], expected_row / 25)


def test_energy_of_a_sine_is_its_rms():
    feats = audio_features(_tone(440.0, amp=0.5))
    np.testing.assert_allclose(feats["energy"][3:-3], 0.5 / np.sqrt(2), rtol=0.01)
    assert feats["energy"][0] < feats["energy"][5]  # half the first window is before the clip


def test_length_is_exactly_n_frames():
    x = _tone(300.0, seconds=1.0)
    for n in (0, 1, 10, 25, 40):
        feats = audio_features(x, n_frames=n)
        assert feats["mel"].shape == (n, 80)
        assert feats["mfcc"].shape == (n, 39)
        assert feats["energy"].shape == (n,)
        assert feats["mel"].dtype == np.float32
    padded = audio_features(x, n_frames=40)
    assert padded["energy"][30:].max() == 0.0  # rows past the audio are silence
    assert audio_features(np.zeros(int(SR * 2.02)))["energy"].shape == (50,)  # round(2.02 * 25)


def test_mfcc_is_dct_of_log_mel_with_deltas():
    from scipy.fft import dct

    rng = np.random.default_rng(0)
    x = (rng.normal(0, 0.1, SR) * np.sin(np.linspace(0, 20, SR))).astype(np.float32)
    feats = audio_features(x)
    log_mel = feats["mel"].astype(np.float64)
    c = dct(log_mel, type=2, norm="ortho", axis=1)[:, :13]
    np.testing.assert_allclose(feats["mfcc"][:, :13], c, rtol=1e-4, atol=1e-3)
    # delta at an interior row by the textbook formula, N = 2
    t = 10
    d = (1 * (c[t + 1] - c[t - 1]) + 2 * (c[t + 2] - c[t - 2])) / 10.0
    np.testing.assert_allclose(feats["mfcc"][t, 13:26], d, rtol=1e-3, atol=1e-3)
    dd = deltas(deltas(c))
    np.testing.assert_allclose(feats["mfcc"][:, 26:], dd, rtol=1e-3, atol=1e-3)
    # c0 of an orthonormal DCT is sqrt(80) x the mean log-mel
    np.testing.assert_allclose(c[:, 0], log_mel.mean(axis=1) * np.sqrt(80), rtol=1e-5)


def test_is_silent():
    assert is_silent(np.zeros(SR, np.float32))
    assert is_silent(np.zeros(0, np.float32))
    assert is_silent(_tone(200.0, amp=1e-4))  # -83 dBFS
    assert not is_silent(_tone(200.0, amp=0.01))  # -43 dBFS
    quiet_with_one_word = np.zeros(SR * 3, np.float32)
    quiet_with_one_word[SR : SR + 2000] = _tone(200.0, seconds=0.125, amp=0.05)
    assert not is_silent(quiet_with_one_word)


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        audio_features(np.array([0.0, np.nan] * 1000))
    with pytest.raises(ValueError, match="multiple"):
        audio_features(np.zeros(1000), sr=16001)
    stereo = np.stack([_tone(500.0), _tone(500.0)], axis=1)
    np.testing.assert_allclose(audio_features(stereo)["mel"], audio_features(_tone(500.0))["mel"], atol=1e-4)


def test_arrow_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = audio_features(_tone(800.0, seconds=0.4))
    table = audio_to_table(feats, clip_id="M003_front_angry_3_001")
    assert table.schema.equals(audio_schema(), check_metadata=False)
    assert table.schema.field("mel").type == pa.list_(pa.float32(), 80)
    assert table.schema.field("mfcc").type == pa.list_(pa.float32(), 39)
    pq.write_table(table, tmp_path / "a.parquet")
    back = pq.read_table(tmp_path / "a.parquet")
    mel = np.asarray(back.column("mel").combine_chunks().values).reshape(-1, 80)
    np.testing.assert_array_equal(mel, feats["mel"])
    assert back.column("frame").to_pylist() == list(range(10))
