"""Audio on the video's timeline, rotation, pixel formats and VFR: files written here with PyAV.

Container audio offsets are made the way ``ffmpeg -itsoffset`` makes them: the encoded packets
are copied into a new container with their timestamps moved (no re-encode), so the container
states the offset (an empty edit before the audio in MP4) and the decoded samples are the same
as the original's. The ffmpeg command line (from the ``imageio-ffmpeg`` wheel) is the reference
for ``-itsoffset`` copies and for autorotation; those checks skip when it is not installed.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lesbench import io, schema
from lesbench.errors import MediaError
from lesbench.metrics.sync_estimate import av_sync

from _sync_synthetic import synthetic_clip

SR = 16000
FPS = 25
HOP = SR // FPS  # samples per video frame


# ------------------------------------------------------------------------------ helpers


def burst_audio(seconds: float, at: tuple[float, ...] = (0.5,), sr: int = SR) -> np.ndarray:
    """Silence with 50 ms 1 kHz tone bursts starting at the times ``at`` (seconds)."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = np.zeros(t.shape, np.float32)
    for c in at:
        m = (t >= c) & (t < c + 0.05)
        x[m] = 0.5 * np.sin(2 * np.pi * 1000 * (t[m] - c))
    return x


def onset(x: np.ndarray, level: float = 0.25) -> int:
    """Index of the first sample louder than ``level``."""
    hits = np.flatnonzero(np.abs(x) > level)
    assert hits.size, "no burst found"
    return int(hits[0])


def grey_video(path: Path, n: int, audio: np.ndarray | None = None, size: int = 64) -> Path:
    """Frame ``i`` is flat grey ``20 + (3 i mod 210)``; audio (16 kHz) muxed from t = 0."""
    frames = [np.full((size, size, 3), 20 + (3 * i) % 210, np.uint8) for i in range(n)]
    return io.write_video(path, frames, fps=FPS, audio=audio, sr=SR, preset="ultrafast")


def remux(src: Path, dst: Path, audio_shift_s: float = 0.0, video_shift_s: float = 0.0,
          rotation: int | None = None, hflip: bool = False) -> Path:
    """Copy ``src``'s packets into ``dst`` with their timestamps moved (what ``-itsoffset``
    does to one input): the container then states the offset; nothing is re-encoded.
    ``rotation`` (degrees counter-clockwise) / ``hflip``: give the video a display matrix."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for s in inp.streams:  # keep the time base: else MP4 may round the offset to 1 ms
            streams[s.index].time_base = s.time_base
        if rotation is not None:
            streams[inp.streams.video[0].index].set_display_rotation(rotation, hflip=hflip)
        for pkt in inp.demux():
            if pkt.dts is None:  # the demuxer's end-of-stream marker
                continue
            shift = audio_shift_s if pkt.stream.type == "audio" else video_shift_s
            ticks = int(round(shift / pkt.time_base))
            pkt.pts += ticks
            pkt.dts += ticks
            pkt.stream = streams[pkt.stream.index]
            out.mux(pkt)
    return dst


def write_rotated(path: Path, stored: list[np.ndarray], rotation: int, audio: np.ndarray | None = None,
                  hflip: bool = False) -> Path:
    """Frames stored as given, with a display matrix saying to turn them by ``rotation``."""
    plain = io.write_video(path.with_name("plain_" + path.name), stored, fps=FPS, audio=audio, sr=SR,
                           preset="ultrafast")
    return remux(plain, path, rotation=rotation, hflip=hflip)


def ffmpeg_exe() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (dev extra) not installed")
    return imageio_ffmpeg.get_ffmpeg_exe()


# ------------------------------------------------------------------ container audio offsets


@pytest.mark.parametrize("k", [5, -5, 3, 0])
def test_container_offset_places_audio_on_the_video_timeline(tmp_path, k):
    src = grey_video(tmp_path / "src.mp4", 50, burst_audio(2.0, at=(0.5,)))
    moved = remux(src, tmp_path / "moved.mp4", audio_shift_s=k / FPS)
    want = int(0.5 * SR) + k * HOP
    got = io.read_audio_for_video(moved)
    assert abs(onset(got) - want) <= 3, (onset(got), want)
    # the unshifted file reads the same through both functions
    assert np.array_equal(io.read_audio_for_video(src), io.read_audio(src))
    info = io.probe(moved)
    if k > 0:
        # The AAC priming frame that the original's edit list skipped is kept in front of the
        # audio, so the stream states a start 1024 samples before the shifted speech (the
        # "0.14 s" of a +0.2 s -itsoffset copy at 16 kHz); the speech lands at the offset.
        assert info.audio_start_s == pytest.approx(k / FPS - 1024 / SR, abs=1e-6)
        # read_audio counts from the first decoded sample: the offset is lost (the old bug)
        assert abs(onset(io.read_audio(moved)) - (int(0.5 * SR) + 1024)) <= 3
    else:
        # An audio stream moved to negative times gets an edit list that makes the decoder
        # drop what lies before 0: nothing left to trim.
        assert info.audio_start_s == pytest.approx(0.0, abs=1e-6)
    assert info.n_frames == 50


@pytest.mark.parametrize("k", [4, -4])
def test_video_that_starts_late_drops_audio_before_its_first_frame(tmp_path, k):
    """Video moved instead of audio: the audio before the first frame is cut (k > 0), or the
    audio starts after it (k < 0, written as audio moved later)."""
    src = grey_video(tmp_path / "src.mp4", 50, burst_audio(2.0, at=(0.5,)))
    if k > 0:
        moved = remux(src, tmp_path / "late_video.mp4", video_shift_s=k / FPS)
        assert io.probe(moved).audio_start_s == pytest.approx(-k / FPS, abs=1e-6)
    else:
        moved = remux(src, tmp_path / "late_audio.mp4", audio_shift_s=-k / FPS)
    frames = io.read_frames(moved, fps=FPS)
    assert len(frames) == 50 and abs(float(frames[0].mean()) - 20) < 3  # frame 0 is still first
    got = io.read_audio_for_video(moved)
    assert abs(onset(got) - (int(0.5 * SR) - k * HOP)) <= 3


def test_ffmpeg_itsoffset_copies_are_read_at_their_offset(tmp_path):
    """The reference: copies written by the ffmpeg command line with ``-itsoffset``."""
    ff = ffmpeg_exe()
    src = grey_video(tmp_path / "src.mp4", 50, burst_audio(2.0, at=(0.5,)))
    # (-itsoffset of the video input, of the audio input, expected audio delay on the video timeline)
    cases = {"audio_late": (0.0, 0.2, 0.2), "video_late": (0.2, 0.0, -0.2), "audio_early": (0.0, -0.2, -0.2)}
    for name, (video_offset, audio_offset, delay) in cases.items():
        dst = tmp_path / f"{name}.mp4"
        inputs = []
        for offset in (video_offset, audio_offset):  # input 0 gives the video, input 1 the audio
            inputs += (["-itsoffset", str(offset)] if offset else []) + ["-i", str(src)]
        subprocess.run([ff, "-hide_banner", "-loglevel", "error", "-y", *inputs, "-map", "0:v", "-map", "1:a",
                        "-c", "copy", str(dst)], check=True)
        got = io.read_audio_for_video(dst)
        assert abs(onset(got) - int((0.5 + delay) * SR)) <= 3, name


def test_separate_audio_file_starts_at_video_time_zero(tmp_path):
    """MEAD's .m4a next to a video whose own track (or picture) starts late: the file's own
    start counts, not the video's stream offsets."""
    audio = burst_audio(2.0, at=(0.5,))
    m4a = io.write_audio(tmp_path / "a.m4a", audio)
    late_video = remux(grey_video(tmp_path / "v.mp4", 50, audio), tmp_path / "late.mp4", video_shift_s=0.2)
    got = io.read_audio_for_video(late_video, m4a)
    assert np.array_equal(got, io.read_audio(m4a))
    assert abs(onset(got) - int(0.5 * SR)) <= 3
    # an audio file that states its own start (moved by 3 frames) is placed there
    moved = remux(m4a, tmp_path / "moved.m4a", audio_shift_s=3 / FPS)
    assert abs(onset(io.read_audio_for_video(late_video, moved)) - (int(0.5 * SR) + 3 * HOP)) <= 3
    with pytest.raises(MediaError) as err:
        io.read_audio_for_video(grey_video(tmp_path / "silent.mp4", 10))
    assert err.value.kind == "no_audio_stream" and "silent.mp4" in str(err.value)


def test_48k_source_offset_in_output_samples(tmp_path):
    """The offset is placed in output samples whatever the source rate (48 kHz -> 16 kHz)."""
    sr = 48000
    audio = burst_audio(2.0, at=(0.5,), sr=sr)
    src = tmp_path / "src.mp4"
    io.write_video(src, [np.full((64, 64, 3), 100, np.uint8)] * 50, fps=FPS, audio=audio, sr=sr, preset="ultrafast")
    moved = remux(src, tmp_path / "moved.mp4", audio_shift_s=0.2)
    # FFmpeg's MP4 muxer writes the empty edit in the movie's 1/1000 s timescale: the offset the
    # container states is 0.2 s less the 1024 priming samples, to within 1 ms (0.178 here)
    stated = io.probe(moved).audio_start_s
    assert abs(stated - (0.2 - 1024 / sr)) < 1e-3
    for rate in (SR, sr):
        base = onset(io.read_audio_for_video(src, sr=rate))
        assert abs(base - int(0.5 * rate)) <= 12 * rate // SR  # the 48 -> 16 kHz filter smears the edge
        want = base + (stated + 1024 / sr) * rate
        assert abs(onset(io.read_audio_for_video(moved, sr=rate)) - want) <= 2 * rate // SR


@pytest.mark.parametrize("k", [5, -5])
def test_sync_offset_moves_by_k(tmp_path, k):
    """lesbench.metrics.sync on audio read from a file whose container shifts it by k frames."""
    lm, audio = synthetic_clip(150, seed=0)
    src = grey_video(tmp_path / "src.mp4", 150, audio)
    moved = remux(src, tmp_path / "moved.mp4", audio_shift_s=k / FPS)
    base = av_sync(lm, io.read_audio_for_video(src)).offset_frac
    found = av_sync(lm, io.read_audio_for_video(moved)).offset_frac
    assert abs(base) <= 1
    assert abs((found - base) - k) <= 1, (base, found)


# ----------------------------------------------------------------- prepare: rows and notes


@pytest.fixture(scope="module")
def prepared_pair(tmp_path_factory):
    """One tiny face clip with its audio in the video, prepared as is and with the container
    moving its audio by +3 and -3 frames (the real per-clip pass, MediaPipe included)."""
    from lesbench.pipelines.prepare import ClipProcessor, PrepareConfig

    from test_prepare import face_frames, speech_like

    root = tmp_path_factory.mktemp("timing_prepare")
    src = io.write_video(root / "src.mp4", face_frames(0, 40, seed=3), fps=FPS,
                         audio=speech_like(1.6, seed=3), sr=SR, preset="ultrafast")
    videos = {0: src, 3: remux(src, root / "late.mp4", audio_shift_s=3 / FPS),
              -3: remux(src, root / "early.mp4", video_shift_s=3 / FPS),
              "short": io.write_video(root / "short.mp4", face_frames(0, 40, seed=4), fps=FPS,
                                      audio=speech_like(0.8, seed=4), sr=SR, preset="ultrafast"),
              # upright 128 wide x 192 tall, stored turned clockwise, to be turned back by 90 ccw
              "rotated": write_rotated(root / "rotated.mp4",
                                       [np.rot90(np.pad(f, ((32, 32), (0, 0), (0, 0)), mode="edge"), -1)
                                        for f in face_frames(0, 25, seed=5)], 90, audio=speech_like(1.0, seed=5))}
    # MEAD style: a separate .m4a, here one whose container starts it 2 frames late
    m4a = remux(io.write_audio(root / "sep.m4a", speech_like(1.6, seed=6)), root / "sep_late.m4a",
                audio_shift_s=2 / FPS)
    videos["file"] = io.write_video(root / "silent.mp4", face_frames(0, 40, seed=6), fps=FPS, preset="ultrafast")
    out = root / "out"
    proc = ClipProcessor(PrepareConfig(device="cpu"))
    rows, feats = {}, {}
    try:
        for i, (k, path) in enumerate(videos.items()):
            clip = schema.Clip(clip_id=f"M001_front_happy_3_00{i}", speaker="M001", view="front",
                               emotion="happy", level=3, sentence=f"00{i}", video_path=str(path),
                               audio_path=str(m4a) if k == "file" else None)
            rows[k] = proc.prepare_clip(clip, out)
            feats[k] = _audio_matrix(out / schema.AUDIO_DIR / f"{clip.clip_id}.parquet")
    finally:
        proc.close()
    return rows, feats


def _audio_matrix(path: Path) -> np.ndarray:
    import pandas as pd

    df = pd.read_parquet(path)
    cols = [c for c in df.columns if df[c].dtype.kind == "f" or df[c].dtype == object]
    parts = [np.stack(df[c].to_numpy()).reshape(len(df), -1).astype(np.float64) for c in cols
             if c not in ("t",)]
    return np.concatenate(parts, axis=1)


def test_prepare_audio_rows_shift_by_k(prepared_pair):
    rows, feats = prepared_pair
    base = feats[0]
    n = len(base)
    assert rows[0]["status"] == "ok" and rows[0]["notes"] is None
    for k in (3, -3):
        assert rows[k]["status"] == "ok" and rows[k]["n_frames"] == n
        got = feats[k]
        # feature row i + k of the moved clip is row i of the original, away from the ends
        # (delta-deltas reach 4 rows either side and replicate the edges)
        for i in range(max(0, -k) + 5, n - max(0, k) - 5):
            np.testing.assert_allclose(got[i + k], base[i], rtol=1e-4, atol=1e-4, err_msg=f"k={k} row {i}")
        assert not np.allclose(got[n // 2], base[n // 2], rtol=1e-4, atol=1e-4)


def test_prepare_notes_say_what_was_put_right(prepared_pair):
    rows, _ = prepared_pair
    late, early = rows[3]["notes"], rows[-3]["notes"]
    assert "container audio offset applied" in late and "after the first video frame" in late
    # +3 frames of 0.04 s, with the kept AAC priming frame (1024 samples) in front
    assert f"{3 / FPS - 1024 / SR:.3f} s" in late
    assert "container audio offset applied" in early and f"{3 / FPS:.3f} s before" in early
    short = rows["short"]
    assert short["status"] == "ok"
    assert "audio ends 0.80 s before the video" in short["notes"]
    sep = rows["file"]
    assert sep["status"] == "ok" and sep["audio_source"] == "file"
    assert f"sep_late.m4a: container audio offset applied, audio starts {2 / FPS - 1024 / SR:.3f} s after" in sep["notes"]
    rotated = rows["rotated"]
    assert rotated["status"] == "ok" and (rotated["src_width"], rotated["src_height"]) == (128, 192)
    assert rotated["face_ratio"] == 1.0  # the face is found: the frames were turned upright
    assert "rotation metadata applied" in rotated["notes"] and "192x128 stored, 128x192 upright" in rotated["notes"]


# ---------------------------------------------------------------------------------- rotation


def marker_image(h: int = 48, w: int = 80) -> np.ndarray:
    """Black with a red block in the top-left corner and a green one in the bottom-left."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:16, :24] = (230, 30, 30)
    img[-16:, :8] = (30, 230, 30)
    return img


def corner_colours(img: np.ndarray) -> tuple[int, int, int, int]:
    """Dominant channel (0 red, 1 green, -1 dark) at the four corners: TL, TR, BL, BR."""
    def dom(px: np.ndarray) -> int:
        return int(np.argmax(px)) if px.max() > 120 else -1
    return dom(img[2, 2]), dom(img[2, -3]), dom(img[-3, 2]), dom(img[-3, -3])


@pytest.mark.parametrize("rotation, hflip, shape, corners", [
    # turned 90 ccw: the top-left red goes to the bottom-left, the bottom-left green to the bottom-right
    (90, False, (80, 48), (-1, -1, 0, 1)),
    # turned 90 cw (a phone's "rotate=90" tag): red top-right, green top-left
    (-90, False, (80, 48), (1, 0, -1, -1)),
    (180, False, (48, 80), (-1, 1, -1, 0)),
    # mirrored only: red top-right, green bottom-right
    (0, True, (48, 80), (-1, 0, -1, 1)),
])
def test_rotated_video_is_read_upright(tmp_path, rotation, hflip, shape, corners):
    path = write_rotated(tmp_path / "r.mp4", [marker_image()] * 6, rotation, hflip=hflip)
    info = io.probe(path)
    assert (info.height, info.width) == shape and (info.coded_width, info.coded_height) == (80, 48)
    assert info.rotation == rotation % 360 and info.mirrored == hflip and info.reoriented
    frames = io.read_frames(path, fps=FPS)
    assert frames.shape == (6, *shape, 3)
    assert corner_colours(frames[0]) == corners
    # size is the displayed size; resized in the conversion, then turned
    small = io.read_frames(path, fps=None, size=(shape[1] // 2, shape[0] // 2))
    assert small.shape == (6, shape[0] // 2, shape[1] // 2, 3)
    assert corner_colours(small[0]) == corners


def test_upright_video_reports_no_rotation(tmp_path):
    path = grey_video(tmp_path / "g.mp4", 3)
    info = io.probe(path)
    assert (info.rotation, info.mirrored, info.reoriented) == (0, False, False)
    assert (info.coded_width, info.coded_height) == (info.width, info.height) == (64, 64)


def test_all_eight_orientations_match_ffmpeg_autorotate(tmp_path):
    """The ffmpeg command line turns frames by the display matrix (autorotate, on by default):
    lesbench must show the same picture for every rotation and mirror."""
    ff = ffmpeg_exe()
    img = marker_image()
    for rotation in (0, 90, 180, 270):
        for hflip in (False, True):
            path = write_rotated(tmp_path / f"r{rotation}{int(hflip)}.mp4", [img] * 3, rotation, hflip=hflip)
            ours = io.read_frames(path, fps=None)[0]
            raw = subprocess.run([ff, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                                  "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
            theirs = np.frombuffer(raw, np.uint8).reshape(ours.shape)
            assert np.abs(ours.astype(int) - theirs).mean() < 2.0, (rotation, hflip)
            assert corner_colours(ours) == corner_colours(theirs), (rotation, hflip)


# ------------------------------------------------------------------- pixel formats and VFR


def _write_pix_fmt(path: Path, frames: list[np.ndarray], pix_fmt: str, profile: str | None) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        s.options = {"crf": "4", "threads": "1", **({"profile": profile} if profile else {})}
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize("pix_fmt, profile", [("yuv444p", "high444"), ("yuv420p10le", "high10"),
                                             ("yuv444p10le", "high444")])
def test_444_and_10_bit_video_decode(tmp_path, pix_fmt, profile):
    """MEAD's H.264 High 4:4:4 and 10-bit sources decode to the same RGB as they were made from."""
    yy, xx = np.mgrid[0:48, 0:80].astype(np.float32)
    frames = [np.stack([128 + 90 * np.sin(xx / 9 + i), 128 + 90 * np.cos(yy / 7 - i), np.full_like(xx, 60.0 + 10 * i)],
                       -1).astype(np.uint8) for i in range(6)]
    try:
        path = _write_pix_fmt(tmp_path / f"{pix_fmt}.mp4", frames, pix_fmt, profile)
    except (av.error.FFmpegError, ValueError) as exc:  # an x264 build without that bit depth
        pytest.skip(f"libx264 here cannot write {pix_fmt}: {exc}")
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == pix_fmt
    got = io.read_frames(path, fps=FPS)
    assert got.shape == (6, 48, 80, 3)
    err = np.abs(got.astype(int) - np.stack(frames).astype(int))
    assert err.mean() < 2.5 and np.percentile(err, 99) < 12, (err.mean(), np.percentile(err, 99))


def test_vfr_video_with_late_start_and_audio_offset(tmp_path):
    """Variable frame intervals, first frame at 0.1 s, audio from 0: frames resampled by
    timestamp from the first frame, audio before it dropped."""
    pts_ms = [100, 130, 170, 200, 250, 280, 300, 360, 400, 430, 480, 520, 540, 600, 640, 680, 720, 740, 800, 860,
              900, 930, 980, 1020, 1060]
    end_ms = 1100
    audio = burst_audio(1.2, at=(0.3, 0.7))
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        v.options = {"crf": "10", "bframes": "0", "threads": "1"}
        v.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=SR)
        a.codec_context.layout, a.codec_context.format = "mono", "fltp"
        for i, p in enumerate(pts_ms):
            vf = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 + 7 * i, np.uint8), format="rgb24")
            vf.pts, vf.time_base = p, Fraction(1, 1000)
            for pkt in v.encode(vf):
                c.mux(pkt)
        for pkt in v.encode(None):
            c.mux(pkt)
        for s0 in range(0, len(audio), 1024):
            af = av.AudioFrame.from_ndarray(audio[None, s0:s0 + 1024], format="fltp", layout="mono")
            af.sample_rate, af.time_base, af.pts = SR, Fraction(1, SR), s0
            for pkt in a.encode(af):
                c.mux(pkt)
        for pkt in a.encode(None):
            c.mux(pkt)
    info = io.probe(path)
    assert info.vfr and info.audio_start_s == pytest.approx(-0.1, abs=1e-3)
    frames = list(io.iter_frames(path, fps=FPS))
    # the last frame's duration is the median interval (40 ms): 1.0 s from the first frame
    assert len(frames) == 25
    rel = [p - 100 for p in pts_ms]
    for f in frames:  # the source frame on screen at k / fps
        want = max(i for i, r in enumerate(rel) if r <= f.t * 1000 + 0.1)
        assert f.source_index == want and abs(float(f.image.mean()) - (20 + 7 * want)) < 3
    got = io.read_audio_for_video(path)
    assert abs(onset(got) - int(0.2 * SR)) <= 3
    assert abs(onset(got[int(0.4 * SR):]) + int(0.4 * SR) - int(0.6 * SR)) <= 3


# ----------------------------------------------------------------------- real speech clips


@pytest.mark.slow
@pytest.mark.meaddev
@pytest.mark.parametrize("name", ["retalking_2.mp4", "retalking_4.mp4"])
def test_real_clips_with_container_offsets_of_5_frames(speech_dev, tmp_path, name):
    """Copies of the real clips whose container delays the audio by +-5 of their own frames
    (remuxed, not re-encoded): the sync offset moves by that much (in 25 fps frames) +- 1."""
    from lesbench.extract.face_arrays import landmarks_array
    from lesbench.extract.face import FaceTracker

    src = speech_dev / name
    src_fps = io.probe(src).fps
    frames = list(io.iter_frames(src, fps=25.0))
    capture = np.array([f.source_index / src_fps for f in frames])
    with FaceTracker() as tracker:
        lm = landmarks_array(tracker.track(frames, fps=25.0))
    copies = {+5: remux(src, tmp_path / "late_audio.mp4", audio_shift_s=5 / src_fps),
              -5: remux(src, tmp_path / "late_video.mp4", video_shift_s=5 / src_fps)}
    base = av_sync(lm, io.read_audio_for_video(src), frame_times=capture).offset_frac
    assert abs(base) <= 2
    for k, path in copies.items():
        assert io.probe(path).n_frames == io.probe(src).n_frames
        found = av_sync(lm, io.read_audio_for_video(path), frame_times=capture).offset_frac
        assert abs((found - base) - k * 25.0 / src_fps) <= 1, (k, base, found)
