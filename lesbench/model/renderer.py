"""One-shot rendering for LES-Talker: a landmark-guided warp of the source face crop.

1. The source (an image, or the first frame of a video) is analysed by lesbench's own
   :class:`~lesbench.pipelines.face.FaceTracker`, aligned to a 256x256 crop with the prepare
   stage's crop transform (:mod:`lesbench.pipelines.crops`), and projected onto the run's face
   model: identity ``id_s``, expression ``exp_s`` and pose ``pose_s`` (crop pixels).
2. For every frame, the target landmarks are the face model's reconstruction
   ``R(id_s, exp_t, pose_s + motion_t)`` shifted so that ``exp_t = exp_s`` reproduces the source
   landmarks exactly (only the model-predicted *displacement* is applied: the face model's fit
   residual stays in the image).
3. The crop is warped with :class:`lesbench.render.PiecewiseAffineWarp` (triangulated once per
   source) and the inside of an opened mouth is painted (:func:`lesbench.render.paint_mouth_interior`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from lesbench import schema
from lesbench.errors import LesbenchError, MediaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class SourceFace:
    """The source face, aligned: crop (S, S, 3) uint8 RGB; landmarks (478, 3) crop pixels;
    ``ident`` (K_id,), ``exp`` (K_exp,), ``pose`` (7,) from the face model."""

    image: np.ndarray
    landmarks: np.ndarray
    ident: np.ndarray
    exp: np.ndarray
    pose: np.ndarray
    aus: np.ndarray  # (17,) the source's measured AUs


def read_source_image(source: str | Path | np.ndarray) -> np.ndarray:
    """An RGB uint8 image from an array, an image file, or a video's first frame."""
    if isinstance(source, np.ndarray):
        img = source
    else:
        path = Path(source)
        if not path.is_file():
            raise MediaError(path, "source not found", kind="missing")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            import cv2

            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise MediaError(path, "not a readable image", kind="not_media")
            img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        else:
            from lesbench import io

            frame = next(iter(io.iter_frames(path)), None)
            if frame is None:
                raise MediaError(path, "no video frame", kind="no_video_stream")
            img = frame.image
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise LesbenchError(f"source image must be HxWx3 uint8 RGB, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)


def prepare_source(image: np.ndarray, face_model, tracker=None, size: int = schema.CROP_SIZE,
                   name: str = "source") -> SourceFace:
    """Detect, align and project the source face (see the module docstring)."""
    from lesbench.pipelines import crops
    from lesbench.pipelines.face import FaceTracker

    own = tracker is None
    tracker = tracker or FaceTracker()
    try:
        table = tracker.track([image])
        if not bool(table["face"].iloc[0]):
            raise LesbenchError(f"{name}: no face found in the source image")
        lm = np.asarray(table["landmarks"].iloc[0], np.float64).reshape(schema.N_LANDMARKS, 3)
        params = crops.crop_params(lm[None], np.array([True]), size=size, sigma=0.0)
        m = params.matrices[0]
        crop = crops.warp(image, m, size)
        # re-detect on the crop: landmarks consistent with what the warp moves
        table = tracker.track([crop])
        if bool(table["face"].iloc[0]):
            lm_c = np.asarray(table["landmarks"].iloc[0], np.float64).reshape(schema.N_LANDMARKS, 3)
            aus = table[list(schema.AU_NAMES)].iloc[0].to_numpy(np.float64)
        else:  # transform the original landmarks instead
            k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
            lm_c = np.concatenate([lm[:, :2] @ m[:, :2].T + m[:, 2], lm[:, 2:] * k], 1)
            aus = table[list(schema.AU_NAMES)].iloc[0].to_numpy(np.float64)
    finally:
        if own:
            tracker.close()
    coeffs = face_model.project(lm_c[None])
    return SourceFace(image=crop, landmarks=lm_c, ident=np.asarray(coeffs.id, np.float64),
                      exp=np.asarray(coeffs.exp[0], np.float64), pose=np.asarray(coeffs.pose[0], np.float64),
                      aus=aus)


def target_landmarks(source: SourceFace, face_model, exp: np.ndarray, pose_motion: np.ndarray | None = None) -> np.ndarray:
    """(T, 478, 3) crop-pixel landmarks for expression coefficients ``exp`` (T, K_exp) and
    optional head-pose motion (T, 3) degrees (yaw, pitch, roll added to the source pose)."""
    exp = np.atleast_2d(np.asarray(exp, np.float64))
    t = len(exp)
    pose = np.tile(source.pose, (t, 1))
    if pose_motion is not None:
        pose[:, :3] += np.asarray(pose_motion, np.float64)[:, :3]
    base = face_model.reconstruct(source.ident, source.exp[None], source.pose[None])[0]
    recon = face_model.reconstruct(source.ident, exp, pose)
    return source.landmarks[None] + (recon - base[None])


def render_frames(source: SourceFace, face_model, exp: np.ndarray, pose_motion: np.ndarray | None = None,
                  *, paint_mouth: bool = True) -> Iterator[np.ndarray]:
    """Yield (S, S, 3) uint8 frames: the source crop warped to each frame's landmarks."""
    from lesbench.render import PiecewiseAffineWarp, paint_mouth_interior, INNER_LIP_LOWER, INNER_LIP_UPPER

    h, w = source.image.shape[:2]
    warp = PiecewiseAffineWarp(source.landmarks[:, :2], (w, h))
    targets = target_landmarks(source, face_model, exp, pose_motion)
    up, lo = list(INNER_LIP_UPPER), list(INNER_LIP_LOWER)
    src_gap = np.linalg.norm(source.landmarks[lo, :2] - source.landmarks[up, :2], axis=1).max()
    for dst in targets:
        frame = warp.warp(source.image, dst[:, :2])
        if paint_mouth:
            gap = np.linalg.norm(dst[lo, :2] - dst[up, :2], axis=1).max()
            if gap > src_gap + 0.75:  # opened beyond the source: the photo has no pixels there
                paint_mouth_interior(frame, dst[:, :2])
        yield frame
