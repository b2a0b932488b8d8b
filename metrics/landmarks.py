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

Modules: the distance kernel in :mod:`~lesbench.metrics.landmarks_distance`, dlib's points in
:mod:`~lesbench.metrics.landmarks_dlib`; this module holds the registered metric and its versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, Output
from lesbench.metrics.landmarks_distance import DEFINITIONS, LANDMARK_SETS, LMDResult, landmark_distance
from lesbench.metrics.landmarks_dlib import SHAPE_WEIGHTS, Dlib68Landmarker, video_landmark_distance

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
