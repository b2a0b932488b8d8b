"""MEAD reader: index a MEAD-layout root into :class:`~lesbench.schema.Clip` records.

Layout (docs/design.md)::

    {M|W}NNN/video/{view}/{emotion}/level_{N}/NNN.mp4
    {M|W}NNN/audio/{emotion}/level_{N}/NNN.m4a

Tolerated variants, seen in MEAD releases and hand-extracted archives:

- a speaker's tree nested one folder deeper (``M003/video/video/front/...``,
  ``M003/M003/video/...``), or the root being one speaker's folder;
- any letter case (``FRONT``, ``Level_3``, ``.MP4``), ``level3`` / ``level-3`` / ``level_3``;
- common emotion spellings (``anger``, ``surprise``, ``sadness``, ``disgust``, ``happiness``).

Files that cannot be placed are listed in :attr:`MeadDataset.skipped` with a reason, never
raised; so are filesystem oddities met while searching (symlink loops, dangling links, folders
that cannot be listed, names that are not UTF-8, FIFOs: see :func:`walk_files`). A clip whose
audio file is absent gets ``audio_path=None`` (the prepare pipeline then falls back to the
video's own audio track, which MEAD's mp4 files carry).
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from lesbench.errors import DatasetError
from lesbench.schema import DEFAULT_TEST_SPEAKERS, EMOTIONS, VIEWS, Clip, make_clip_id

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
AUDIO_SUFFIXES = frozenset({".m4a", ".wav", ".aac", ".mp3", ".flac"})
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
#: Files a MEAD-layout root may hold that are not clips (the demo's ground truth and card,
#: notes); ignored without a report.
IGNORED_NAMES = frozenset({"truth.parquet", "demo.json", "readme.md", "readme.txt", "license",
                           "license.txt", "thumbs.db"})

_SPEAKER_RE = re.compile(r"^([mw])(\d{3})$", re.IGNORECASE)
_LEVEL_RE = re.compile(r"^level[_\- ]?([1-3])$", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"^(\d{1,4})$")

#: Other spellings of MEAD's emotion folder names.
EMOTION_ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgust": "disgusted",
    "fearful": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}
_VIEW_ALIASES: dict[str, str] = {v.replace("_", ""): v for v in VIEWS}  # "left30" -> "left_30"


def normalise_speaker(name: str) -> str | None:
    """``m003`` -> ``M003``; None when ``name`` is not a MEAD speaker id."""
    m = _SPEAKER_RE.match(name)
    return f"{m.group(1).upper()}{m.group(2)}" if m else None


def normalise_emotion(name: str) -> str | None:
    low = name.lower()
    if low in EMOTIONS:
        return low
    return EMOTION_ALIASES.get(low)


def normalise_view(name: str) -> str | None:
    low = name.lower().replace("-", "_")
    if low in VIEWS:
        return low
    return _VIEW_ALIASES.get(low.replace("_", ""))


def parse_level(name: str) -> int | None:
    m = _LEVEL_RE.match(name)
    return int(m.group(1)) if m else None


def parse_sentence(stem: str) -> str | None:
    """``"1"`` / ``"001"`` -> ``"001"``; None when the stem is not a sentence number."""
    m = _SENTENCE_RE.match(stem)
    return f"{int(m.group(1)):03d}" if m else None


def assign_split(speaker: str, test_speakers: Iterable[str], val_speakers: Iterable[str]) -> str:
    if speaker in set(test_speakers):
        return "test"
    if speaker in set(val_speakers):
        return "val"
    return "train"


_CLIP_ID_RE = re.compile(
    rf"^(?P<speaker>[MW]\d{{3}})_(?P<view>{'|'.join(VIEWS)})_(?P<emotion>{'|'.join(EMOTIONS)})"
    r"_(?P<level>[1-3])_(?P<sentence>\d{3,4})$"
)


def parse_clip_id(clip_id: str) -> dict[str, str | int] | None:
    """``M003_left_30_angry_3_001`` -> speaker, view, emotion, level (int), sentence; None when
    ``clip_id`` is not a MEAD clip id (the inverse of :func:`~lesbench.schema.make_clip_id`)."""
    m = _CLIP_ID_RE.match(clip_id)
    if m is None:
        return None
    labels: dict[str, str | int] = dict(m.groupdict())
    labels["level"] = int(m.group("level"))
    return labels


@dataclass(frozen=True)
class Placed:
    speaker: str
    view: str | None  # None for audio
    emotion: str
    level: int
    sentence: str


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable, valid UTF-8 text: bytes of a name that is not UTF-8 (kept by
    Python as lone surrogates, which Parquet, JSON files and terminals refuse) become
    ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes are lone surrogates (surrogateescape)
        return False
    return True


def walk_files(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Regular files under ``root`` (recursively, sorted, hidden names skipped) and a
    ``(path, reason)`` note for every entry that cannot be read as one.

    Symlinked folders are followed (data sets are often assembled from links) but each real
    folder is read once, so a link back to an ancestor (a loop) or a second link to a folder
    already read is a note, not a recursion. Also notes, never exceptions: dangling links,
    links that loop on themselves, folders that cannot be listed (permission denied...),
    entries that cannot be inspected, names that are not valid UTF-8 (they could not be
    recorded in ``clips.parquet``) and special files (FIFOs, sockets, devices: opening a FIFO
    would block the run).
    """
    files: list[Path] = []
    notes: list[tuple[str, str]] = []
    seen: dict[tuple[int, int], Path] = {}  # real folder (device, inode) -> first path read

    def note(path: Path, reason: str) -> None:
        notes.append((display_path(path), reason))

    # depth first with an explicit stack (no recursion limit on deep trees), in os.walk's order:
    # a folder's own files, then its subfolders by name
    stack: list[tuple[Path, frozenset[tuple[int, int]]]] = [(root, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            note(folder, f"cannot inspect folder ({exc.strerror or exc})")
            continue
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            note(folder, f"symlink loop: leads back to {display_path(seen[key])}; not followed")
            continue
        if key in seen:
            note(folder, f"same folder as {display_path(seen[key])}, already indexed; not followed")
            continue
        seen[key] = folder
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            note(folder, f"folder cannot be listed ({exc.strerror or exc}); its files were not indexed")
            continue
        subfolders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            if not _is_utf8(entry.name):
                note(path, "name is not valid UTF-8; rename it to index it")
                continue
            is_link = False
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir()  # follows links
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                note(path, "symlink loop (the link resolves through itself)" if exc.errno == errno.ELOOP
                     else f"cannot inspect ({exc.strerror or exc})")
                continue
            if is_dir:
                subfolders.append(path)
            elif is_file:
                files.append(path)
            elif is_link:
                try:
                    target = display_path(os.readlink(path))
                except OSError:
                    target = "?"
                note(path, f"dangling symlink (its target {target!r} does not exist)")
            else:
                note(path, "not a regular file (FIFO, socket or device); not read")
        inner = ancestors | {key}
        stack.extend((sub, inner) for sub in reversed(subfolders))
    return files, notes


class MeadDataset:
    """Index a MEAD-layout folder.

    Args:
        root: the MEAD root (containing ``M003/``, ``W009/``...) or a single speaker's folder.
        views: camera views to keep (others are counted in :attr:`other_views`, not reported).
        test_speakers / val_speakers: split assignment; every other speaker is ``train``.

    ``clips()`` returns the clips sorted by ``clip_id``; ``skipped`` lists ``(path, reason)``
    for every file that could not be placed (stray files, unknown emotion names, missing level
    folders, duplicates, archives not yet extracted).
    """

    name = "mead"

    def __init__(
        self,
        root: str | os.PathLike,
        views: Sequence[str] = ("front",),
        test_speakers: Sequence[str] = DEFAULT_TEST_SPEAKERS,
        val_speakers: Sequence[str] = (),
    ) -> None:
        # realpath, not Path.resolve: a looping root must reach the "not a folder" error
        self.root = Path(os.path.realpath(Path(root).expanduser()))
        bad_views = [v for v in views if normalise_view(v) is None]
        if bad_views:
            raise DatasetError(f"unknown MEAD view(s) {bad_views}; known views: {', '.join(VIEWS)}")
        self.views = tuple(normalise_view(v) for v in views)  # type: ignore[misc]
        self.test_speakers = tuple(normalise_speaker(s) or s for s in test_speakers)
        self.val_speakers = tuple(normalise_speaker(s) or s for s in val_speakers)
        overlap = set(self.test_speakers) & set(self.val_speakers)
        if overlap:
            raise DatasetError(f"speakers {sorted(overlap)} are in both the test and val split")
        self.skipped: list[tuple[str, str]] = []
        #: number of video files of views not asked for (not an error, so not in ``skipped``)
        self.other_views = 0
        self._clips: list[Clip] | None = None

    # -- public ---------------------------------------------------------------------------
    def clips(self) -> list[Clip]:
        if self._clips is None:
            self._clips = self._index()
        return list(self._clips)

    def config(self) -> dict:
        """What this reader was asked for (recorded in ``dataset.json``)."""
        return {
            "dataset": self.name,
            "root": str(self.root),
            "views": list(self.views),
            "test_speakers": list(self.test_speakers),
            "val_speakers": list(self.val_speakers),
        }

    # -- indexing -------------------------------------------------------------------------
    def _index(self) -> list[Clip]:
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder")
        self.skipped = []
        self.other_views = 0
        root_speaker = normalise_speaker(self.root.name)
        videos: dict[tuple, Path] = {}
        audios: dict[tuple, Path] = {}
        files, notes = walk_files(self.root)
        for path, reason in notes:
            self._skip(path, reason)
        for path in files:
            rel = path.relative_to(self.root)
            name = path.name.lower()
            if name in IGNORED_NAMES and len(rel.parts) == 1:
                continue
            if name.endswith(ARCHIVE_SUFFIXES):
                self._skip(path, "archive not extracted; extract it in place and re-run")
                continue
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                kind = "video"
            elif suffix in AUDIO_SUFFIXES:
                kind = "audio"
            else:
                if len(rel.parts) == 1 and suffix in {".json", ".parquet", ".md", ".txt", ".csv"}:
                    continue  # metadata next to the speakers: not a clip, nothing to report
                self._skip(path, f"not a video or audio file ({path.suffix or 'no suffix'})")
                continue
            placed, reason = place(rel, kind, root_speaker)
            if placed is None:
                self._skip(path, reason)
                continue
            if kind == "video":
                if placed.view not in self.views:
                    self.other_views += 1
                    continue
                key = (placed.speaker, placed.view, placed.emotion, placed.level, placed.sentence)
                table = videos
            else:
                key = (placed.speaker, placed.emotion, placed.level, placed.sentence)
                table = audios
            if key in table:
                self._skip(path, f"duplicate of {table[key]} (same speaker/emotion/level/sentence)")
                continue
            table[key] = path

        clips = []
        for (speaker, view, emotion, level, sentence), vpath in videos.items():
            apath = audios.get((speaker, emotion, level, sentence))
            clips.append(
                Clip(
                    clip_id=make_clip_id(speaker, view, emotion, level, sentence),
                    speaker=speaker,
                    view=view,
                    emotion=emotion,
                    level=level,
                    sentence=sentence,
                    video_path=str(vpath),
                    audio_path=str(apath) if apath is not None else None,
                    split=assign_split(speaker, self.test_speakers, self.val_speakers),
                )
            )
        clips.sort(key=lambda c: c.clip_id)
        self.skipped.sort()
        return clips

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append((str(path), reason))


def place(rel: Path, kind: str, root_speaker: str | None) -> tuple[Placed | None, str]:
    """Speaker/view/emotion/level/sentence of a ``kind`` ("video" or "audio") file from its path
    relative to the MEAD root (``root_speaker``: the root's own speaker id when the root is one
    speaker's folder), or ``(None, reason)``. The one reading of MEAD paths: the reader and
    ``lesbench validate`` use it."""
    parts = rel.parts
    expected = (
        "{speaker}/video/{view}/{emotion}/level_N/NNN.mp4" if kind == "video"
        else "{speaker}/audio/{emotion}/level_N/NNN.m4a"
    )
    sentence = parse_sentence(rel.stem)
    if sentence is None:
        return None, f"file name {rel.name!r} is not a sentence number (expected {expected})"
    n_tail = 4 if kind == "video" else 3  # [view,] emotion, level, file
    if len(parts) < n_tail + 1:
        return None, f"too shallow to place (expected {expected})"
    level = parse_level(parts[-2])
    if level is None:
        return None, f"missing level folder: {parts[-2]!r} is not level_1..3 (expected {expected})"
    emotion = normalise_emotion(parts[-3])
    if emotion is None:
        return None, f"unknown emotion {parts[-3]!r} (known: {', '.join(EMOTIONS)})"
    view = None
    if kind == "video":
        view = normalise_view(parts[-4])
        if view is None:
            return None, f"unknown view {parts[-4]!r} (known: {', '.join(VIEWS)})"
    head = [p.lower() for p in parts[:-n_tail]]
    # The media-kind folder must come just before the tail, allowing one extra nesting level
    # (``video/video/front``) and nothing else between.
    if not head or head[-1] != kind:
        found = parts[-n_tail - 1] if head else "nothing"
        return None, f"expected a {kind!r} folder above {parts[-n_tail]!r}, found {found!r} (expected {expected})"
    # Folders above the speaker folder are free (``data/MEAD/M003/...``); between the speaker
    # and the tail only speaker ids and the kind folder may appear (one extra nesting level,
    # as in ``M003/M003/video`` or ``M003/video/video``), so ``M003/video/backup/front/...``
    # is reported rather than guessed.
    above = parts[:-n_tail]
    first = next((i for i, p in enumerate(above) if normalise_speaker(p)), None)
    if first is None:
        if root_speaker is None:
            return None, f"no speaker folder (M/W + 3 digits) in the path (expected {expected})"
        speaker, between = root_speaker, above
    else:
        speaker, between = normalise_speaker(above[first]), above[first + 1:]
    others = [p for p in between if normalise_speaker(p) is None and p.lower() != kind]
    if others:
        return None, f"unexpected folder(s) {others} in the path (expected {expected})"
    ids = {normalise_speaker(p) for p in between if normalise_speaker(p)} | {speaker}
    if len(ids) > 1:
        return None, f"conflicting speaker folders {sorted(ids)}"
    if len(between) > 2:
        return None, f"nested too deep (expected {expected})"
    return Placed(speaker, view, emotion, level, sentence), ""
