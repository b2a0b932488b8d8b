"""The synthetic MEAD-layout demo data set and the shared landmark warp (lesbench.render)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesbench.schema import AU_NAMES, DEFAULT_TEST_SPEAKERS, EMOTIONS, make_clip_id

TINY_COMBOS = {("neutral", 1), ("happy", 1), ("happy", 3), ("surprised", 3)}
TINY_SPEAKERS = ("W009", "W011")


# --- lesbench.render ------------------------------------------------------------------------------
def _points(rng: np.random.Generator, n: int = 60, lo: float = 40, hi: float = 88) -> np.ndarray:
    return rng.uniform(lo, hi, (n, 2))


def test_warp_face_identity_returns_the_image():
    from lesbench.render import warp_face

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    pts = _points(rng)
    assert np.array_equal(warp_face(img, pts, pts), img)


def test_warp_face_translation_moves_the_inside_of_the_hull():
    from lesbench.render import warp_face

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    # a grid of landmarks over the middle, all moved by (+5, +3) px; the border frame stays
    gx, gy = np.meshgrid(np.linspace(30, 98, 6), np.linspace(30, 98, 6))
    src = np.stack([gx.ravel(), gy.ravel()], 1)
    out = warp_face(img, src, src + [5.0, 3.0])
    # every pixel well inside the moved hull is the source pixel 5 right, 3 down of it
    ys, xs = np.mgrid[40:95, 40:95]
    assert np.array_equal(out[ys, xs], img[ys - 3, xs - 5])
    # the image corners (fixed border points) do not move
    for y, x in ((0, 0), (0, 127), (127, 0), (127, 127)):
        assert np.array_equal(out[y, x], img[y, x])


def test_warp_affines_match_a_linear_solve_and_map_vertices():
    from lesbench.render import PiecewiseAffineWarp

    rng = np.random.default_rng(2)
    src = _points(rng)
    warp = PiecewiseAffineWarp(src, (128, 128))
    dst = src + rng.normal(0, 2.0, src.shape)
    a, ok = warp.affines(dst)
    full_dst = np.concatenate([dst, warp.border])
    d = full_dst[warp.triangles]
    dh = np.concatenate([d, np.ones(d.shape[:2] + (1,))], 2)
    ref = np.linalg.solve(dh[ok], warp.src[warp.triangles][ok])
    np.testing.assert_allclose(a[:-1][ok], ref, atol=1e-8)
    # each destination vertex maps back onto its source vertex
    mapped = np.einsum("mvk,mkj->mvj", dh, a[:-1])
    np.testing.assert_allclose(mapped[ok], warp.src[warp.triangles][ok], atol=1e-8)


def test_warp_rejects_bad_points():
    from lesbench.render import PiecewiseAffineWarp

    rng = np.random.default_rng(3)
    warp = PiecewiseAffineWarp(_points(rng), (64, 64))
    with pytest.raises(ValueError, match="points"):
        warp.maps(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        warp.maps(np.full((60, 2), np.nan))


# --- layout and formats -----------------------------------------------------------------------------
def test_tiny_layout_matches_mead(tiny_demo: Path):
    videos = sorted(p.relative_to(tiny_demo).as_posix() for p in tiny_demo.rglob("*.mp4"))
    audios = sorted(p.relative_to(tiny_demo).as_posix() for p in tiny_demo.rglob("*.m4a"))
    expected_v = sorted(f"{s}/video/front/{e}/level_{lv}/001.mp4" for s in TINY_SPEAKERS for e, lv in TINY_COMBOS)
    expected_a = sorted(f"{s}/audio/{e}/level_{lv}/001.m4a" for s in TINY_SPEAKERS for e, lv in TINY_COMBOS)
    assert videos == expected_v
    assert audios == expected_a
    top = {p.name for p in tiny_demo.iterdir()}
    assert top == set(TINY_SPEAKERS) | {"truth.parquet", "demo.json"}


def test_tiny_media_formats(tiny_demo: Path):
    from lesbench import io

    for video in sorted(tiny_demo.rglob("*.mp4")):
        info = io.probe(video)
        assert info.has_video and info.has_audio, video
        assert (info.width, info.height) == (256, 256)
        assert info.fps == pytest.approx(30.0)
        assert 0.9 <= info.duration_s <= 1.6
        assert info.audio_sample_rate == 48000
        assert info.video_codec == "h264" and info.audio_codec == "aac"
        rel = video.relative_to(tiny_demo).parts  # SPK/video/front/EMO/level_N/NNN.mp4
        audio = tiny_demo / rel[0] / "audio" / rel[3] / rel[4] / (video.stem + ".m4a")
        ainfo = io.probe(audio)
        assert not ainfo.has_video and ainfo.has_audio
        assert ainfo.audio_codec == "aac" and ainfo.audio_sample_rate == 48000 and ainfo.audio_channels == 1
        assert abs(ainfo.duration_s - info.duration_s) < 0.05
        # the separate .m4a and the muxed track carry the same sound
        a = io.read_audio(audio, sr=16000)
        b = io.read_audio(video, sr=16000)
        n = min(len(a), len(b))
        assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.98
        assert 0.05 < np.abs(a).max() <= 1.0


def test_mead_reader_indexes_the_demo(tiny_demo: Path):
    from lesbench.pipelines.mead import MeadDataset

    ds = MeadDataset(tiny_demo)
    clips = ds.clips()
    assert ds.skipped == []
    assert len(clips) == len(TINY_SPEAKERS) * len(TINY_COMBOS)
    assert all(c.audio_path is not None for c in clips)
    assert {c.split for c in clips} == {"train", "test"}
    assert {c.split for c in clips if c.speaker in DEFAULT_TEST_SPEAKERS} == {"test"}


def test_default_plan_covers_mead():
    from lesbench.demo.generate import default_config, plan_clips
    from lesbench.demo.identities import IDENTITIES

    config = default_config(seed=0)
    plans = plan_clips(config)
    speakers = {p.speaker for p in plans}
    assert len(speakers) >= 4 and speakers <= set(IDENTITIES)
    assert speakers & set(DEFAULT_TEST_SPEAKERS) and speakers - set(DEFAULT_TEST_SPEAKERS)
    combos = {(p.emotion, p.level) for p in plans}
    assert {e for e, _ in combos} == set(EMOTIONS)
    assert {lv for e, lv in combos if e == "neutral"} == {1}
    assert all({lv for e2, lv in combos if e2 == e} == {1, 2, 3} for e in EMOTIONS if e != "neutral")
    per = {}
    for p in plans:
        per.setdefault((p.speaker, p.emotion, p.level), set()).add(p.sentence)
    assert min(len(s) for s in per.values()) >= 2
    assert len(plans) == len({p.clip_id for p in plans}) == 4 * 22 * 2


# --- ground truth ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def truth(tiny_demo: Path):
    import pandas as pd

    return pd.read_parquet(tiny_demo / "truth.parquet")


def test_truth_table(truth, tiny_demo: Path):
    from lesbench import io

    expected = {"clip_id", "speaker", "emotion", "level", "sentence", "frame", "t", *AU_NAMES,
                "mouth_open", "lip_round", "lip_gap", "yaw", "pitch", "roll", "tx", "ty"}
    assert expected <= set(truth.columns)
    for clip_id, g in truth.groupby("clip_id"):
        row = g.iloc[0]
        assert clip_id == make_clip_id(row.speaker, "front", row.emotion, int(row.level), row.sentence)
        assert (g["frame"].to_numpy() == np.arange(len(g))).all()
        np.testing.assert_allclose(g["t"].to_numpy(), np.arange(len(g)) / 30.0)
        video = tiny_demo / row.speaker / "video" / "front" / row.emotion / f"level_{row.level}" / f"{row.sentence}.mp4"
        assert io.probe(video).n_frames == len(g)
    aus = truth[list(AU_NAMES)].to_numpy()
    assert np.isfinite(aus).all() and aus.min() >= 0 and aus.max() <= 1
    assert truth["AU45"].max() > 0.8  # blinks happen (closing the eyes) ...
    assert (truth["AU45"] < 0.05).mean() > 0.6  # ... and are short


def test_truth_follows_facs_prototypes_and_levels(truth):
    means = truth.groupby(["speaker", "emotion", "level"])[list(AU_NAMES)].mean()
    for speaker in TINY_SPEAKERS:
        neutral = means.loc[(speaker, "neutral", 1)]
        h1, h3 = means.loc[(speaker, "happy", 1)], means.loc[(speaker, "happy", 3)]
        for au in ("AU06", "AU12"):
            assert neutral[au] == 0 < h1[au] < h3[au]
        s3 = means.loc[(speaker, "surprised", 3)]
        for au in ("AU01", "AU02", "AU05"):
            assert s3[au] > 0.5 and neutral[au] == 0
        assert s3["AU26"] > neutral["AU26"] + 0.2
        # AUs outside the prototypes stay at zero (speech drives only AU25/AU26, blinks AU45)
        for au in ("AU04", "AU09", "AU15", "AU20", "AU23"):
            assert means.loc[speaker][au].max() == 0


def test_same_sentence_same_text_for_everyone(tiny_demo: Path):
    card = json.loads((tiny_demo / "demo.json").read_text())
    assert card["seed"] == 0 and card["tiny"] is True
    assert set(card["speakers"]) == set(TINY_SPEAKERS)
    for photo in card["photos"].values():
        assert "public domain" in photo["licence"].lower()
    assert set(card["sentences"]) == {"001"} and len(card["sentences"]["001"].split()) >= 3


# --- determinism ---------------------------------------------------------------------------------------
def test_same_seed_same_content(tiny_demo: Path, tmp_path: Path):
    from lesbench import io
    from lesbench.demo import generate_demo

    again = tmp_path / "again"
    generate_demo(again, seed=0, tiny=True, speakers=["W011"])
    for video in sorted(again.rglob("*.mp4")):
        first = tiny_demo / video.relative_to(again)
        assert np.array_equal(io.read_frames(video, fps=30), io.read_frames(first, fps=30)), video
        assert np.array_equal(io.read_audio(video, sr=48000), io.read_audio(first, sr=48000)), video
        assert video.read_bytes() == first.read_bytes(), video  # single-threaded x264: same bytes
    for audio in sorted(again.rglob("*.m4a")):
        assert audio.read_bytes() == (tiny_demo / audio.relative_to(again)).read_bytes(), audio


def test_other_seed_other_content(tiny_demo: Path, tmp_path: Path):
    from lesbench import io
    from lesbench.demo import generate_demo

    other = tmp_path / "other"
    generate_demo(other, seed=1, tiny=True, speakers=["W011"])
    rel = Path("W011/audio/neutral/level_1/001.m4a")
    a, b = io.read_audio(other / rel), io.read_audio(tiny_demo / rel)
    assert len(a) != len(b) or not np.allclose(a, b, atol=1e-3)


def test_refuses_a_folder_that_is_not_a_demo(tmp_path: Path):
    from lesbench.demo import generate_demo
    from lesbench.errors import LesbenchError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LesbenchError, match="not empty"):
        generate_demo(tmp_path, tiny=True)
    with pytest.raises(LesbenchError, match="unknown demo speaker"):
        generate_demo(tmp_path / "new", tiny=True, speakers=["M999"])
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- what MediaPipe sees -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tracked(tiny_demo: Path, truth):
    """MediaPipe (lesbench.extract.face) on every tiny clip at its native 30 fps."""
    from lesbench import io
    from lesbench.extract.face import FaceTracker

    out = {}
    with FaceTracker() as tracker:
        for clip_id, g in truth.groupby("clip_id"):
            row = g.iloc[0]
            video = tiny_demo / row.speaker / "video" / "front" / row.emotion / f"level_{row.level}" / f"{row.sentence}.mp4"
            out[clip_id] = tracker.track(io.iter_frames(video, fps=30), fps=30)
    return out


def _landmarks(df) -> np.ndarray:
    return np.stack(df["landmarks"].to_numpy()).reshape(-1, 478, 3).astype(np.float64)


def test_mediapipe_finds_the_face(tracked):
    faces = np.concatenate([df["face"].to_numpy() for df in tracked.values()])
    assert len(faces) > 200
    assert faces.mean() >= 0.99


def test_measured_mouth_follows_truth(tracked, truth):
    measured, rendered, per_clip = [], [], []
    for clip_id, df in tracked.items():
        lm = _landmarks(df)
        eyes = np.linalg.norm(lm[:, [33, 133], :2].mean(1) - lm[:, [263, 362], :2].mean(1), axis=1)
        gap = np.linalg.norm(lm[:, 14, :2] - lm[:, 13, :2], axis=1) / eyes
        g = truth[truth.clip_id == clip_id]
        n = min(len(g), len(df))
        measured.append(gap[:n])
        rendered.append(g["lip_gap"].to_numpy()[:n])
        # within a clip the speech articulation alone moves the mouth (the emotion is held)
        per_clip.append(np.corrcoef(gap[:n], g["mouth_open"].to_numpy()[:n])[0, 1])
    assert np.corrcoef(np.concatenate(measured), np.concatenate(rendered))[0, 1] > 0.9
    assert np.median(per_clip) > 0.8, per_clip


def test_measured_expressions_follow_truth(tracked, truth):
    from lesbench.extract.action_units import au_from_blendshapes

    def clip_means(speaker, emotion, level):
        clip_id = make_clip_id(speaker, "front", emotion, level, "001")
        df = tracked[clip_id]
        lm = _landmarks(df)
        eyes = np.linalg.norm(lm[:, [33, 133], :2].mean(1) - lm[:, [263, 362], :2].mean(1), axis=1)
        width = np.linalg.norm(lm[:, 291, :2] - lm[:, 61, :2], axis=1) / eyes
        aus = au_from_blendshapes(np.stack(df["blendshapes"].to_numpy()))
        return width.mean(), dict(zip(AU_NAMES, np.nanmean(aus, 0)))

    for speaker in TINY_SPEAKERS:
        w0, a0 = clip_means(speaker, "neutral", 1)
        w1, a1 = clip_means(speaker, "happy", 1)
        w3, a3 = clip_means(speaker, "happy", 3)
        assert w0 < w1 < w3  # the smile widens the mouth, more at level 3
        assert a0["AU12"] < a1["AU12"] < a3["AU12"]
        assert a3["AU06"] > a0["AU06"] + 0.2
        _, s3 = clip_means(speaker, "surprised", 3)
        assert s3["AU02"] > a0["AU02"] + 0.1 and s3["AU26"] > a0["AU26"] + 0.05


def test_measured_head_pose_follows_truth(tracked, truth):
    for name in ("yaw", "roll"):
        rs = []
        for clip_id, df in tracked.items():
            g = truth[truth.clip_id == clip_id]
            n = min(len(g), len(df))
            rs.append(np.corrcoef(df[name].to_numpy()[:n], g[name].to_numpy()[:n])[0, 1])
        assert np.median(rs) > 0.6, (name, rs)
