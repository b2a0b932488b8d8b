"""CSIM (dlib ResNet face embeddings): wrapper == dlib's direct calls, same image -> 1,
different identities lower than the same identity under small augmentations."""

from __future__ import annotations

import numpy as np
import pytest

dlib = pytest.importorskip("dlib")

from lesbench.metrics.identity import CSIM, DlibFaceEmbedder, cosine, csim, csim_frames  # noqa: E402


@pytest.fixture(scope="module")
def embedder() -> DlibFaceEmbedder:
    from lesbench.errors import LesbenchError

    try:
        return DlibFaceEmbedder()
    except LesbenchError as e:
        pytest.skip(f"dlib weights not installed: {e}")


def _faces() -> tuple[np.ndarray, np.ndarray]:
    """256x256 crops around the faces of two different people (Eileen Collins, Grace Hopper)."""
    import cv2
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg
    from skimage import data

    astronaut = data.astronaut()[0:300, 80:380]  # face at ~(175..265, 76..166)
    hopper = mpimg.imread(cbook.get_sample_data("grace_hopper.jpg"))[60:410, 100:450]
    return (cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA),
            cv2.resize(np.ascontiguousarray(hopper), (256, 256), interpolation=cv2.INTER_AREA))


def _augment(img: np.ndarray, seed: int) -> np.ndarray:
    """Small photometric + geometric change: brightness, a 3 px shift, mild noise."""
    rng = np.random.default_rng(seed)
    out = np.roll(img.astype(np.float64) * 1.08 + 6, (3, -2), axis=(0, 1))
    out += rng.normal(0, 4, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_wrapper_equals_direct_dlib_calls(embedder):
    a, _ = _faces()
    ours = embedder.embed(a)
    dets = embedder.detector(a, 0) or embedder.detector(a, 1)  # own scale first, then upsampled
    assert len(dets) >= 1
    rect = max(dets, key=lambda r: r.width() * r.height())
    shape = embedder.shape_predictor(a, rect)
    direct = np.asarray(embedder.recognizer.compute_face_descriptor(a, shape))
    np.testing.assert_allclose(ours.vector, direct, atol=1e-6)
    assert ours.vector.shape == (128,)


def test_same_image_is_one_and_identities_separate(embedder):
    a, h = _faces()
    assert csim(a, a[None], embedder) == pytest.approx(1.0, abs=1e-6)
    same_a = csim(a, np.stack([_augment(a, 1), _augment(a, 2)]), embedder)
    same_h = csim(h, np.stack([_augment(h, 3)]), embedder)
    cross = csim(a, h[None], embedder)
    assert min(same_a, same_h) > cross
    assert min(same_a, same_h) > 0.9  # dlib embeddings of one face stay close under small changes
    # dlib's own verification threshold agrees (Euclidean distance 0.6)
    ea, eh = embedder.embed(a).vector, embedder.embed(h).vector
    assert np.linalg.norm(ea - eh) > 0.6


def test_frames_without_face_are_counted_not_scored(embedder):
    a, _ = _faces()
    blank = np.full_like(a, 127)
    vals = csim_frames(a, np.stack([a, blank]), embedder)
    assert vals[0] == pytest.approx(1.0, abs=1e-6) and np.isnan(vals[1])
    m = CSIM(embedder=embedder)
    m.update(pred_video=np.stack([a, blank]), source=a)
    assert m.n_no_face == 1 and m.compute() == pytest.approx(1.0, abs=1e-6)
    m.reset()
    m.update(pred_video=blank[None], source=a)
    assert np.isnan(m.compute())
    with pytest.raises(ValueError, match="source"):
        csim_frames(blank, a[None], embedder)


def test_cosine():
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert cosine(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == pytest.approx(1.0)


def test_embed_many_equals_embed_per_frame(embedder):
    """Batched, each distinct frame once: the same embeddings bit for bit as one call per frame,
    with repeated frames, a frame without a face, a batch of 2 and the default batch size
    crossed (17 distinct faces)."""
    a, h = _faces()
    blank = np.full_like(a, 127)
    frames = np.stack([a, _augment(a, 1), h, a, blank, _augment(h, 2), _augment(a, 1)])
    many = embedder.embed_many(frames, batch_size=2)
    assert [m.vector is None for m in many] == [False, False, False, False, True, False, False]
    np.testing.assert_array_equal(many[0].vector, many[3].vector)
    faces = np.stack([_augment(a if i % 2 else h, 10 + i) for i in range(17)])
    for frame, got in zip(faces, embedder.embed_many(faces)):
        np.testing.assert_array_equal(got.vector, embedder.embed(frame).vector)
    assert len(many) == len(frames)
    for frame, got in zip(frames, many):
        want = embedder.embed(frame)
        if want.vector is None:
            assert got.vector is None and got.box is None
        else:
            assert got.box == want.box
            np.testing.assert_array_equal(got.vector, want.vector)
    assert many[4].vector is None  # the blank frame
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed_many(frames.astype(np.float32))
