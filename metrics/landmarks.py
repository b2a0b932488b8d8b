"""M-LMD / F-LMD (and EAT's M-LVD / F-LVD): landmark distance between generated and reference video.

**Distance** (both definitions). Generated and reference frames are paired with
:func:`lesbench.metrics.protocol.paired_indices` (``linspace``: ``m = min`` of the two lengths,
``floor(linspace(0, n, m, endpoint=False))`` in each clip, as EAT's code). Per paired frame and
point set (mouth or whole face), each set is **centred on its own mean** (removes translation;
no scaling, no rotation) and the Euclidean distances of corresponding points are summed. A
frame is *valid* when both videos have a face in it; frames without are skipped and counted.
Clip value = sum over valid frames / (valid frames x points in the set) = mean per-point
distance, in pixels at ``crop_size`` (landmarks are rescaled from the video's size to
``crop_size``; a no-op on 256x256 crops). Data-set value: mean over clips with at least one
valid frame; clips without one are counted, never averaged in as zero.

**Definitions** (``definition=``):

- ``lesbench`` (default): ``{"m_lmd", "f_lmd"}`` as above.
- ``eat``: EAT's evaluation code (yuangan/evaluation_eat, ``code/test_lmd.py``), which returns
  ``{"m_lmd", "f_lmd", "m_lvd", "f_lvd"}``. Its M-LMD / F-LMD are the distance above (the two
  definitions agree on them given the same landmarks). Its landmark *velocity* distance: for each
  valid frame after the first, velocity = this valid frame's landmarks minus the **previous
  valid** frame's (raw pixel coordinates, not centred; a skipped frame makes the step span the
  gap), summed Euclidean distance of the two videos' velocities; divided by (valid frames x
  points) like the LMD, so the first valid frame counts in the denominator without a term.

  *EAT's F-LVD bug.* That code adds the **mouth** velocity term to the face LVD sum, so its
  F-LVD is M-LVD x 20/68 and says nothing about the rest of the face. Decision: ``f_lvd`` under
  ``definition="eat"`` reproduces the code (the point of this definition is numbers comparable
  with papers that ran it), and the velocity distance of the whole face, which that code meant
  to compute, is kept per clip as :attr:`LMDResult.f_lvd_face` for anyone who wants it.

**Landmark sets** (``landmarks=``), recorded in the version (:func:`lmd_version`):

- ``mediapipe478`` (default): MediaPipe's 478 points from the shared face tracking
  (``pred_face`` / ``ref_face`` tables); mouth = the 40 points of MediaPipe's lips contours,
  face = all 478. **Not numerically comparable** with papers' LMD (other points, other
  detector); use it to compare methods within lesbench. Versions ``lmd-mp478/1``,
  ``lmd-mp478-eat/1``.
- ``dlib68``: EAT's points. dlib's HOG frontal face detector (no upsampling) and the 68-point
  shape predictor (``lesbench.weights`` name ``dlib-shape-predictor-68``, loaded once per
  metric instance) run on the paired frames of ``pred_video`` / ``ref_video`` (uint8 RGB);
  first detected face; landmarks are dlib's integer pixels; mouth = points 48-67 (20), face =
  0-67 (68). The grey image is EAT's: ``cv2.cvtColor(rgb, COLOR_BGR2GRAY)``, i.e. the RGB frame
  read as BGR, ``grey = 0.114 R + 0.587 G + 0.299 B`` (:func:`eat_grey`). Versions
  ``lmd-dlib68/2`` (``/1`` indexed MediaPipe points and never ran dlib), ``lmd-dlib68-eat/1``.

Not reproduced from EAT's script: its ``--bool_only96`` switch (reference clip cut to its
first 96 frames; off by default there) and its directory-of-JPEGs input.

Speed: dlib on 256x256 frames runs at about 140 frames/s on one idle core (only paired frames
are run); the predictor loads once per metric instance. Measured figures: ``docs/landmarks.md``.

Counts (:attr:`LandmarkDistance.counts`, also in :meth:`~LandmarkDistance.compute`'s result as
``n_*`` keys, the project's convention for counts): videos, videos scored, videos with no valid
frame, paired frames, valid frames, paired frames without a face in the generated / the
reference video. :attr:`LandmarkDistance.clip_notes` says, for the last clip updated, how many frames were
skipped and why (``lesbench score`` lists these as clip issues).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.metrics._face import landmarks_array
from lesbench.metrics.base import Metric, MetricUnavailable, Output
from lesbench.metrics.protocol import paired_indices
from lesbench.weights import file_sha256, resolve as resolve_weight

#: MediaPipe FaceMesh lips (outer + inner contours), 40 points.
MEDIAPIPE_LIPS: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191,
    267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)
#: dlib / iBUG 68-point mouth (outer 48-59, inner 60-67), as imutils' ``FACIAL_LANDMARKS_IDXS["mouth"]``.
DLIB68_MOUTH: tuple[int, ...] = tuple(range(48, 68))
SHAPE_WEIGHTS = "dlib-shape-predictor-68"

LANDMARK_SETS = ("mediapipe478", "dlib68")
DEFINITIONS = ("lesbench", "eat")
_VERSIONS = {
    ("mediapipe478", "lesbench"): "lmd-mp478/1",
    ("mediapipe478", "eat"): "lmd-mp478-eat/1",
    ("dlib68", "lesbench"): "lmd-dlib68/2",
    ("dlib68", "eat"): "lmd-dlib68-eat/1",
}


def lmd_version(landmarks: str, definition: str = "lesbench") -> str:
    """Version string of the metric for a landmark set and a definition (bumped when numbers change)."""
    if landmarks not in LANDMARK_SETS:
        raise ValueError(f"unknown landmark set {landmarks!r}; known: {', '.join(LANDMARK_SETS)}")
    if definition not in DEFINITIONS:
        raise ValueError(f"unknown LMD definition {definition!r}; known: {', '.join(DEFINITIONS)}")
    return _VERSIONS[(landmarks, definition)]


@dataclass
class LMDResult:
    """One clip. Distances in pixels at the crop size; NaN when no frame is valid.

    ``n_frames`` paired frames, ``n_valid`` of them with a face in both videos,
    ``n_no_face_pred`` / ``n_no_face_ref`` paired frames without a face in each video.
    ``m_lvd`` / ``f_lvd`` are EAT's velocity distances (``definition="eat"``; None otherwise),
    ``f_lvd`` as EAT's code computes it (the mouth term over 68), ``f_lvd_face`` the velocity
    distance of the whole face (what that code meant).
    """

    m_lmd: float
    f_lmd: float
    n_frames: int
    n_valid: int
    n_no_face_pred: int = 0
    n_no_face_ref: int = 0
    m_lvd: float | None = None
    f_lvd: float | None = None
    f_lvd_face: float | None = None

    def as_dict(self) -> dict[str, float]:
        out = {"m_lmd": self.m_lmd, "f_lmd": self.f_lmd}
        if self.m_lvd is not None and self.f_lvd is not None:
            out.update(m_lvd=self.m_lvd, f_lvd=self.f_lvd)
        return out


def mouth_indices(landmarks: str) -> tuple[int, ...]:
    if landmarks == "mediapipe478":
        return MEDIAPIPE_LIPS
    if landmarks == "dlib68":
        return DLIB68_MOUTH
    raise ValueError(f"unknown landmark set {landmarks!r}; known: {', '.join(LANDMARK_SETS)}")


def centred_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,) mean over points of ||(a - mean a) - (b - mean b)|| for (T, N, 2) point sets."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return np.linalg.norm(a - b, axis=2).mean(axis=1)


def velocity_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T - 1,) summed over points ||(a[t] - a[t-1]) - (b[t] - b[t-1])|| for (T, N, 2) point sets
    (raw coordinates, consecutive rows; EAT's landmark velocity term)."""
    return np.linalg.norm(np.diff(a, axis=0) - np.diff(b, axis=0), axis=2).sum(axis=1)


def paired_landmark_distance(p: np.ndarray, r: np.ndarray, mouth: tuple[int, ...] | list[int],
                             definition: str = "lesbench") -> LMDResult:
    """The kernel: LMD (and EAT's LVD) of two already paired landmark sequences.

    Args:
        p, r: (M, N, 2) landmarks in pixels of the generated and reference video, row i of each
            paired; a row with any NaN = no face in that frame.
        mouth: indices of the mouth points in the N.
        definition: ``lesbench`` or ``eat`` (module docstring).
    """
    if definition not in DEFINITIONS:
        raise ValueError(f"unknown LMD definition {definition!r}; known: {', '.join(DEFINITIONS)}")
    p = np.asarray(p, np.float64)
    r = np.asarray(r, np.float64)
    if p.shape != r.shape or p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"paired landmarks must both be (M, N, 2), got {p.shape} and {r.shape}")
    has_p = np.isfinite(p).all(axis=(1, 2))
    has_r = np.isfinite(r).all(axis=(1, 2))
    ok = has_p & has_r
    n_valid = int(ok.sum())
    res = LMDResult(float("nan"), float("nan"), len(p), n_valid, int((~has_p).sum()), int((~has_r).sum()))
    eat = definition == "eat"
    if eat:
        res.m_lvd = res.f_lvd = res.f_lvd_face = float("nan")
    if n_valid == 0:
        return res
    mouth = list(mouth)
    pv, rv = p[ok], r[ok]
    res.m_lmd = float(centred_distance(pv[:, mouth], rv[:, mouth]).mean())
    res.f_lmd = float(centred_distance(pv, rv).mean())
    if eat:
        # EAT divides the velocity sums by the valid frames (not valid frames - 1), over the
        # steps between consecutive valid frames; F-LVD takes the mouth sum (module docstring).
        mouth_sum = float(velocity_distance(pv[:, mouth], rv[:, mouth]).sum())
        res.m_lvd = mouth_sum / (n_valid * len(mouth))
        res.f_lvd = mouth_sum / (n_valid * p.shape[1])
        res.f_lvd_face = float(velocity_distance(pv, rv).sum()) / (n_valid * p.shape[1])
    return res


def _rescale(arr: np.ndarray, size: tuple[int, int] | None, crop_size: int) -> np.ndarray:
    if size is not None:
        arr[..., 0] *= crop_size / float(size[0])
        arr[..., 1] *= crop_size / float(size[1])
    return arr


def landmark_distance(pred: Any, ref: Any, landmarks: str = "mediapipe478",
                      pred_size: tuple[int, int] | None = None, ref_size: tuple[int, int] | None = None,
                      crop_size: int = 256, pairing: str = "linspace", definition: str = "lesbench") -> LMDResult:
    """LMD of one clip from landmarks (module docstring).

    Args:
        pred, ref: (T, N, 2|3) landmarks in pixels (NaN rows = no face) or frames tables; N = 478
            or 68 as ``landmarks`` says.
        pred_size, ref_size: (width, height) of the videos the pixels refer to; landmarks are
            rescaled to ``crop_size`` (None: already at ``crop_size``).
    """
    mouth = mouth_indices(landmarks)
    p = landmarks_array(pred)[..., :2].astype(np.float64)
    r = landmarks_array(ref)[..., :2].astype(np.float64)
    if p.shape[1] != r.shape[1]:
        raise ValueError(f"landmark counts differ: {p.shape[1]} vs {r.shape[1]}")
    if p.shape[1] <= max(mouth):
        raise ValueError(f"{landmarks} landmarks need {max(mouth) + 1}+ points, got {p.shape[1]}")
    p, r = _rescale(p, pred_size, crop_size), _rescale(r, ref_size, crop_size)
    ip, ir = paired_indices(len(p), len(r), pairing)
    return paired_landmark_distance(p[ip], r[ir], mouth, definition)


# --------------------------------------------------------------------------------------------
# dlib 68 points
# --------------------------------------------------------------------------------------------


def eat_grey(frame_rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey image as EAT's LMD code makes it: ``cv2.cvtColor(rgb, COLOR_BGR2GRAY)``
    on an RGB frame, i.e. ``0.114 R + 0.587 G + 0.299 B`` (red and blue weights swapped)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_BGR2GRAY)


def _check_frames(frames: Any, what: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[3] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{what}: expected (T, H, W, 3) uint8 RGB frames, got {arr.shape} {arr.dtype}")
    return arr


class Dlib68Landmarker:
    """dlib's HOG frontal face detector + 68-point shape predictor, loaded once.

    ``landmarker(frames)`` with ``frames`` (T, H, W, 3) uint8 RGB returns (T, 68, 2) float32
    pixel coordinates (dlib's integers) of the first detected face, NaN on frames without one.
    :attr:`frames_done` and :attr:`seconds` accumulate for speed reports.
    """

    def __init__(self, predictor_path: str | Path | None = None, upsample: int = 0) -> None:
        try:
            import cv2  # noqa: F401 - needed by eat_grey; fail here, not on the first frame
            import dlib
        except ImportError as e:
            raise MetricUnavailable("lmd", f"dlib68 landmarks need dlib and opencv ({e}); "
                                    "pip install 'lesbench[dlib]'") from e
        try:
            self.path = resolve_weight(SHAPE_WEIGHTS, predictor_path)
        except LesbenchError as e:
            raise MetricUnavailable("lmd", str(e)) from e
        self.sha256 = {SHAPE_WEIGHTS: file_sha256(self.path)}
        self.upsample = int(upsample)
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(self.path))
        self.frames_done = 0
        self.seconds = 0.0

    def frame(self, frame_rgb: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 landmarks of the first face in one (H, W, 3) uint8 RGB frame, or None."""
        grey = eat_grey(frame_rgb)
        rects = self.detector(grey, self.upsample)
        if len(rects) == 0:
            return None
        shape = self.predictor(grey, rects[0])
        return np.array([(shape.part(k).x, shape.part(k).y) for k in range(68)], np.float32)

    def __call__(self, frames_rgb: Any) -> np.ndarray:
        frames = _check_frames(frames_rgb, "dlib68 landmarks")
        t0 = time.perf_counter()
        out = np.full((len(frames), 68, 2), np.nan, np.float32)
        for i, frame in enumerate(frames):
            pts = self.frame(frame)
            if pts is not None:
                out[i] = pts
        self.seconds += time.perf_counter() - t0
        self.frames_done += len(frames)
        return out


def dlib68_landmarks(frames_rgb: np.ndarray, predictor_path: str | Path | None = None,
                     landmarker: Dlib68Landmarker | None = None) -> np.ndarray:
    """(T, 68, 2) dlib landmarks of (T, H, W, 3) uint8 RGB frames (first face, EAT's grey image),
    NaN without a face. Pass ``landmarker`` to reuse loaded models across calls."""
    return (landmarker or Dlib68Landmarker(predictor_path))(frames_rgb)


def video_landmark_distance(pred_video: Any, ref_video: Any, landmarker: Dlib68Landmarker,
                            crop_size: int = 256, pairing: str = "linspace",
                            definition: str = "lesbench") -> LMDResult:
    """LMD of one clip from frames with dlib's 68 points: frames are paired first and only the
    paired frames are run through dlib. ``pred_video``, ``ref_video``: (T, H, W, 3) uint8 RGB."""
    pv = _check_frames(pred_video, "pred_video")
    rv = _check_frames(ref_video, "ref_video")
    ip, ir = paired_indices(len(pv), len(rv), pairing)
    p = _rescale(landmarker(pv[ip]).astype(np.float64), (pv.shape[2], pv.shape[1]), crop_size)
    r = _rescale(landmarker(rv[ir]).astype(np.float64), (rv.shape[2], rv.shape[1]), crop_size)
    return paired_landmark_distance(p, r, DLIB68_MOUTH, definition)


# --------------------------------------------------------------------------------------------
# Metric class and functional twin
# --------------------------------------------------------------------------------------------


class LandmarkDistance(Metric):
    """M-LMD and F-LMD (+ EAT's M-LVD, F-LVD), pixels at ``crop_size``, lower is better.

    ``landmarks="mediapipe478"``: ``update(pred_face, ref_face, pred_size, ref_size)`` with face
    tables; ``landmarks="dlib68"``: ``update(pred_video, ref_video)`` with (T, H, W, 3) uint8 RGB
    frames (the instance's :attr:`inputs` say which). :meth:`compute` = mean over clips with a
    valid frame; :attr:`counts` and :attr:`clip_notes` report what was skipped.
    """

    name: ClassVar[str] = "lmd"
    version: ClassVar[str] = _VERSIONS[("mediapipe478", "lesbench")]
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("m_lmd", "m-lmd", "M-LMD", "lower", 2, "px"), Output("f_lmd", "f-lmd", "F-LMD", "lower", 2, "px"),
        Output("m_lvd", "lmd-m-lvd", None, "lower", 3, "px"), Output("f_lvd", "lmd-f-lvd", None, "lower", 3, "px"))
    protocol_args: ClassVar[dict[str, str]] = {"landmarks": "lmd_landmarks", "crop_size": "crop_size",
                                               "pairing": "pairing", "definition": "lmd_definition"}
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "ref_face", "pred_size", "ref_size")
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, landmarks: str = "mediapipe478", crop_size: int = 256,
                 pairing: str = "linspace", definition: str = "lesbench",
                 predictor_path: str | Path | None = None, landmarker: Dlib68Landmarker | None = None) -> None:
        """``predictor_path``: explicit dlib predictor file (else the weights resolver finds it);
        ``landmarker``: an already loaded :class:`Dlib68Landmarker` to share. With ``dlib68``
        the models load here, once: without dlib or the file this raises MetricUnavailable."""
        # instance attributes override the class defaults (score reads them per instance)
        self.version = lmd_version(landmarks, definition)  # type: ignore[misc]
        self.landmarks, self.crop_size, self.pairing, self.definition = landmarks, crop_size, pairing, definition
        self.landmarker: Dlib68Landmarker | None = None
        if landmarks == "dlib68":
            self.inputs = ("pred_video", "ref_video")  # type: ignore[misc]
            self.needs_face = False  # type: ignore[misc]  (no MediaPipe tracking needed)
            self.weights = (SHAPE_WEIGHTS,)  # type: ignore[misc]
            self.landmarker = landmarker or Dlib68Landmarker(predictor_path)
        super().__init__(device)

    def weight_hashes(self) -> dict[str, str]:
        return dict(self.landmarker.sha256) if self.landmarker is not None else {}

    def reset(self) -> None:
        self.results: list[LMDResult] = []
        self.clip_notes: list[str] = []

    def update(self, pred_face: Any = None, ref_face: Any = None, pred_size: tuple[int, int] | None = None,
               ref_size: tuple[int, int] | None = None, pred_video: Any = None, ref_video: Any = None) -> None:
        if self.landmarker is not None:
            if pred_video is None or ref_video is None:
                raise ValueError("lmd with dlib68 landmarks needs pred_video and ref_video frames")
            res = video_landmark_distance(pred_video, ref_video, self.landmarker, self.crop_size,
                                          self.pairing, self.definition)
        else:
            if pred_face is None or ref_face is None:
                raise ValueError(f"lmd with {self.landmarks} landmarks needs pred_face and ref_face")
            res = landmark_distance(pred_face, ref_face, self.landmarks, pred_size, ref_size,
                                    self.crop_size, self.pairing, self.definition)
        self.results.append(res)
        self.clip_notes = _notes(res)

    @property
    def counts(self) -> dict[str, int]:
        """Videos and frames seen since :meth:`reset` (counts, not averages; ``n_*`` like the
        other metrics' counts, which score and the leaderboard keep apart from the values)."""
        rs = self.results
        return {
            "n_videos": len(rs),
            "n_videos_scored": sum(r.n_valid > 0 for r in rs),
            "n_videos_no_valid_frame": sum(r.n_valid == 0 for r in rs),
            "n_frames_paired": sum(r.n_frames for r in rs),
            "n_frames_valid": sum(r.n_valid for r in rs),
            "n_frames_no_face_pred": sum(r.n_no_face_pred for r in rs),
            "n_frames_no_face_ref": sum(r.n_no_face_ref for r in rs),
        }

    def compute(self) -> dict[str, float]:
        """Mean over clips with at least one valid frame of each output (EAT: over valid videos),
        plus :attr:`counts`. Raises ValueError when no clip has a valid frame."""
        ok = [r for r in self.results if r.n_valid > 0]
        c = self.counts
        if not ok:
            raise ValueError(f"lmd: no clip with a face in both videos ({c['n_videos']} clips, "
                             f"{c['n_frames_no_face_pred']} generated and {c['n_frames_no_face_ref']} reference "
                             f"frames of {c['n_frames_paired']} paired without a face)")
        keys = ok[0].as_dict().keys()
        out: dict[str, float] = {k: float(np.mean([r.as_dict()[k] for r in ok])) for k in keys}
        out.update(c)
        return out

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(landmarks=self.landmarks, definition=self.definition, crop_size=self.crop_size,
                   pairing=self.pairing, counts=self.counts)
        return out


def _notes(r: LMDResult) -> list[str]:
    notes = []
    if r.n_no_face_pred or r.n_no_face_ref:
        notes.append(f"{r.n_frames - r.n_valid} of {r.n_frames} paired frames skipped (no face in "
                     f"{r.n_no_face_pred} generated, {r.n_no_face_ref} reference frames)")
    if r.n_valid == 0:
        notes.append("no frame with a face in both videos: clip not scored")
    return notes


def lmd(pred: Any, ref: Any, landmarks: str = "mediapipe478", definition: str = "lesbench",
        landmarker: Dlib68Landmarker | None = None, **kwargs: Any) -> dict[str, float]:
    """Functional twin of :class:`LandmarkDistance` for one clip.

    ``pred``, ``ref``: landmarks (T, N, 2|3) or face tables; with ``landmarks="dlib68"`` also
    (T, H, W, 3) uint8 RGB frames, which are run through dlib (``landmarker`` or a new one).
    Returns ``{"m_lmd", "f_lmd"}`` (+ ``"m_lvd", "f_lvd"`` for ``definition="eat"``).
    """
    if landmarks == "dlib68" and np.ndim(pred) == 4:
        for taken_from_frames in ("pred_size", "ref_size"):
            kwargs.pop(taken_from_frames, None)
        return video_landmark_distance(pred, ref, landmarker or Dlib68Landmarker(), definition=definition,
                                       **kwargs).as_dict()
    return landmark_distance(pred, ref, landmarks, definition=definition, **kwargs).as_dict()
