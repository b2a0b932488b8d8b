"""Weight-free AV sync: shifting the audio by k frames is found as k (+-1), the unshifted clip as 0."""

from __future__ import annotations

import numpy as np
import pytest

from lesbench.metrics.sync import AVSync, sync_calibrated, sync_offset
from lesbench.metrics.sync_estimate import av_sync, shift_audio
from lesbench.metrics.sync_features import audio_frame_features, mouth_shape
from lesbench.metrics.sync_null import (NULL_MARGIN, calibrate_sync, null_rotations, rotate_audio, standardise,
                                        sync_vs_reference)

from _sync_synthetic import synthetic_clip

SHIFTS = range(-8, 9)


def test_mouth_shape_is_scale_free():
    lm, _ = synthetic_clip(40, seed=1)
    big = lm.copy()
    big[..., :2] *= 3.0
    np.testing.assert_allclose(mouth_shape(lm), mouth_shape(big), rtol=1e-4)
    lm[5] = np.nan
    assert np.isnan(mouth_shape(lm)[5]).all()


def test_audio_features_are_centred_on_frame_times():
    sr, fps = 16000, 25.0
    audio = np.zeros(sr, np.float32)
    audio[10 * 640 - 200: 10 * 640 + 200] = np.sin(np.arange(400) * 0.3)  # a burst centred on frame 10
    feats = audio_frame_features(audio, 25, sr, fps)
    energy = feats.max(axis=1)
    assert int(np.argmax(energy)) == 10
    assert energy[10] > energy[8] + 20  # dB: frame 8's window does not reach the burst


def test_shift_audio():
    a = np.arange(10 * 640, dtype=np.float32)
    assert shift_audio(a, 2)[2 * 640] == 0 and shift_audio(a, 2)[0] == 0
    assert shift_audio(a, -1)[0] == 640
    assert len(shift_audio(a, 3)) == len(a)


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_shifts_are_recovered(seed):
    lm, audio = synthetic_clip(150, seed=seed)
    found = {k: av_sync(lm, shift_audio(audio, k)).offset for k in SHIFTS}
    assert all(abs(found[k] - k) <= 1 for k in SHIFTS), found
    r = av_sync(lm, audio)
    assert r.offset == 0 and r.confidence > 0.3 and r.valid


def test_unrelated_audio_has_low_confidence():
    lm, _ = synthetic_clip(150, seed=0)
    _, other = synthetic_clip(150, seed=7)
    good = av_sync(lm, synthetic_clip(150, seed=0)[1]).confidence
    bad = av_sync(lm, other).confidence
    assert bad < good / 2


def test_missing_face_and_silence_are_reported_not_raised():
    lm, audio = synthetic_clip(60, seed=0)
    lm[:] = np.nan
    r = av_sync(lm, audio)
    assert not r.valid and "face" in r.reason and r.offset is None
    r = av_sync(synthetic_clip(60)[0], np.zeros(60 * 640, np.float32))
    assert not r.valid and "audio" in r.reason


def test_metric_class_and_twin_agree():
    lm, audio = synthetic_clip(120, seed=3)
    m = AVSync(n_null=0)  # the version-2 outputs; the calibrated ones are checked below
    m.update(lm, shift_audio(audio, 4))
    m.update(lm, shift_audio(audio, -2))
    out = m.compute()
    offs = [sync_offset(lm, shift_audio(audio, k))[0] for k in (4, -2)]
    assert out["offset"] == pytest.approx(np.mean(offs))
    assert out["abs_offset"] == pytest.approx(np.mean(np.abs(offs)))


@pytest.fixture(scope="module")
def real_clips(speech_dev):
    """Landmarks of the clips resampled to 25 fps, with each image's capture time."""
    from lesbench import io
    from lesbench.extract.face_arrays import landmarks_array
    from lesbench.extract.face import FaceTracker

    out = {}
    with FaceTracker() as tracker:
        for name in ("retalking_2.mp4", "retalking_4.mp4"):
            path = speech_dev / name
            src_fps = io.probe(path).fps
            frames = list(io.iter_frames(path, fps=25.0))
            capture = np.array([f.source_index / src_fps for f in frames])
            out[name] = (landmarks_array(tracker.track(frames, fps=25.0)), io.read_audio(path, sr=16000), capture)
    return out


@pytest.mark.meaddev
@pytest.mark.parametrize("name", ["retalking_2.mp4", "retalking_4.mp4"])
def test_real_clip_shifts_are_recovered(real_clips, name):
    lm, audio, capture = real_clips[name]
    results = {k: av_sync(lm, shift_audio(audio, k), frame_times=capture) for k in SHIFTS}
    found = {k: r.offset for k, r in results.items()}
    frac = {k: round(r.offset_frac, 2) for k, r in results.items()}
    print(name, "found offsets:", found, "refined:", frac, "confidence(0):", round(results[0].confidence, 3))
    # Every shift is tracked: delaying the audio by k moves the estimate by k (+- 0.5 frame).
    own = results[0].offset_frac
    assert all(abs(results[k].offset_frac - k - own) <= 0.5 for k in SHIFTS), frac
    # The clips' own offsets are small: retalking_2 measures +0.85 frames, retalking_4 -1.3
    # (about -52 ms: its audio leads), so "0 +- 1" holds for retalking_2 at every k and for
    # retalking_4 at 16 of 17 shifts; the bound asserted here is 1.5 frames (60 ms).
    assert abs(own) <= 1.5
    assert sum(abs(found[k] - k) <= 1 for k in SHIFTS) >= 16, found
    assert results[0].confidence > 0.2


def _still(lm: np.ndarray, jitter: float, seed: int = 0) -> np.ndarray:
    """The first frame's landmarks repeated, plus tracker-like jitter (``jitter`` x inter-ocular)."""
    rng = np.random.default_rng(seed)
    io_dist = np.linalg.norm(lm[0, 33, :2] - lm[0, 263, :2])
    still = np.repeat(lm[:1], len(lm), axis=0).astype(np.float64)
    still[..., :2] += rng.normal(0.0, jitter * io_dist, size=still[..., :2].shape)
    return still


def test_a_still_mouth_scores_worst():
    """A repeated source frame (only tracker jitter) gets confidence 0 and no offset, below a
    real clip; measured jitter on still demo crops is 0.0001-0.002 inter-ocular."""
    lm, audio = synthetic_clip(150, seed=0)
    real = av_sync(lm, audio)
    for jitter in (0.0, 0.0005, 0.001):
        # the ungated score of pure jitter is not small: that is what the gate is for
        r = av_sync(_still(lm, jitter), audio)
        assert r.valid and r.still and r.confidence == 0.0 and r.offset is None
        assert "no mouth motion" in r.note and r.motion < 0.005
    assert not real.still and real.confidence > 0.3 and real.motion > 0.01
    m = AVSync(n_null=4)
    m.update(_still(lm, 0.001), audio)
    out = m.compute()
    assert out["confidence"] == 0.0 and np.isnan(out["offset"]) and out["n_still"] == 1
    assert m.clip_notes and "no mouth motion" in m.clip_notes[0]
    m.update(lm, audio)  # still clips count as 0 in the confidence mean, not in the offsets
    out = m.compute()
    assert out["confidence"] == pytest.approx(real.confidence / 2) and out["offset"] == real.offset


def test_gate_ramp_is_continuous_and_can_be_disabled():
    lm, audio = synthetic_clip(150, seed=1)
    ungated = av_sync(lm, audio, min_motion=0.0)
    gated = av_sync(lm, audio)
    assert gated.confidence == pytest.approx(ungated.confidence)  # real motion: weight 1
    # motion between min_motion and 2 x min_motion: confidence scaled by (m - t) / t
    r = av_sync(lm, audio, min_motion=gated.motion / 1.5)
    assert r.confidence == pytest.approx(ungated.confidence * 0.5, rel=1e-6)
    still_ungated = av_sync(_still(lm, 0.001), audio, min_motion=0.0)
    assert still_ungated.offset is not None and not still_ungated.still


# --- null calibration --------------------------------------------------------------------------


def test_null_rotations_stay_outside_the_searched_shifts():
    rot = null_rotations(125, max_shift=15, n_null=20)
    assert len(rot) == 20 and rot[0] == 25 and rot[-1] == 100
    # the true alignment of rotated audio (shift d or d - T) is beyond +-K by the margin
    assert all(min(d, 125 - d) >= 15 + NULL_MARGIN for d in rot)
    assert len(null_rotations(49, max_shift=15)) == 0  # 25 > 49 - 25: no room
    assert list(null_rotations(50, max_shift=15)) == [25]  # one rotation: too few for a null
    assert list(null_rotations(51, max_shift=15)) == [25, 26]
    assert len(null_rotations(300, n_null=0)) == 0


def test_rotate_audio_is_circular_over_the_video_span():
    a = np.arange(10 * 640, dtype=np.float32)
    r = rotate_audio(a, 1, n_frames=10)
    assert len(r) == 6400 and r[0] == 9 * 640 and r[640] == 0
    longer = rotate_audio(np.arange(12 * 640, dtype=np.float32), 2, n_frames=10)  # cut to the video first
    assert len(longer) == 6400 and longer[0] == 8 * 640
    shorter = rotate_audio(np.ones(5 * 640, np.float32), 0, n_frames=10)  # zero-padded
    assert shorter[:3200].sum() == 3200 and shorter[3200:].sum() == 0


def test_standardise_hand_computed():
    z, pct, mean, sd = standardise(3.0, np.array([0.0, 1.0, 2.0, 3.0]))
    assert mean == 1.5 and sd == pytest.approx(np.sqrt(5 / 3))
    assert z == pytest.approx(1.5 / np.sqrt(5 / 3)) and pct == pytest.approx(87.5)  # 3 below + half a tie
    z, pct, _, _ = standardise(0.5, np.full(5, 0.5))  # constant null: sd floored at 0.01
    assert z == 0.0 and pct == 50.0
    assert standardise(0.6, np.full(5, 0.5))[0] == pytest.approx(10.0)


def _mismatched(audio: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    return {"other clip": other[: len(audio)], "time-reversed": audio[::-1].copy(),
            "delayed 30 frames": shift_audio(audio, 30)}


@pytest.mark.parametrize("seed", [0, 2])
def test_synthetic_matched_clip_stands_above_its_null_and_mismatched_audio(seed):
    lm, audio = synthetic_clip(150, seed=seed)
    _, other = synthetic_clip(150, seed=seed + 7)
    r, cal = calibrate_sync(lm, audio, n_null=10)
    assert len(cal.null) == 10 and cal.null_sd > 0
    assert cal.confidence == r.confidence == av_sync(lm, audio).confidence  # version-2 value unchanged
    assert cal.z > 3 and cal.percentile == 100.0
    for name, a in _mismatched(audio, other).items():
        bad = calibrate_sync(lm, a, n_null=10)[1]
        assert bad.z < cal.z - 2, (name, bad.z, cal.z)


def test_still_and_short_clips_are_calibrated_as_documented():
    lm, audio = synthetic_clip(150, seed=0)
    _, still = calibrate_sync(_still(lm, 0.001), audio, n_null=5)
    assert still.z == 0.0 and still.percentile == 50.0 and still.reason == "still mouth"
    short_lm, short_audio = synthetic_clip(45, seed=0)  # 45 < 2 x (15 + 10) + 2 frames
    r, cal = calibrate_sync(short_lm, short_audio)
    assert r.valid and np.isnan(cal.z) and np.isnan(cal.percentile) and "too short" in cal.reason
    m = AVSync(n_null=5)
    m.update(short_lm, short_audio)
    out = m.compute()
    assert out["n_uncalibrated"] == 1 and np.isnan(out["confidence_z"])
    assert np.isfinite(out["confidence"]) and any("no sync null" in n for n in m.clip_notes)
    off = calibrate_sync(lm, audio, n_null=0)[1]
    assert np.isnan(off.z) and "off" in off.reason


def test_calibrated_metric_and_twin_agree():
    lm, audio = synthetic_clip(120, seed=3)
    m = AVSync(n_null=6)
    clips = [shift_audio(audio, 4), audio]
    for a in clips:
        m.update(lm, a)
    out = m.compute()
    twins = [sync_calibrated(lm, a, n_null=6) for a in clips]
    assert out["confidence_z"] == pytest.approx(np.mean([t["confidence_z"] for t in twins]))
    assert out["confidence_pct"] == pytest.approx(np.mean([t["confidence_pct"] for t in twins]))
    assert out["confidence"] == pytest.approx(np.mean([t["confidence"] for t in twins]))
    assert out["n_uncalibrated"] == 0 and all(t["n_null"] == 6 for t in twins)
    # the version-2 outputs are the same numbers as before
    assert out["offset"] == pytest.approx(np.mean([sync_offset(lm, a)[0] for a in clips]))


def test_sync_vs_reference():
    lm, audio = synthetic_clip(150, seed=1)
    same = sync_vs_reference(lm, lm, audio, n_null=4)
    assert same["delta_offset"] == 0 and same["delta_confidence"] == 0 and same["delta_z"] == 0
    late = np.concatenate([np.repeat(lm[:1], 3, axis=0), lm[:-3]])  # the video 3 frames late: audio leads
    out = sync_vs_reference(late, lm, audio, n_null=4)
    assert out["ref_offset"] == 0 and abs(out["pred_offset"] + 3) <= 1
    assert abs(out["delta_offset"] + 3) <= 1 and out["delta_abs_offset"] >= 2
    still = sync_vs_reference(_still(lm, 0.001), lm, audio, n_null=4)
    assert still["pred_offset"] is None and np.isnan(still["delta_offset"])
    assert still["delta_confidence"] == pytest.approx(-still["ref_confidence"]) and still["pred_confidence_z"] == 0



def test_sync_against_the_reference_in_the_metric():
    """AVSync with ``ref_face``: generated minus reference, averaged as the other sync outputs
    (offsets over clips where both move, confidences over valid clips; a still clip counts 0)."""
    lm, audio = synthetic_clip(150, seed=1)
    late = np.concatenate([np.repeat(lm[:1], 3, axis=0), lm[:-3]])  # the video 3 frames late
    still = _still(lm, 0.001)
    m = AVSync(n_null=0)  # the null is not needed for the reference comparison
    for pred in (late, still):
        m.update(pred, audio, ref_face=lm)
    out = m.compute()
    # the reference definition, one clip at a time: av_sync of each side on the same audio
    p1, p2, r = av_sync(late, audio), av_sync(still, audio), av_sync(lm, audio)
    assert r.offset == 0 and abs(p1.offset + 3) <= 1 and p2.offset is None
    # hand-computed: one clip has both offsets; both clips have both confidences (still = 0)
    assert out["offset_vs_ref"] == pytest.approx(p1.offset - r.offset)
    assert out["abs_offset_vs_ref"] == pytest.approx(abs(p1.offset) - abs(r.offset))
    assert out["confidence_vs_ref"] == pytest.approx(((p1.confidence - r.confidence) + (0.0 - r.confidence)) / 2)
    assert out["ref_confidence"] == pytest.approx(r.confidence) and out["ref_offset"] == 0
    # the twin function gives the same per-clip differences
    twin = sync_vs_reference(late, lm, audio, n_null=0)
    assert twin["delta_offset"] == pytest.approx(p1.offset - r.offset)
    assert twin["delta_confidence"] == pytest.approx(p1.confidence - r.confidence)
    # the generated clip's own outputs do not depend on the reference being there
    alone = AVSync(n_null=0)
    for pred in (late, still):
        alone.update(pred, audio)
    solo = alone.compute()
    for k in ("offset", "abs_offset", "confidence"):
        assert solo[k] == pytest.approx(out[k])
    for k in ("offset_vs_ref", "confidence_vs_ref", "ref_offset", "ref_confidence"):
        assert np.isnan(solo[k])
    # a still reference has no offset: its clip drops out of the offset difference, not the confidence
    m = AVSync(n_null=0)
    m.update(lm, audio, ref_face=still)
    one = m.compute()
    assert np.isnan(one["offset_vs_ref"]) and one["confidence_vs_ref"] == pytest.approx(av_sync(lm, audio).confidence)
    assert any("reference sync: no mouth motion" in n for n in m.clip_notes)


@pytest.mark.meaddev
@pytest.mark.slow
@pytest.mark.parametrize("name", ["retalking_2.mp4", "retalking_4.mp4"])
def test_real_matched_clip_stands_above_its_null_and_mismatched_audio(real_clips, name):
    """Real speech: the clip with its own audio is above the clip with other audio (another
    clip's speech, its own speech reversed or delayed 1.2 s), in z and in percentile."""
    lm, audio, _ = real_clips[name]
    other_name = "retalking_4.mp4" if name == "retalking_2.mp4" else "retalking_2.mp4"
    other = np.resize(real_clips[other_name][1], len(audio))
    _, matched = calibrate_sync(lm, audio)
    bad = {k: calibrate_sync(lm, a)[1] for k, a in _mismatched(audio, other).items()}
    print(name, "matched z", round(matched.z, 2), "pct", matched.percentile,
          {k: (round(c.z, 2), c.percentile) for k, c in bad.items()})
    assert matched.percentile >= 90
    assert all(matched.z > c.z + 0.5 and matched.percentile > c.percentile for c in bad.values())
