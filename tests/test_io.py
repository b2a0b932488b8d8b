"""lesbench.io: round trips, timestamp resampling (CFR and VFR), audio, broken files.

Every clip is generated here, tiny (64-128 px, about 1 s).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lesbench import io
from lesbench.errors import MediaError

# Grey level that encodes a frame index (0..33); flat grey survives H.264 + yuv420p within +-2.
def level(i: int) -> int:
    return 20 + 7 * i


def index_of(image: np.ndarray) -> int:
    return int(round((float(image.mean()) - 20) / 7))


def grey_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    return [np.full((h, w, 3), level(i), np.uint8) for i in range(n)]


def pattern_frames(n: int, w: int = 96, h: int = 64, seed: int = 0, scale: float = 1.0) -> list[np.ndarray]:
    """Smooth moving colour gradients (compress well, so pixel error is small)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / scale
    out = []
    for i in range(n):
        r = 128 + 100 * np.sin(xx / 9.0 + i * 0.3)
        g = 128 + 100 * np.cos(yy / 7.0 - i * 0.2)
        b = 128 + 60 * np.sin((xx + yy) / 13.0 + seed)
        out.append(np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8))
    return out


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


def write_raw(path: Path, pts_ms: list[int], end_ms: int, faststart: bool = True, size: int = 64) -> Path:
    """Write grey frames (level(i)) with the given presentation times in ms, via PyAV directly."""
    options = {"movflags": "+faststart"} if faststart else {}
    container = av.open(str(path), "w", format="mp4", options=options)
    stream = container.add_stream("libx264", rate=25)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "10", "bframes": "0", "threads": "1"}
    stream.codec_context.time_base = Fraction(1, 1000)
    durations = {p: (pts_ms[i + 1] if i + 1 < len(pts_ms) else end_ms) - p for i, p in enumerate(pts_ms)}

    def mux(packets):
        for packet in packets:
            if packet.pts is not None:
                packet.duration = durations[int(packet.pts)]
            container.mux(packet)

    for i, p in enumerate(pts_ms):
        frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), level(i), np.uint8), format="rgb24")
        frame.pts = p
        frame.time_base = Fraction(1, 1000)
        mux(stream.encode(frame))
    mux(stream.encode(None))
    container.close()
    return path


# ------------------------------------------------------------------------- round trips


def test_write_read_round_trip(tmp_path):
    frames = pattern_frames(25)
    path = io.write_video(tmp_path / "sub" / "clip.mp4", frames, fps=25, crf=12)
    assert path.exists() and not list(path.parent.glob(".*tmp"))  # atomic: no temp left

    info = io.probe(path)
    assert (info.has_video, info.has_audio) == (True, False)
    assert (info.width, info.height) == (96, 64)
    assert info.n_frames == 25 and info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(1.0, abs=1 / 25)
    assert not info.vfr and not info.truncated

    got = io.read_frames(path)
    assert got.shape == (25, 64, 96, 3) and got.dtype == np.uint8
    err = np.abs(got.astype(np.float32) - np.stack(frames).astype(np.float32))
    assert err.mean() < 4.0  # crf 12 on smooth content; chroma subsampling dominates

    stream = list(io.iter_frames(path))
    assert [f.index for f in stream] == list(range(25))
    assert [f.t for f in stream] == pytest.approx([k / 25 for k in range(25)])
    assert [f.source_index for f in stream] == list(range(25))


def test_write_accepts_array_and_frames_and_is_deterministic(tmp_path):
    frames = pattern_frames(10)
    a = io.write_video(tmp_path / "a.mp4", np.stack(frames), audio=sine(300, 16000, 0.4))
    b = io.write_video(tmp_path / "b.mp4", [io.Frame(i, i / 25, f) for i, f in enumerate(frames)],
                       audio=sine(300, 16000, 0.4))
    assert a.read_bytes() == b.read_bytes()


def test_write_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        io.write_video(tmp_path / "odd.mp4", [np.zeros((33, 64, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        io.write_video(tmp_path / "f.mp4", [np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(ValueError, match="no frames"):
        io.write_video(tmp_path / "none.mp4", [])
    with pytest.raises(ValueError, match="expected 64x32"):
        io.write_video(tmp_path / "mixed.mp4", [np.zeros((32, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []  # failed writes leave nothing behind


def test_resize(tmp_path):
    path = io.write_video(tmp_path / "c.mp4", pattern_frames(5, w=128, h=96, scale=3.0), crf=12)
    for interp in ("FAST_BILINEAR", "AREA"):
        got = io.read_frames(path, size=(64, 48), interpolation=interp)
        assert got.shape == (5, 48, 64, 3)
        full = io.read_frames(path)
        # compare with a box-filtered downscale of the full-size decode
        ref = full.reshape(5, 48, 2, 64, 2, 3).mean(axis=(2, 4))
        assert np.abs(got.astype(np.float32) - ref).mean() < 3.0


def test_native_rate_when_fps_none(tmp_path):
    path = io.write_video(tmp_path / "n.mp4", grey_frames(12), fps=30)
    frames = list(io.iter_frames(path, fps=None))
    assert len(frames) == 12
    assert [f.t for f in frames] == pytest.approx([i / 30 for i in range(12)], abs=1e-4)
    assert [index_of(f.image) for f in frames] == list(range(12))


# ------------------------------------------------------------------------- resampling


def test_30_to_25_fps_keeps_duration_and_picks_frame_on_screen(tmp_path):
    path = io.write_video(tmp_path / "c30.mp4", grey_frames(15), fps=30)  # 0.5 s
    info = io.probe(path)
    assert info.fps == pytest.approx(30.0) and info.duration_s == pytest.approx(0.5)
    frames = list(io.iter_frames(path, fps=25))
    assert len(frames) == round(0.5 * 25)  # 12.5 -> 12
    assert len(frames) / 25 == pytest.approx(info.duration_s, abs=1 / 25)
    # output k at t=k/25 shows source j = floor(k*30/25)
    assert [f.source_index for f in frames] == [int(np.floor(k * 30 / 25 + 1e-9)) for k in range(12)]
    assert [index_of(f.image) for f in frames] == [f.source_index for f in frames]
    # 30 frames -> exactly 25 at 1 s
    path1 = io.write_video(tmp_path / "c30b.mp4", grey_frames(30), fps=30)
    assert len(io.read_frames(path1, fps=25)) == 25


def test_upsampling_repeats_frames_as_independent_arrays(tmp_path):
    path = io.write_video(tmp_path / "c10.mp4", grey_frames(5), fps=10)  # 0.5 s
    frames = list(io.iter_frames(path, fps=20))
    assert len(frames) == 10
    assert [index_of(f.image) for f in frames] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    frames[0].image[:] = 0  # caller owns each array
    assert index_of(frames[1].image) == 0 and frames[1].image.mean() > 10


def test_vfr_source_reads_at_target_fps(tmp_path):
    pts = [0, 40, 60, 150, 160, 300, 420, 500, 640, 700]
    path = write_raw(tmp_path / "vfr.mp4", pts, end_ms=800)
    info = io.probe(path)
    assert info.vfr and info.n_frames == 10
    assert info.duration_s == pytest.approx(0.8, abs=1e-3)

    frames = list(io.iter_frames(path, fps=25))
    assert len(frames) == 20  # 0.8 s at 25 fps
    expected = [max(i for i, p in enumerate(pts) if p <= 40 * k) for k in range(20)]
    assert [f.source_index for f in frames] == expected
    assert [index_of(f.image) for f in frames] == expected
    assert frames[-1].t == pytest.approx(19 / 25)

    cfr = io.write_video(tmp_path / "cfr.mp4", grey_frames(5))
    assert not io.probe(cfr).vfr


# ------------------------------------------------------------------------- audio


@pytest.mark.parametrize("suffix", [".m4a", ".wav"])
def test_audio_round_trip(tmp_path, suffix):
    x = sine(440, 16000, 1.0)
    path = io.write_audio(tmp_path / f"tone{suffix}", x, sr=16000)
    info = io.probe(path)
    assert (info.has_video, info.has_audio, info.audio_sample_rate, info.audio_channels) == (False, True, 16000, 1)
    y = io.read_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == pytest.approx(16000, abs=16)
    assert dominant_freq(y, 16000) == pytest.approx(440, abs=2)
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.03)
    # sample-accurate content (AAC priming is removed by the container's edit list)
    assert np.abs(y[800:-800] - x[800 : len(y) - 800]).max() < (0.03 if suffix == ".m4a" else 1e-4)


def test_48k_stereo_becomes_16k_mono_average(tmp_path):
    sr = 48000
    left, right = sine(440, sr, 1.0, amp=0.4), sine(440, sr, 1.0, amp=0.2)
    for suffix, fmt, codec in ((".wav", "wav", "pcm_s16le"), (".m4a", "ipod", "aac")):
        path = tmp_path / f"st{suffix}"
        container = av.open(str(path), "w", format=fmt)
        stream = container.add_stream(codec, rate=sr)
        stream.codec_context.layout = "stereo"
        planar = np.stack([left, right])
        if codec == "aac":
            stream.codec_context.bit_rate = 128000
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
        else:
            frame = av.AudioFrame.from_ndarray(np.round(planar * 32767).astype(np.int16).T.reshape(1, -1).copy(),
                                               format="s16", layout="stereo")
        frame.sample_rate = sr
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        container.close()
        assert io.probe(path).audio_channels == 2
        y = io.read_audio(path, sr=16000)
        assert len(y) == pytest.approx(16000, abs=16)
        assert dominant_freq(y, 16000) == pytest.approx(440, abs=2)
        rms = float(np.sqrt(np.mean(y[1000:-1000] ** 2)))
        assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.05)  # a sine of amplitude (0.4 + 0.2) / 2
        native = io.read_audio(path, sr=None)
        assert len(native) == pytest.approx(sr, abs=48)


def test_audio_muxed_in_mp4(tmp_path):
    x = sine(440, 16000, 1.0)
    path = io.write_video(tmp_path / "av.mp4", pattern_frames(25), fps=25, audio=x, sr=16000)
    info = io.probe(path)
    assert info.has_video and info.has_audio and info.audio_sample_rate == 16000
    assert info.audio_duration_s == pytest.approx(1.0, abs=0.01)
    y = io.read_audio(path)
    assert len(y) == pytest.approx(16000, abs=16)
    assert dominant_freq(y, 16000) == pytest.approx(440, abs=2)
    assert len(io.read_frames(path)) == 25
    # lesbench's own files start both streams at 0 (the AAC priming is marked and dropped):
    # on the video's timeline the samples are the same, sample-accurate to what was written
    assert info.audio_start_s == 0.0 and not info.reoriented
    assert (info.coded_width, info.coded_height) == (info.width, info.height) == (96, 64)
    placed = io.read_audio_for_video(path)
    assert np.array_equal(placed, y)
    assert np.abs(placed[800:-800] - x[800 : len(placed) - 800]).max() < 0.03


@pytest.mark.parametrize("suffix", [".m4a", ".wav"])
def test_audio_only_file_starts_at_zero(tmp_path, suffix):
    path = io.write_audio(tmp_path / f"a{suffix}", sine(300, 16000, 0.5))
    assert io.probe(path).audio_start_s == 0.0


# ------------------------------------------------------------------------- broken files


def _moov_end(data: bytes) -> int:
    """Byte offset just past the top-level moov box of an mp4."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"moov":
            return pos + size
        pos += size
    raise AssertionError("no moov box")


def _expect(kind: str, path: Path, call) -> MediaError:
    with pytest.raises(MediaError) as exc:
        call(path)
    assert exc.value.kind == kind
    assert str(path) in str(exc.value)
    return exc.value


def test_missing_empty_and_not_media(tmp_path):
    for call in (io.probe, io.iter_frames, io.read_frames, io.read_audio, io.read_audio_for_video):
        _expect("missing", tmp_path / "nope.mp4", call)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file renamed to .mp4\n" * 20)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for call in (io.probe, io.iter_frames, io.read_audio, io.read_audio_for_video):
        _expect("empty", empty, call)
        _expect("not_media", text, call)
        _expect("not_media", noise, call)


def test_missing_streams(tmp_path):
    audio_only = io.write_audio(tmp_path / "a.m4a", sine(200, 16000, 0.3))
    err = _expect("no_video_stream", audio_only, io.iter_frames)
    assert "no video stream" in str(err)
    _expect("no_video_stream", audio_only, io.read_audio_for_video)
    video_only = io.write_video(tmp_path / "v.mp4", grey_frames(3))
    _expect("no_audio_stream", video_only, io.read_audio)
    _expect("no_audio_stream", video_only, io.read_audio_for_video)
    # a separate audio file that is broken is named, not the video
    bad_audio = tmp_path / "bad.m4a"
    bad_audio.write_text("not audio\n" * 40)
    with pytest.raises(MediaError) as exc:
        io.read_audio_for_video(video_only, bad_audio)
    assert exc.value.kind == "not_media" and str(bad_audio) in str(exc.value)


def test_truncated_files(tmp_path):
    good = io.write_video(tmp_path / "good.mp4", pattern_frames(50, w=128, h=128), crf=30)
    data = good.read_bytes()
    moov_end = _moov_end(data)  # our writer puts the index first (faststart)
    assert moov_end < len(data) // 2

    # cut in half: the frames that are there decode, and probe flags the file
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    info = io.probe(half)
    assert info.truncated and info.declared_n_frames == 50 and info.n_frames < 50
    frames = io.read_frames(half)
    assert 5 <= len(frames) < 50

    # index but no frame data at all
    bare = tmp_path / "bare.mp4"
    bare.write_bytes(data[: moov_end + 16])
    assert io.probe(bare).truncated
    _expect("truncated", bare, io.read_frames)

    # moov written last (not faststart) and the file cut before it: no index
    tail = write_raw(tmp_path / "tail.mp4", list(range(0, 1000, 40)), 1000, faststart=False)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(tail.read_bytes()[: tail.stat().st_size // 2])
    err = _expect("truncated", cut, io.iter_frames)
    assert "truncated" in str(err)
    _expect("truncated", cut, io.probe)


def test_corrupt_bytes_do_not_stop_reading(tmp_path):
    good = io.write_video(tmp_path / "good.mp4", pattern_frames(25, w=128, h=128), crf=30)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(1)
    at = len(data) * 17 // 20  # past the key frame, in the last fifth of the frames
    data[at : at + 60] = rng.integers(0, 256, 60, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    frames = io.read_frames(bad)  # damaged packets are skipped or concealed, timing kept
    assert frames.shape == (25, 128, 128, 3)
    good_frames = io.read_frames(good)
    same = [np.array_equal(a, b) for a, b in zip(frames, good_frames)]
    assert sum(same) >= 12 and not all(same)  # frames not hit by the damage are intact

    tail = bytearray(good.read_bytes())  # damage the last packet: the clip keeps its length
    tail[-40:] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    bad_tail = tmp_path / "bad_tail.mp4"
    bad_tail.write_bytes(bytes(tail))
    assert len(io.read_frames(bad_tail)) == 25


def test_bad_arguments(tmp_path):
    path = io.write_video(tmp_path / "x.mp4", grey_frames(2))
    with pytest.raises(ValueError):
        io.iter_frames(path, fps=0)
    with pytest.raises(ValueError):
        io.iter_frames(path, size=(0, 10))
    with pytest.raises(ValueError, match="suffix"):
        io.write_audio(tmp_path / "x.ogg", np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="mono"):
        io.write_audio(tmp_path / "x.wav", np.zeros((10, 2), np.float32))
