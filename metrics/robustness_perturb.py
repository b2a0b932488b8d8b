"""The robustness audit's perturbations: the versioned perturbation sets (data in
``metrics/perturbations/``), and applying one perturbation to a clip.

**Perturbations** (:class:`Perturbation`; all keep what is said and shown): ``encode`` (video
codec and CRF, audio codec and bit rate), ``geometry`` (content moved by ``dx``/``dy`` pixels,
zoom ``scale`` about the centre, edges repeated; :func:`shift_scale`), ``fps`` (resampled by
timestamp to ``fps``, duration kept; :func:`lesbench.io.iter_frames`), ``sampling`` (the
original files scored with one metric's frame sampling replaced). Perturbed copies are written
under the output folder only, with :func:`lesbench.io.write_video` (atomic), the audio read with
:func:`lesbench.io.read_audio_for_video` so it stays on the video's timeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesbench import schema
from lesbench.errors import LesbenchError, MediaError
from lesbench.io import probe, read_audio_for_video, read_frames, write_video
from lesbench.metrics.protocol import read_packaged_yaml

#: The unperturbed predictions' variant name (reserved).
ORIGINAL = "original"
KINDS = ("encode", "geometry", "fps", "sampling")


@dataclass(frozen=True)
class Perturbation:
    """One content-preserving change (module doc). ``crf``: x264/x265 CRF; ``audio_bit_rate``:
    bits/s (AAC); ``dx``/``dy``: pixels the content moves (+x right, +y down); ``scale``: zoom
    about the frame centre; ``fps``: target frame rate; ``metric``/``sampling``: the protocol
    frame sampling (:class:`~lesbench.metrics.protocol.FrameSampling` fields) that replaces
    ``metric``'s; ``requires``: an encoder PyAV must have."""

    name: str
    kind: str
    description: str = ""
    codec: str = "libx264"
    crf: int = 18
    audio_codec: str = "pcm_s16le"
    audio_bit_rate: int | None = None
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    fps: float | None = None
    metric: str | None = None
    sampling: dict[str, Any] | None = None
    requires: str | None = None

    @property
    def rewrites_files(self) -> bool:
        return self.kind != "sampling"


@dataclass(frozen=True)
class PerturbationSet:
    """A loaded perturbation file: ``name``, ``version``, the entries, the file and its sha256."""

    name: str
    version: str
    description: str
    perturbations: tuple[Perturbation, ...]
    source: str
    sha256: str

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source, "sha256": self.sha256,
                "perturbations": [dataclasses.asdict(p) for p in self.perturbations]}


def load_perturbations(name_or_path: str | Path = "robustness-v1") -> PerturbationSet:
    """Load a built-in perturbation set by name or any perturbation YAML by path.

    Raises:
        LesbenchError: the file is missing or malformed (the message names the file and entry).
    """
    raw, source, text = read_packaged_yaml(name_or_path, "perturbations", "perturbation set", ["robustness-v1"])
    if not isinstance(raw, dict) or not raw.get("name") or "version" not in raw:
        raise LesbenchError(f"{source}: a perturbation set needs `name`, `version` and `perturbations`")
    entries = raw.get("perturbations")
    if not isinstance(entries, list) or not entries:
        raise LesbenchError(f"{source}: `perturbations` must be a non-empty list")
    fields = {f.name for f in dataclasses.fields(Perturbation)}
    out: list[Perturbation] = []
    for i, e in enumerate(entries):
        where = f"{source}: perturbations[{i}]"
        if not isinstance(e, dict) or not e.get("name") or e.get("kind") not in KINDS:
            raise LesbenchError(f"{where}: needs a `name` and a `kind` in {KINDS}, got {e!r}")
        unknown = set(e) - fields
        if unknown:
            raise LesbenchError(f"{where} ({e['name']}): unknown keys {sorted(unknown)}")
        p = Perturbation(**e)
        if p.name == ORIGINAL or p.name in {q.name for q in out}:
            raise LesbenchError(f"{where}: duplicate or reserved name {p.name!r}")
        if p.kind == "sampling" and (not p.metric or not isinstance(p.sampling, dict)):
            raise LesbenchError(f"{where} ({p.name}): a sampling entry needs `metric` and a `sampling` mapping")
        if not (0.5 <= float(p.scale) <= 2.0) or (p.fps is not None and p.fps <= 0) or not (0 <= int(p.crf) <= 51):
            raise LesbenchError(f"{where} ({p.name}): scale must be in [0.5, 2], fps > 0, crf in 0..51")
        out.append(p)
    return PerturbationSet(str(raw["name"]), str(raw["version"]), str(raw.get("description", "")).strip(),
                           tuple(out), source, hashlib.sha256(text.encode("utf-8")).hexdigest())


def missing_requirement(p: Perturbation) -> str | None:
    """Why ``p`` cannot run here (an encoder PyAV lacks), or None."""
    if not p.requires:
        return None
    import av

    return None if p.requires in av.codecs_available else f"PyAV has no {p.requires} encoder"


# ----------------------------------------------------------------------------------- applying


def shift_scale(frames: np.ndarray, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Move the content of (T, H, W, 3) uint8 frames by (``dx``, ``dy``) pixels and zoom it by
    ``scale`` about the frame centre; pixels from outside repeat the edge. Integer shifts with
    ``scale`` 1 copy pixels exactly. Returns the same shape and dtype."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"shift_scale: frames must be (T, H, W, 3), got {frames.shape}")
    if dx == 0 and dy == 0 and scale == 1.0:
        return frames.copy()
    h, w = frames.shape[1:3]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[scale, 0.0, (1 - scale) * cx + dx], [0.0, scale, (1 - scale) * cy + dy]], np.float64)
    return np.stack([cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in frames])


def perturb_clip(src: str | Path, dst: str | Path, p: Perturbation, audio_path: str | Path | None = None) -> dict[str, Any]:
    """Write ``src`` perturbed by ``p`` to ``dst`` (an .mp4, atomic); return what was written:
    ``{"n_frames", "fps", "audio_samples"}`` (audio: 16 kHz samples on the video's timeline,
    None without audio). ``audio_path``: the clip's separate audio file (MEAD's .m4a)."""
    if not p.rewrites_files:
        raise ValueError(f"{p.name}: a sampling perturbation rewrites no file")
    src = Path(src)
    info = probe(src, count_frames=False)
    fps = float(p.fps) if p.fps else float(info.fps)
    frames = read_frames(src, fps=fps)  # resampled by timestamp: duration kept
    frames = shift_scale(frames, p.dx, p.dy, p.scale)
    audio = None
    if info.has_audio or audio_path is not None:
        try:
            audio = read_audio_for_video(src, audio_path, sr=schema.SAMPLE_RATE)
        except MediaError:
            audio = None  # a video without a decodable audio track stays without one
    write_video(dst, frames, fps=fps, audio=audio, sr=schema.SAMPLE_RATE, crf=int(p.crf), codec=p.codec,
                audio_codec=p.audio_codec, audio_bit_rate=p.audio_bit_rate)
    return {"n_frames": int(len(frames)), "fps": fps, "audio_samples": None if audio is None else int(len(audio))}
