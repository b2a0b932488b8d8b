"""Reading one clip's media for the prepare stages: the size frames are decoded at, the frames
kept for the crops while the landmarker runs, the audio placed on the video's timeline, and the
notes saying what reading put right (rotation, audio offset, short audio).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from lesbench import io, schema
from lesbench.errors import MediaError
from lesbench.pipelines.prepare_config import one_line

#: A container audio offset at least this large (seconds) is noted in the clip's row.
AUDIO_OFFSET_NOTE_S = 0.001
#: Audio that ends at least this long (seconds; 5 frames at 25 fps) before the video is noted.
SHORT_AUDIO_NOTE_S = 0.2


class FrameTee:
    """Pass frames through while keeping their images (up to ``limit``) for the crop stage."""

    def __init__(self, frames: Iterable[Any], limit: int) -> None:
        self._frames = frames
        self.limit = limit
        self.images: list[np.ndarray] = []
        self.overflow = False

    def __iter__(self) -> Iterator[Any]:
        for fr in self._frames:
            if not self.overflow:
                if len(self.images) < self.limit:
                    self.images.append(fr.image)
                else:  # too long to hold: drop and decode again for the crops
                    self.overflow = True
                    self.images = []
            yield fr


def load_clip_audio(clip: schema.Clip, info: io.MediaInfo, sr: int) -> tuple[np.ndarray | None, str | None, str]:
    """(samples, source, problem): the clip's audio file, else the video's own track, placed
    on the video's timeline (:func:`lesbench.io.read_audio_for_video`); float32 mono at ``sr`` Hz.
    ``source`` is ``"file"`` or ``"video"``; without audio, samples and source are None and
    ``problem`` says why."""
    if clip.audio_path:
        try:
            samples = io.read_audio_for_video(clip.video_path, clip.audio_path, sr=sr)
        except MediaError as exc:
            return None, None, one_line(str(exc))
        if samples.size == 0:
            return None, None, f"{clip.audio_path}: no audio samples"
        return samples, "file", ""
    if not info.has_audio:
        return None, None, f"{clip.video_path}: no audio file for this clip and the video has no audio track"
    try:
        samples = io.read_audio_for_video(clip.video_path, sr=sr)
    except MediaError as exc:
        return None, None, one_line(str(exc))
    if samples.size == 0:
        return None, None, f"{clip.video_path}: audio track holds no samples"
    return samples, "video", ""


def timing_notes(clip: schema.Clip, info: io.MediaInfo, source: str | None, samples: np.ndarray | None,
                 n_frames: int, fps: float, sr: int) -> list[str]:
    """What reading put right without failing the clip: a rotated picture, a container audio
    offset, audio that ends well before the picture (its frames get silence features)."""
    notes = []
    if info.reoriented:
        how = f"turned {info.rotation} degrees counter-clockwise" + (" and mirrored" if info.mirrored else "")
        notes.append(f"{clip.video_path}: rotation metadata applied, frames {how} "
                     f"({info.coded_width}x{info.coded_height} stored, {info.width}x{info.height} upright)")
    if samples is None:
        return notes
    audio = clip.audio_path if source == "file" else clip.video_path
    start = info.audio_start_s
    if source == "file":
        try:
            start = io.probe(audio).audio_start_s
        except MediaError:  # it was just read; a note never fails the clip
            start = None
    if start is not None and abs(start) >= AUDIO_OFFSET_NOTE_S:
        notes.append(f"{audio}: container audio offset applied, audio starts {abs(start):.3f} s "
                     f"{'after' if start > 0 else 'before'} the first video frame")
    video_s, audio_s = n_frames / fps, len(samples) / sr
    if video_s - audio_s >= SHORT_AUDIO_NOTE_S:
        notes.append(f"{audio}: audio ends {video_s - audio_s:.2f} s before the video ({audio_s:.2f} s "
                     f"of {video_s:.2f} s); the frames after it get silence audio features")
    return notes
