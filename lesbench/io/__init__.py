"""Video and audio I/O on PyAV (FFmpeg in-process; no subprocess, no torchvision).

Reading
    :func:`probe` describes a file (streams, size, fps, duration, VFR, truncation).
    :func:`iter_frames` streams RGB frames **resampled by timestamp** to a target frame rate:
    output frame ``k`` has ``t = k / fps`` seconds and shows the source frame on screen at that
    time (the last source frame whose timestamp is ``<= t``, within 0.1 ms). Times are counted
    from the first video frame. The number of output frames is ``round(duration * fps)`` where
    ``duration`` runs from the first frame's timestamp to the end of the last frame (its
    timestamp plus its duration), so 30 -> 25 fps keeps the clip's duration and variable
    frame-rate (VFR) sources come out at a constant rate.
    :func:`read_frames` is the explicit in-memory variant, ``(T, H, W, 3) uint8``.
    Frames come out **as displayed**: a display matrix (a phone's ``rotate`` tag) is applied,
    so a video recorded rotated is read upright and :func:`probe` reports the displayed size.
    :func:`read_audio_for_video` returns a clip's audio **on the video's timeline**: sample 0 is
    heard when the video's first frame is shown (container start offsets, edit lists and
    priming honoured; see its docstring and docs/media-timing.md). Use it wherever audio is
    read next to video. :func:`read_audio` decodes any audio stream PyAV reads (.m4a AAC, .wav,
    the audio track of an .mp4, ...) to mono float32 in [-1, 1] at 16 kHz (channels averaged),
    counting from the stream's first decoded sample: for audio used on its own.

Writing (atomic: a temporary file in the destination folder, then ``os.replace``)
    :func:`write_video`: H.264 (libx264, yuv420p, ``crf``) in .mp4, optionally with a mono AAC
    track muxed in. :func:`write_audio`: .m4a (AAC) or .wav (16-bit PCM) by suffix.
    With the default ``threads=1`` the bytes are deterministic: the same frames and audio give
    the same file on the same FFmpeg/x264 build (x264's output depends on its thread count, so
    a thread count chosen from the CPU count would not be reproducible across machines; and for
    videos under 128 px a side x264's mb-tree is switched off, see ``lesbench.io.write``).

Broken input raises :class:`lesbench.errors.MediaError` with ``kind`` one of ``missing``,
``empty``, ``not_media``, ``no_video_stream``, ``no_audio_stream``, ``truncated``,
``decode_error``. A truncated or partly corrupt file is decoded as far as it can be: packets that
fail to decode are skipped (and logged), and only a file that yields no frame at all raises
(``truncated`` when the container declares more packets than it holds, or when an MP4's index is
missing, else ``decode_error``). :attr:`MediaInfo.truncated` tells callers that want to flag such
clips.

Performance (docs/design.md, performance): colour conversion and resizing run in one ``to_ndarray`` call with an
explicit thread count (PyAV's automatic count costs up to 50% when one process per core already
fills the machine); the decoder is single-threaded unless ``threads`` says otherwise; source
frames that no output frame shows are decoded but never converted.

Modules: :mod:`~lesbench.io.decode` (opening, packets, orientation), :mod:`~lesbench.io.info`
(:func:`probe`), :mod:`~lesbench.io.video`, :mod:`~lesbench.io.audio`, :mod:`~lesbench.io.write`.
Import from ``lesbench.io``; the submodules are its implementation.
"""

from lesbench.io.audio import read_audio, read_audio_for_video
from lesbench.io.info import MediaInfo, probe
from lesbench.io.video import Frame, fit_within, iter_frames, read_frames
from lesbench.io.write import AUDIO_SUFFIXES, write_audio, write_video

__all__ = [
    "fit_within",
    "Frame",
    "MediaInfo",
    "probe",
    "iter_frames",
    "read_frames",
    "read_audio",
    "read_audio_for_video",
    "write_video",
    "write_audio",
    "AUDIO_SUFFIXES",
]
