"""One video as the scorer sees it: frames, audio and face table, each loaded once and shared by
every metric; and the on-disk cache of what reference clips cost (face tables, Inception
features)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesbench import io
from lesbench.errors import MediaError
from lesbench.metrics.protocol import Protocol
from lesbench.extract.frames_table import VERSION as FACE_VERSION
from lesbench.extract.face import FaceTracker

log = logging.getLogger(__name__)


def distinct_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first occurrence of each distinct frame and, per frame, which of them it
    equals: ``(first (U,) int64, inverse (N,) int64)`` with ``frames[first][inverse]`` equal to
    ``frames`` byte for byte.

    A per-frame model then runs once per distinct frame: exact only where the model's output
    for a frame does not depend on the other frames of its batch (dlib's face embedder: tested;
    not Inception on the CPU, whose kernel changes with the batch size). Still videos (a static
    baseline, held frames) have few distinct frames.
    Frames are compared by a hash of their bytes and then byte for byte, so a hash collision
    cannot merge two different frames.
    """
    frames = np.asarray(frames)
    first: list[int] = []
    inverse = np.empty(len(frames), np.int64)
    seen: dict[bytes, list[int]] = {}  # digest -> positions in ``first`` with that digest
    for i in range(len(frames)):
        frame = np.ascontiguousarray(frames[i])
        digest = hashlib.blake2b(frame.data, digest_size=16).digest()
        for u in seen.get(digest, ()):
            if np.array_equal(frames[first[u]], frame):
                inverse[i] = u
                break
        else:
            seen.setdefault(digest, []).append(len(first))
            inverse[i] = len(first)
            first.append(i)
    return np.asarray(first, np.int64), inverse


@dataclass
class VideoData:
    """Frames, audio and face table of one video (each loaded on first use, then kept).
    ``audio_file``: its audio as a separate file (None: the video's own audio track)."""

    video: Path
    audio_file: Path | None
    protocol: Protocol
    tracker_factory: Any
    #: Where this video's face table is cached across runs (reference clips only; None: no cache).
    cache: "FeatureCache | None" = None
    _frames: np.ndarray | None = None
    _audio: np.ndarray | None = None
    _audio_error: str | None = None
    _audio_done: bool = False
    _face: Any = None

    @property
    def frames(self) -> np.ndarray:
        if self._frames is None:
            self._frames = io.read_frames(self.video, fps=self.protocol.fps)
        return self._frames

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def audio(self) -> np.ndarray | None:
        """16 kHz mono float32, or None (reason in :attr:`audio_error`)."""
        if not self._audio_done:
            self._audio_done = True
            try:
                self._audio = io.read_audio_for_video(self.video, self.audio_file, sr=self.protocol.sample_rate)
                if self._audio.size == 0 or not np.any(self._audio):
                    self._audio, self._audio_error = None, "silent audio"
            except MediaError as exc:
                self._audio_error = "no audio stream" if exc.kind == "no_audio_stream" else f"audio unreadable: {exc.problem}"
        return self._audio

    @property
    def audio_error(self) -> str | None:
        _ = self.audio
        return self._audio_error

    @property
    def face(self) -> Any:
        """Frames table (``lesbench.extract.face`` columns) of :attr:`frames`."""
        if self._face is None:
            def track() -> Any:
                return self.tracker_factory().track(self.frames, fps=self.protocol.fps, analysis_size=640)

            self._face = self.cache.face(self.video, self.protocol, track) if self.cache else track()
        return self._face

    @property
    def face_ratio(self) -> float:
        f = np.asarray(self.face["face"], bool)
        return float(f.mean()) if len(f) else 0.0


class FeatureCache:
    """On-disk cache of what reference clips cost to compute: their face tables (MediaPipe) and
    Inception features, so that scoring several methods against the same reference clips
    (``lesbench evaluate``) tracks and embeds each reference clip once.

    Entries are keyed by the file (resolved path, size, mtime) and everything that changes the
    result (frame rate, face-stage version, analysis size; Inception weights sha256 and the frame
    indices); writes are atomic (a temporary file per writer, then a rename), so several Dask
    workers can share one cache. Only reference clips are cached: generated clips change.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def _key(path: Path, *parts: Any) -> str:
        st = Path(path).stat()
        text = "|".join([str(Path(path).resolve()), str(st.st_size), str(st.st_mtime_ns), *map(str, parts)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def face(self, video: Path, protocol: Protocol, compute: Any) -> Any:
        """The face table of ``video`` (``compute()`` on a miss; cached as Parquet)."""
        import pandas as pd

        path = self.root / "face" / f"{self._key(video, protocol.fps, FACE_VERSION, 640)}.parquet"
        if path.is_file():
            try:
                return pd.read_parquet(path)
            except Exception as exc:  # noqa: BLE001 - a damaged cache entry is recomputed
                log.warning("%s: unreadable cache entry (%s); recomputing", path, exc)
        table = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _unique_tmp(path)
        table.to_parquet(tmp)
        tmp.replace(path)
        return table

    def inception(self, video: Path, indices: np.ndarray, weights_sha: str, compute: Any) -> np.ndarray:
        """(N, 2048) float64 Inception features of ``video``'s frames ``indices``."""
        idx = hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()[:16]
        path = self.root / "inception" / f"{self._key(video, weights_sha, idx)}.npy"
        if path.is_file():
            try:
                return np.load(path)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: unreadable cache entry (%s); recomputing", path, exc)
        feats = np.asarray(compute(), np.float64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _unique_tmp(path)
        with open(tmp, "wb") as f:
            np.save(f, feats)
        tmp.replace(path)
        return feats


def _unique_tmp(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process or worker writes to at the same
    time (workers may compute the same cache entry at once; the last rename wins, whole)."""
    return path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")


class TrackerPool:
    """One FaceTracker for the whole run, created on first use."""

    def __init__(self) -> None:
        self.tracker = None

    def __call__(self) -> Any:
        if self.tracker is None:
            self.tracker = FaceTracker()
        return self.tracker

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None

