"""LSE-C / LSE-D: lip-sync error with the SyncNet v2 network (Chung & Zisserman, 2016).

Definitions (as in syncnet_python's ``SyncNetInstance.evaluate`` and the Wav2Lip
evaluation that named them), version ``syncnet_v2/2``:

1. Video: one face crop per frame (25 fps), resized to 224x224, **BGR** channel order, raw
   0..255 floats (no normalisation). Sliding windows of 5 consecutive frames -> a
   (3, 5, 224, 224) tensor per window start ``i``.
2. Audio: 16 kHz mono at int16 scale (float input is rounded to int16 as the reference chain's
   16-bit WAV is, so that digitally silent frames give the same log energy); MFCC exactly as
   ``python_speech_features.mfcc`` with its defaults (25 ms rectangular window, 10 ms step,
   512-point FFT, 26 mel filters 0-8 kHz, pre-emphasis 0.97, 13 cepstra, lifter 22, c0 replaced
   by log frame energy) -> 100 frames/s; window ``i`` uses MFCC frames ``4i .. 4i+19`` -> a
   (1, 13, 20) tensor.
3. ``n = min(n_video, floor(n_samples / 640)) - 5`` windows; embeddings ``v_i``, ``a_i``
   (1024-d, no normalisation), computed in batches of 20 windows as the reference does.
4. The audio embeddings are zero-padded by ``vshift = 15`` on both ends; for every window ``i``
   and offset ``j in 0..2*vshift``: ``d[i, j] = || v_i - a_pad[i + j] + 1e-6 ||_2``
   (torch ``pairwise_distance``, whose ``eps`` is added to the difference).
5. ``mdist[j] = mean_i d[i, j]``; **LSE-D = min_j mdist[j]** (lower is better);
   **LSE-C = median_j mdist[j] - min_j mdist[j]** (higher is better).
   ``offset = argmin_j mdist[j] - vshift`` frames, positive = audio lags the video, the
   convention of lesbench's ``sync`` metric; syncnet_python prints ``vshift - argmin`` ("AV
   offset", the opposite sign), available as :attr:`LSEResult.av_offset`. The reference also
   prints a per-window confidence ``median(mdist) - d[i, argmin]`` smoothed by a 9-tap median
   filter; it does not enter LSE-C/LSE-D and is kept here as :attr:`LSEResult.framewise_conf`.

Face crops, as syncnet_python's pre-processing makes them (``crop_video``):

- one face box per frame: S3FD (``sfd_face.pth``, on the frame scaled by 0.25, boxes with
  confidence > 0.9, non-maximum suppression at IoU 0.1) when its weights resolve, else the box
  spanned by the MediaPipe landmarks (``bbox`` of the frames table), which is a little tighter
  than an S3FD box at the forehead. The metric's version string names the detector
  (``syncnet_v2/2+s3fd`` or ``syncnet_v2/2+mediapipe``): the two give different numbers;
- one track per clip: the first detected face, then in each frame the box overlapping the
  previous one most (IoU > 0.5); frames without such a box get a box linearly interpolated
  between their neighbours (as the reference interpolates inside a track); frames before the
  first and after the last detection are left out, and the audio is cut to match;
- per frame the half-size ``s = max(w, h) / 2`` and centre ``(x, y)``; each of the three
  sequences median-filtered over 13 frames with zero padding at both ends (``scipy.signal.
  medfilt``'s definition, so the first and last 6 frames see zeros: the reference's quirk);
- crop ``[y - s, y + 2.8 s] x [x - 1.4 s, x + 1.4 s]`` (``crop_scale`` 0.4, extended
  downwards to the chin) from the frame padded by ``int(3.8 s)`` pixels of grey 110, resized
  to 224x224 (bilinear).

Differences from the reference pipeline, on purpose: no scene-cut detection and no minimum
track length (50 frames) or face size (100 px), because lesbench scores one talking face per
generated clip, often at 256x256; and nothing is re-encoded (the reference converts the video to
MPEG-4 and JPEG frames before detection, and writes the crops to an XVID video that it re-reads
as JPEG files; on a real clip, JPEG crops alone moved LSE-D by 0.0035).

Weights: ``syncnet_v2.model`` (a pickled state dict, ~54 MB, from the syncnet_python
release; files from PyTorch < 0.4.1 have no ``num_batches_tracked`` entries, which are then
left at their defaults, as the reference's own loader does), resolved through
``lesbench.weights.resolve("syncnet-v2")`` and loaded with ``torch.load(weights_only=True)``.
S3FD: ``sfd_face.pth`` through ``resolve("syncnet-s3fd")``, also a plain state dict. Neither is
shipped by any installable package: put the files in lesbench's cache or pass them explicitly
(see :data:`lesbench.metrics.lse_model.HOW_TO_SUPPLY`). Without SyncNet weights the metric is reported unavailable,
never faked; results record the sha256 of the files used.

Modules: :mod:`~lesbench.metrics.lse_mfcc` (step 2), :mod:`~lesbench.metrics.lse_model` (the
network and the scorer, steps 1-3), :mod:`~lesbench.metrics.lse_offsets` (steps 4-5),
:mod:`~lesbench.metrics.lse_crops` (the face crops) and :mod:`~lesbench.metrics.lse_s3fd` (the
detector); this module holds the registered metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.weights import file_sha256
from lesbench.metrics.base import Metric, MetricUnavailable, Output
from lesbench.metrics.lse_crops import crops_for_syncnet
from lesbench.metrics.lse_model import WEIGHTS, SyncNetScorer
from lesbench.metrics.lse_offsets import VSHIFT, LSEResult
from lesbench.metrics.lse_s3fd import S3FD_WEIGHTS, load_face_detector

VERSION = "syncnet_v2/2"


class LSE(Metric):
    """LSE-D (lower is better) and LSE-C (higher is better) per clip with SyncNet v2, on
    syncnet_python's crops (see the module docstring). ``detector``: ``auto`` | ``s3fd`` |
    ``mediapipe``; the instance's ``version`` names the one used (``syncnet_v2/2+s3fd``)."""

    name: ClassVar[str] = "lse"
    version: ClassVar[str] = VERSION
    outputs: ClassVar[tuple[Output, ...]] = (
        # SyncNet's confidence and distance: generated mouths often beat real ones (ground truth bounds them)
        Output("lse_c", "lse-c", "LSE-C", "higher", 2, reference_bound=True),
        Output("lse_d", "lse-d", "LSE-D", "lower", 2, reference_bound=True),
        Output("offset", "lse-offset", "LSE offset", "target", 2, "frames"))
    protocol_args: ClassVar[dict[str, str]] = {"vshift": "lse_vshift", "crop_scale": "lse_crop_scale"}
    weights: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "pred_face", "audio")
    needs_audio: ClassVar[bool] = True
    needs_face: ClassVar[bool] = True

    def __init__(self, device: str | None = None, weights_path: str | Path | None = None,
                 vshift: int = VSHIFT, crop_scale: float = 0.4, scorer: SyncNetScorer | None = None,
                 detector: str = "auto", s3fd_weights_path: str | Path | None = None) -> None:
        self.vshift, self.crop_scale = vshift, crop_scale
        super().__init__(device)
        # MetricUnavailable at construction when a weight file is missing or is not what it
        # should be (the message names the file), so that the other metrics of a run go on.
        try:
            self.scorer = scorer or SyncNetScorer(weights_path, device)
            self.detector, self.detector_note = load_face_detector(detector, s3fd_weights_path, device)
        except ValueError as exc:
            raise MetricUnavailable("lse", str(exc)) from None
        self.version = f"{VERSION}+{'s3fd' if self.detector is not None else 'mediapipe'}"  # type: ignore[misc]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["detector"] = self.detector_note
        # score records the files named under "classifier" -> "weights" (the ones this instance
        # loaded, explicit paths included) instead of resolving the class's weight names again.
        used = {WEIGHTS: self.scorer.weights_path}
        if self.detector is not None:
            used[S3FD_WEIGHTS] = self.detector.weights_path
        d["classifier"] = {"name": "syncnet_v2", "weights": {k: file_sha256(p) for k, p in used.items() if p is not None}}
        return d

    def reset(self) -> None:
        self.results: list[LSEResult] = []
        #: remarks on the clips scored since the last reset (``lesbench score`` lists them per clip)
        self.clip_notes: list[str] = []

    def update(self, pred_video: np.ndarray, pred_face: Any, audio: np.ndarray) -> LSEResult:
        """One clip: ``pred_video`` (T, H, W, 3) uint8 RGB at 25 fps, ``pred_face`` its frames
        table (``bbox`` column; used without S3FD) or (T, 4) boxes, ``audio`` (N,) 16 kHz mono.

        Frames outside the face track and boxes filled in are reported in ``clip_notes`` (and in
        the result's ``crop``); a clip where the detector finds no face raises ``ValueError``."""
        detector = "s3fd" if self.detector is not None else "mediapipe"
        if self.detector is not None:
            bboxes = self.detector.track(pred_video)
        elif hasattr(pred_face, "columns"):
            bboxes = np.stack([np.asarray(b, np.float64) if b is not None else np.full(4, np.nan)
                               for b in pred_face["bbox"]])
        else:
            bboxes = np.asarray(pred_face, np.float64)
        if not np.isfinite(bboxes).all(axis=1).any():
            raise ValueError(f"{detector} found no face in any of the {len(pred_video)} frames")
        crops, track = crops_for_syncnet(pred_video, bboxes, self.crop_scale)
        clip_audio = np.asarray(audio).reshape(-1)[track.first * 640:(track.first + len(track)) * 640]
        result = self.scorer.score(crops, clip_audio, 16000, self.vshift)
        n_video = int(len(pred_video))
        result.crop = {"detector": detector, "first_frame": track.first, "n_frames": len(track),
                       "n_video_frames": n_video, "n_interpolated": track.n_interpolated}
        if len(track) < n_video:
            self.clip_notes.append(f"scored frames {track.first}-{track.first + len(track) - 1} of {n_video} "
                                   f"(the {detector} face track)")
        if track.n_interpolated:
            n = track.n_interpolated
            self.clip_notes.append(f"{n} frame{'s' if n != 1 else ''} without a {detector} face box: box interpolated")
        self.results.append(result)
        return result

    def compute(self) -> dict[str, float]:
        if not self.results:
            raise ValueError("lse: no clips")
        return {"lse_d": float(np.mean([r.lse_d for r in self.results])),
                "lse_c": float(np.mean([r.lse_c for r in self.results])),
                "offset": float(np.mean([r.offset for r in self.results]))}


def lse(crops_bgr: np.ndarray, audio: np.ndarray, weights_path: str | Path | None = None,
        vshift: int = VSHIFT) -> dict[str, float]:
    """Functional twin of :class:`LSE` for one clip of 224x224 BGR crops + 16 kHz audio."""
    return SyncNetScorer(weights_path).score(crops_bgr, audio, 16000, vshift).as_dict()
