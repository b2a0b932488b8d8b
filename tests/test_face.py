"""FaceTracker / frames table on a real face image shipped with scikit-image (astronaut)."""

from __future__ import annotations

import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")

from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES, N_LANDMARKS  # noqa: E402
from lesbench.extract import face as face_mod  # noqa: E402
from lesbench.extract.face import FaceTracker  # noqa: E402
from lesbench.io import fit_within  # noqa: E402
from lesbench.extract.frames_table import frame_columns, frames_schema, frames_to_table  # noqa: E402
from lesbench.extract.head_pose import euler_from_rotation, rotation_from_euler  # noqa: E402

# Eileen Collins' face lies around x 180-270, y 70-180 in skimage's 512x512 astronaut image.
FACE_WINDOW = (0, 96)  # (y0, x0) of a 256x256 window that contains the face


@pytest.fixture(scope="module")
def tracker():
    with FaceTracker() as tr:
        yield tr


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


def _window(img: np.ndarray, dy: int = 0, dx: int = 0, size: int = 256) -> np.ndarray:
    y0, x0 = FACE_WINDOW
    return np.ascontiguousarray(img[y0 + dy : y0 + dy + size, x0 + dx : x0 + dx + size])


def _lm(df, k: int) -> np.ndarray:
    return np.asarray(df["landmarks"].iloc[k]).reshape(N_LANDMARKS, 3)


def _eye_distance(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[33, :2] - pts[263, :2]))


def test_blendshape_names_match_mediapipe(tracker, astronaut):
    import mediapipe as mp

    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=_window(astronaut))
    tracker._reset_tracking()
    result = tracker._landmarker.detect_for_video(image, tracker._next_ms)
    tracker._next_ms += tracker.CLIP_GAP_MS
    names = tuple(c.category_name for c in result.face_blendshapes[0])
    assert names == BLENDSHAPE_NAMES


def test_track_columns_types_and_translation(tracker, astronaut):
    shifts = [0, 4, 8, 12, 16]
    frames = [_window(astronaut, dx=d) for d in shifts]
    df = tracker.track(frames, fps=25)
    assert list(df.columns) == frame_columns()
    assert df["frame"].tolist() == list(range(5))
    np.testing.assert_allclose(df["t"].to_numpy(), np.arange(5) / 25)
    assert df["face"].all()
    assert df["landmarks"].iloc[0].shape == (N_LANDMARKS * 3,)
    assert df["blendshapes"].iloc[0].shape == (len(BLENDSHAPE_NAMES),)
    aus = df[list(AU_NAMES)].to_numpy()
    assert np.isfinite(aus).all() and aus.min() >= 0 and aus.max() <= 1
    # Shifting the window right by d moves the face left by d pixels.
    base = _lm(df, 0)
    for k, d in enumerate(shifts):
        moved = _lm(df, k)
        dx = np.median(moved[:, 0] - base[:, 0])
        dy = np.median(moved[:, 1] - base[:, 1])
        assert abs(dx + d) < 1.0 and abs(dy) < 1.0, (d, dx, dy)
    # bbox is the landmark extent; scale the 3D outer-eye-corner distance.
    pts = base
    np.testing.assert_allclose(df["bbox"].iloc[0], [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
    assert df["scale"].iloc[0] == pytest.approx(np.linalg.norm(pts[33] - pts[263]), rel=1e-5)
    assert 40 < df["scale"].iloc[0] < 80
    assert df["tz"].iloc[0] < 0  # face in front of the camera


def test_no_face_frames_are_nan(tracker, astronaut):
    frames = [np.zeros((128, 128, 3), np.uint8), _window(astronaut), np.full((128, 128, 3), 200, np.uint8)]
    df = tracker.track(frames)
    assert df["face"].tolist() == [False, True, False]
    for k in (0, 2):
        assert np.isnan(df["landmarks"].iloc[k]).all()
        assert np.isnan(df["blendshapes"].iloc[k]).all()
        assert np.isnan(df["bbox"].iloc[k]).all()
        assert df.loc[k, ["yaw", "scale", *AU_NAMES]].isna().all()


def test_downscaled_analysis_reports_source_pixels(tracker, astronaut):
    full = tracker.track([astronaut] * 3)
    small = tracker.track([astronaut] * 3, analysis_size=256)
    pre = tracker.track([cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)] * 3, source_size=(512, 512))
    ref = _lm(full, 2)
    eye = _eye_distance(ref)
    for df in (small, pre):
        pts = _lm(df, 2)
        err = np.linalg.norm(pts[:, :2] - ref[:, :2], axis=1).mean()
        assert err < 0.03 * eye, err / eye
        # z uses the same pixel scale as x: spread comparable to the full-resolution run
        assert np.std(pts[:, 2]) == pytest.approx(np.std(ref[:, 2]), rel=0.1)
    assert fit_within(1920, 1080, 640) == (640, 360)
    assert fit_within(256, 256, 640) == (256, 256)
    assert fit_within(1920, 1080, None) == (1920, 1080)


def test_output_does_not_depend_on_previous_clips(astronaut):
    clip_b = [_window(astronaut, dx=d) for d in (10, 12, 14)]
    with FaceTracker() as fresh:
        ref = fresh.track(clip_b)
    with FaceTracker() as used:
        used.track([_window(astronaut, dy=40, dx=-60)] * 4)  # a different clip first
        again = used.track(clip_b)
    np.testing.assert_array_equal(np.stack(ref["landmarks"]), np.stack(again["landmarks"]))
    np.testing.assert_array_equal(np.stack(ref["blendshapes"]), np.stack(again["blendshapes"]))


def test_pose_convention(tracker, astronaut):
    img = _window(astronaut)
    base = tracker.track([img] * 2).iloc[1]
    # Rotating the image counter-clockwise by 15 degrees adds +15 degrees of roll.
    m = cv2.getRotationMatrix2D((128, 128), 15, 1.0)
    rotated = tracker.track([cv2.warpAffine(img, m, (256, 256))] * 2).iloc[1]
    assert rotated["roll"] - base["roll"] == pytest.approx(15, abs=2.5)
    # A mirror image negates yaw and roll, keeps pitch.
    mirrored = tracker.track([np.ascontiguousarray(img[:, ::-1])] * 2).iloc[1]
    assert mirrored["yaw"] == pytest.approx(-base["yaw"], abs=2.5)
    assert mirrored["roll"] == pytest.approx(-base["roll"], abs=2.5)
    assert mirrored["pitch"] == pytest.approx(base["pitch"], abs=2.5)
    # yaw > 0 means the face turns towards the image's right: widen the image-left half of the
    # face and foreshorten the right half (what a turn to the right looks like).
    turned_right = tracker.track([_fake_turn(img, 128, 1.3)] * 2).iloc[1]
    turned_left = tracker.track([_fake_turn(img, 128, 0.8)] * 2).iloc[1]
    assert turned_right["yaw"] > base["yaw"] + 5
    assert turned_left["yaw"] < base["yaw"] - 5


def _fake_turn(img: np.ndarray, cx: float, k: float) -> np.ndarray:
    """Stretch columns left of ``cx`` by ``k`` and squeeze the rest into the remaining width."""
    h, w = img.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    split = cx * k
    src = np.where(xs < split, xs / k, cx + (xs - split) * (w - cx) / (w - split)).astype(np.float32)
    map_x = np.tile(src, (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR)


def test_euler_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        yaw, pitch, roll = rng.uniform(-60, 60), rng.uniform(-40, 40), rng.uniform(-45, 45)
        r = rotation_from_euler(yaw, pitch, roll)
        got = euler_from_rotation(r * 3.0)  # scale is ignored
        np.testing.assert_allclose(got, (yaw, pitch, roll), atol=1e-6)
    # Pure yaw turns the face's forward axis (+z) towards +x (image right).
    r = rotation_from_euler(30, 0, 0)
    assert r[0, 2] == pytest.approx(math.sin(math.radians(30)))
    # Pure pitch up turns +z towards +y (camera y is up).
    assert rotation_from_euler(0, 20, 0)[1, 2] == pytest.approx(math.sin(math.radians(20)))


def test_frames_table_schema_and_parquet_round_trip(tracker, astronaut, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = tracker.track([_window(astronaut), np.zeros((64, 64, 3), np.uint8)])
    table = frames_to_table(df, clip_id="W009_front_happy_3_001")
    assert table.schema.equals(frames_schema(), check_metadata=False)
    assert table.schema.field("landmarks").type == pa.list_(pa.float32(), 1434)
    assert table.schema.field("blendshapes").type == pa.list_(pa.float32(), 52)
    assert table.schema.field("bbox").type == pa.list_(pa.float32(), 4)
    assert table.schema.field("frame").type == pa.int32()
    assert table.schema.field("AU12").type == pa.float32()
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, compression="zstd")
    back = pq.read_table(path)
    assert back.schema.equals(table.schema, check_metadata=False)
    lm = np.asarray(back.column("landmarks").combine_chunks().values).reshape(2, -1)
    np.testing.assert_array_equal(lm[0], df["landmarks"].iloc[0])
    assert np.isnan(lm[1]).all()
    assert back.column("clip_id").to_pylist() == ["W009_front_happy_3_001"] * 2
    # Without clip_id the schema has no such column.
    assert "clip_id" not in frames_to_table(df).schema.names


def test_bad_frame_is_a_clear_error(tracker):
    from lesbench.errors import LesbenchError

    with pytest.raises(LesbenchError, match="HxWx3 uint8"):
        tracker.track([np.zeros((64, 64), np.uint8)])


def test_analyze_video(tmp_path, astronaut):
    io = pytest.importorskip("lesbench.io")
    frames = [_window(astronaut, dx=2 * k) for k in range(10)]
    path = io.write_video(tmp_path / "clip.mp4", frames, fps=25)
    df = face_mod.analyze_video(path, analysis_size=128)
    assert len(df) == 10 and df["face"].all()
    with FaceTracker() as tr:
        direct = tr.track(io.iter_frames(path, fps=25))
    # analysed at 128 px but reported in the 256 px source frame
    err = np.abs(np.stack(df["landmarks"]) - np.stack(direct["landmarks"])).reshape(10, -1, 3)[..., :2].mean()
    assert err < 2.0
    missing = tmp_path / "nope.mp4"
    from lesbench.errors import MediaError

    with pytest.raises(MediaError):
        face_mod.analyze_video(missing)
