"""CSIM: identity similarity between the source image and generated frames.

**Definition.** Cosine similarity between 128-d dlib ResNet face embeddings
(``dlib_face_recognition_resnet_model_v1.dat``, weight name ``dlib-face-recognition``; King 2017,
dlib's metric-learning ResNet-29 trained on ~3M faces) of the source (identity) image and of each
generated frame, averaged over the frames of a clip. Unitless, in [-1, 1], higher is better.

**Face box and alignment.** Each image is searched with dlib's HOG frontal face detector
(at the image's own scale, and upsampled once when nothing is found there, so faces down to
~40 px are found); the largest detection is used. The 68-point shape predictor
(``dlib-shape-predictor-68``) places landmarks in that box, and
``face_recognition_model_v1.compute_face_descriptor(image, shape)`` aligns and embeds the face
(no jitter, dlib's default padding 0.25). With ``box="full"`` the whole frame is the face box
instead (for tightly aligned face crops where detection is not wanted). Frames where no face is
found are counted (``n_no_face``) and excluded from the mean, never silently replaced; a source
image without a face is an error.

Weights come from the ``face_recognition_models`` wheel through :mod:`lesbench.weights`; dlib
itself comes from ``dlib-bin`` (optional extra ``lesbench[dlib]``): without either the metric raises
:class:`~lesbench.metrics.base.MetricUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, MetricUnavailable, Output
from lesbench.metrics.video import distinct_frames
from lesbench.errors import LesbenchError
from lesbench.weights import file_sha256
from lesbench.weights import resolve as resolve_weight

REC_WEIGHTS = "dlib-face-recognition"
SHAPE_WEIGHTS = "dlib-shape-predictor-68"


@dataclass
class FaceEmbedding:
    """A face embedding ``(128,)`` float64, or ``None`` when no face was found."""

    vector: np.ndarray | None
    box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 in pixels


class DlibFaceEmbedder:
    """dlib HOG detector + 68-point shape predictor + ResNet face descriptor (CPU)."""

    def __init__(self, rec_path: str | Path | None = None, shape_path: str | Path | None = None,
                 box: str = "detect", upsample: int = 1) -> None:

        if box not in ("detect", "full"):
            raise ValueError(f"box must be 'detect' or 'full', got {box!r}")
        try:
            import dlib
        except ImportError as e:
            raise MetricUnavailable("csim", f"dlib is not installed ({e}); pip install dlib-bin") from e
        try:
            self.rec_path = resolve_weight(REC_WEIGHTS, rec_path)
            self.shape_path = resolve_weight(SHAPE_WEIGHTS, shape_path)
        except LesbenchError as e:
            raise MetricUnavailable("csim", str(e)) from e
        self.sha256 = {REC_WEIGHTS: file_sha256(self.rec_path), SHAPE_WEIGHTS: file_sha256(self.shape_path)}
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape_predictor = dlib.shape_predictor(str(self.shape_path))
        self.recognizer = dlib.face_recognition_model_v1(str(self.rec_path))
        self.box = box
        self.upsample = upsample

    def face_box(self, image: np.ndarray) -> Any:
        """The dlib rectangle used for ``image`` (largest HOG detection, or the full frame)."""
        h, w = image.shape[:2]
        if self.box == "full":
            return self._dlib.rectangle(0, 0, w - 1, h - 1)
        dets = self.detector(image, 0)
        if len(dets) == 0 and self.upsample > 0:  # small faces: retry on the upsampled image
            dets = self.detector(image, self.upsample)
        if len(dets) == 0:
            return None
        return max(dets, key=lambda r: r.width() * r.height())

    def embed(self, image: np.ndarray) -> FaceEmbedding:
        """Embedding of the face in ``image`` ``(H, W, 3)`` uint8 RGB."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        rect = self.face_box(image)
        if rect is None:
            return FaceEmbedding(None, None)
        shape = self.shape_predictor(image, rect)
        vec = np.asarray(self.recognizer.compute_face_descriptor(image, shape), np.float64)
        return FaceEmbedding(vec, (rect.left(), rect.top(), rect.right(), rect.bottom()))

    def embed_many(self, frames: np.ndarray, batch_size: int = 16) -> list[FaceEmbedding]:
        """:meth:`embed` of each frame of ``(T, H, W, 3)`` uint8 RGB, equal to it bit for bit
        (tested) and cheaper: each distinct frame once, and the ResNet run on batches of
        ``batch_size`` aligned faces (dlib's batched descriptor, ~15% less time per face on
        one core than one call per face)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
        first, inverse = distinct_frames(frames)
        images = [np.ascontiguousarray(frames[i]) for i in first]
        rects = [self.face_box(im) for im in images]
        found = [k for k, r in enumerate(rects) if r is not None]
        vectors: dict[int, np.ndarray] = {}
        for start in range(0, len(found), batch_size):
            chunk = found[start : start + batch_size]
            shapes = [self._dlib.full_object_detections([self.shape_predictor(images[k], rects[k])]) for k in chunk]
            descs = self.recognizer.compute_face_descriptor([images[k] for k in chunk], shapes)
            for k, d in zip(chunk, descs):
                vectors[k] = np.asarray(d[0], np.float64)
        distinct = [FaceEmbedding(vectors[k], (r.left(), r.top(), r.right(), r.bottom())) if r is not None
                    else FaceEmbedding(None, None) for k, r in enumerate(rects)]
        return [distinct[u] for u in inverse]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def csim_frames(source: np.ndarray, frames: np.ndarray, embedder: DlibFaceEmbedder) -> np.ndarray:
    """Per-frame cosine similarity ``(T,)`` to the source face; NaN where no face was found."""
    src = embedder.embed(source)
    if src.vector is None:
        raise ValueError("CSIM: no face found in the source image")
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    out = np.full(len(frames), np.nan)
    for i, e in enumerate(embedder.embed_many(frames)):
        if e.vector is not None:
            out[i] = cosine(src.vector, e.vector)
    return out


def csim(source: np.ndarray, frames: np.ndarray, embedder: DlibFaceEmbedder | None = None) -> float:
    """Functional twin of :class:`CSIM`: mean cosine similarity over frames with a face."""
    vals = csim_frames(source, frames, embedder or DlibFaceEmbedder())
    if np.isnan(vals).all():
        return float("nan")
    return float(np.nanmean(vals))


class CSIM(Metric):
    """Identity cosine similarity, source image vs generated frames (see module doc).

    ``update(pred_video=(T, H, W, 3) uint8, source=(H, W, 3) uint8)``; ``compute()`` -> mean over
    all frames with a face. ``n_no_face`` counts frames without one.
    """

    name = "csim"
    version = "dlib-resnet-v1/hog-68pt/1"
    outputs = (Output("", "csim", "CSIM", "higher", 3),)
    weights: ClassVar[tuple[str, ...]] = (REC_WEIGHTS, SHAPE_WEIGHTS)
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "source")

    def __init__(self, device: str | None = None, box: str = "detect", embedder: DlibFaceEmbedder | None = None,
                 load: bool = True) -> None:
        """``load``: load dlib's models now (missing dlib/weights raise MetricUnavailable here)."""
        self.box = box
        self._embedder = embedder
        super().__init__(device=device)
        if load:
            _ = self.embedder

    @property
    def embedder(self) -> DlibFaceEmbedder:
        if self._embedder is None:
            self._embedder = DlibFaceEmbedder(box=self.box)
        return self._embedder

    def weight_hashes(self) -> dict[str, str]:
        return dict(self.embedder.sha256)

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0
        self.n_no_face = 0
        self.per_clip: list[float] = []

    def update(self, pred_video: np.ndarray, source: np.ndarray) -> None:
        vals = csim_frames(source, pred_video, self.embedder)
        ok = ~np.isnan(vals)
        self.n_no_face += int((~ok).sum())
        self.total += float(vals[ok].sum())
        self.count += int(ok.sum())
        self.per_clip.append(float(vals[ok].mean()) if ok.any() else float("nan"))

    def frame_counts(self) -> dict[str, int]:
        """Frames in the mean (``n_frames``) and generated frames without a face (``n_no_face``)."""
        return {"n_frames": int(self.count), "n_no_face": int(self.n_no_face)}

    def compute(self) -> float:
        """Mean over frames with a face; NaN when no generated frame had one (see ``n_no_face``)."""
        if self.count == 0:
            return float("nan")
        return self.total / self.count
