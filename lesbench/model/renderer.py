"""One-shot rendering for LES-Talker: a landmark-guided warp of the source face crop.

1. The source (an image, or the first frame of a video) is analysed by lesbench's own
   :class:`~lesbench.extract.face.FaceTracker`, aligned to a 256x256 crop with the prepare
   stage's crop transform (:mod:`lesbench.extract.crops`), and projected onto the run's face
   model: identity ``id_s``, expression ``exp_s`` and pose ``pose_s`` (crop pixels).
2. For every frame, the target landmarks are the face model's reconstruction
   ``R(id_s, exp_t, pose_s + motion_t)`` shifted so that ``exp_t = exp_s`` reproduces the source
   landmarks exactly (only the model-predicted *displacement* is applied: the face model's fit
   residual stays in the image).
3. The crop is warped with :class:`lesbench.render.PiecewiseAffineWarp` (triangulated once per
   source) and the inside of an opened mouth is painted (:func:`lesbench.render.paint_mouth_interior`).
4. Optionally, a small learned refiner (:mod:`lesbench.model.refine`) corrects each warped frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from lesbench import io, schema
from lesbench.errors import LesbenchError, MediaError
from lesbench.les.space import parse_units
from lesbench.extract import crops
from lesbench.extract.face import FaceTracker
from lesbench.render import INNER_LIP_LOWER, INNER_LIP_UPPER, PiecewiseAffineWarp, paint_mouth_interior
from lesbench.extract.face_arrays import OUTER_EYE_CORNERS

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


#: Landmarks (MediaPipe 478-point topology) that carry each facial unit's motion: the cores of
#: :func:`unit_weights`. Lip corners (61, 291, 78, 308) belong to no core: AU12/14 (mouth_upper)
#: and AU15/20 (mouth_lower) both move them, so each unit reaches them only through its feather.
UNIT_LANDMARKS: dict[str, tuple[int, ...]] = {
    "brows": (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336),
    "eyes": (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
             249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466,
             *range(468, 478)),
    "nose": (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440),
    "mouth_upper": (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415),
    "mouth_lower": (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324,
                    18, 200, 199, 175, 152, 148, 176, 149, 150, 136, 377, 400, 378, 379, 365,
                    83, 313, 201, 421, 208, 428, 32, 262, 194, 418, 182, 406),
}

def unit_weights(landmarks: np.ndarray, units, feather: float = 0.08) -> np.ndarray:
    """(478,) weight in [0, 1] of each landmark for an edit restricted to ``units``.

    1 on the units' core landmarks (:data:`UNIT_LANDMARKS`), falling off as
    ``exp(-d^2 / (2 feather^2))`` with ``d`` the distance to the nearest core landmark in units
    of the outer-eye-corner distance (``landmarks`` (478, 2|3) pixels; x, y used).
    """
    names = parse_units(units) if isinstance(units, str) else list(units)
    xy = np.asarray(landmarks, np.float64)[:, :2]
    iod = float(np.linalg.norm(xy[OUTER_EYE_CORNERS[0]] - xy[OUTER_EYE_CORNERS[1]])) or 1.0
    w = np.zeros(len(xy))
    for name in names:
        if name not in UNIT_LANDMARKS:
            raise LesbenchError(f"unknown facial unit {name!r}; known: {', '.join(UNIT_LANDMARKS)}")
        core = xy[list(UNIT_LANDMARKS[name])]
        d = np.sqrt(((xy[:, None, :] - core[None]) ** 2).sum(-1)).min(1) / iod
        w = np.maximum(w, np.exp(-0.5 * (d / feather) ** 2))
    return w


def inner_lip_gap(landmarks: np.ndarray) -> float:
    """Largest distance (pixels) between the inner upper and lower lip of (478, 2+) landmarks."""
    lm = np.asarray(landmarks)
    return float(np.linalg.norm(lm[list(INNER_LIP_LOWER), :2] - lm[list(INNER_LIP_UPPER), :2], axis=1).max())


def warp_source_frame(warp, image: np.ndarray, src_gap: float, dst: np.ndarray, *, paint_mouth: bool = True) -> np.ndarray:
    """One rendered frame: ``image`` (S, S, 3) uint8 warped by ``warp``
    (:class:`lesbench.render.PiecewiseAffineWarp` of the source landmarks) to ``dst`` (478, 2+)
    pixels, the mouth's inside painted where it opens beyond the source's gap ``src_gap``
    (:func:`inner_lip_gap` of the source). The renderer and the refiner's training data
    (:mod:`lesbench.model.refine`) both make frames with this."""
    frame = warp.warp(image, dst[:, :2])
    if paint_mouth and inner_lip_gap(dst) > src_gap + 0.75:  # opened beyond the source: the photo has no pixels there
        paint_mouth_interior(frame, dst[:, :2])
    return frame


def render_frames(source: SourceFace, face_model, exp: np.ndarray, pose_motion: np.ndarray | None = None,
                  *, paint_mouth: bool = True, ref_exp: np.ndarray | None = None,
                  units=None, refiner=None) -> Iterator[np.ndarray]:
    """Yield (S, S, 3) uint8 frames: the source crop warped to each frame's landmarks.

    With ``ref_exp`` (T, K_exp) and ``units``, only the facial units' landmarks follow the
    edit: ``ref + w * (edit - ref)`` with ``w`` = :func:`unit_weights` of the source landmarks
    and ``ref`` the landmarks of ``ref_exp`` (the same audio without the edit). The face model's
    bases are global, so a coefficient change for one unit also moves points elsewhere a little;
    the mask keeps those points where the unedited output has them.

    ``refiner``: an optional :class:`lesbench.model.refine.Refiner` applied to every warped
    frame (None: the plain warp).
    """
    h, w = source.image.shape[:2]
    warp = PiecewiseAffineWarp(source.landmarks[:, :2], (w, h))
    targets = target_landmarks(source, face_model, exp, pose_motion)
    if units and ref_exp is not None:
        ref = target_landmarks(source, face_model, ref_exp, pose_motion)
        wts = unit_weights(source.landmarks, units)[None, :, None]
        targets = ref + wts * (targets - ref)
    src_gap = inner_lip_gap(source.landmarks)
    for dst in targets:
        frame = warp_source_frame(warp, source.image, src_gap, dst, paint_mouth=paint_mouth)
        if refiner is not None:
            frame = refiner.refine(frame, source.image, dst)
        yield frame
