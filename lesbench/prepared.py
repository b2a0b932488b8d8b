"""The prepared data set (the output of ``lesbench prepare``), as one object.

:class:`PreparedDataset` is the one way in and out of a prepared folder: prepare writes through
it, and LES, training, baselines, scoring, validation and the classifiers read through it. It
knows the layout (``dataset.json``'s path templates, falling back to the layout in
:mod:`lesbench.schema`), does the checks every reader needs (the folder exists, the manifest and
its columns are there, ``dataset.json`` is valid and of a compatible format) and raises
:class:`~lesbench.errors.DatasetError` naming the file on anything else.

``lesbench validate`` (``lesbench.pipelines.validate``) checks the whole contract; this module
opens a data set for the parts that use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from lesbench import io, schema
from lesbench.atomic import write_parquet, write_text
from lesbench.errors import DatasetError, MediaError
from lesbench.weights import file_sha256

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: Manifest columns every reader relies on.
REQUIRED_CLIP_COLUMNS = ("clip_id", "speaker", "emotion", "level", "split")

#: Per-clip parts and where they live, relative to the data set's root (``{clip_id}`` is filled in).
CLIP_FILES: dict[str, str] = {
    "frames": f"{schema.FRAMES_DIR}/{{clip_id}}.parquet",
    "audio": f"{schema.AUDIO_DIR}/{{clip_id}}.parquet",
    "coeffs": f"{schema.COEFFS_DIR}/{{clip_id}}.parquet",
    "crops": f"{schema.CROPS_DIR}/{{clip_id}}.mp4",
}
#: Per-clip parts in the order prepare writes them.
CLIP_KINDS: tuple[str, ...] = tuple(CLIP_FILES)
#: The files of the data set as a whole.
DATASET_FILES: dict[str, str] = {"clips": schema.CLIPS_PARQUET, "face_model": schema.FACE_MODEL}


@dataclass
class DatasetInfo:
    """``dataset.json``: what a prepared data set is and how it was made.

    Keys this lesbench does not know (written by a newer minor version) are kept in ``extra`` and
    written back, so reading and writing loses nothing. ``files`` holds the path templates of the
    per-clip parts and the data-set files (:data:`CLIP_FILES`, :data:`DATASET_FILES`).
    """

    format_version: str = schema.DATASET_FORMAT_VERSION
    lesbench_version: str = ""
    created_utc: str = ""
    source_root: str = ""
    dataset: str = ""
    reader: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    fps: float = schema.FPS
    sample_rate: int = schema.SAMPLE_RATE
    hop: int = schema.HOP
    crop_size: int = schema.CROP_SIZE
    extractors: list[dict[str, Any]] = field(default_factory=list)
    face_model: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    skipped_files: list[dict[str, Any]] = field(default_factory=list)
    demo: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=lambda: {**CLIP_FILES, **DATASET_FILES})
    imports: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The keys of the file this was read from, in its order (``None``: made here, all keys).
    present: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path = schema.DATASET_JSON) -> "DatasetInfo":
        """Check the format version and type the known keys. Raises :class:`DatasetError` naming
        ``where`` on an incompatible major version or a value of the wrong kind."""
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected a JSON object, found {type(data).__name__}")
        version = str(data.get("format_version", ""))
        if version and version.split(".")[0] != schema.DATASET_FORMAT_VERSION.split(".")[0]:
            raise DatasetError(
                f"{where}: format_version {version} is not compatible with this lesbench "
                f"(reads {schema.DATASET_FORMAT_VERSION}); re-run `lesbench prepare`"
            )
        known = {f.name for f in fields(cls)} - {"extra", "present"}
        kwargs = {k: v for k, v in data.items() if k in known}
        for name in ("reader", "config", "face_model", "counts", "files"):
            if name in kwargs and not isinstance(kwargs[name], dict):
                raise DatasetError(f"{where}: {name!r} must be an object, found {type(kwargs[name]).__name__}")
        info = cls(**kwargs, extra={k: v for k, v in data.items() if k not in known}, present=tuple(data))
        info.files = {**CLIP_FILES, **DATASET_FILES, **info.files}
        for kind, template in info.files.items():
            if kind in CLIP_FILES and "{clip_id}" not in str(template):
                raise DatasetError(f"{where}: files.{kind} = {template!r} has no {{clip_id}}")
            if Path(str(template).replace("{clip_id}", "x")).is_absolute() or ".." in Path(str(template)).parts:
                raise DatasetError(f"{where}: files.{kind} = {template!r} points outside the data set")
        return info

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: for a file that was read, its keys in its order (what was absent
        stays absent, so reading and writing back changes nothing); otherwise every key in the
        order prepare has always written them, ``imports`` only when set."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "present")}
        if self.present is not None:
            return {k: values[k] if k in values else self.extra[k] for k in self.present
                    if k in values or k in self.extra}
        if not values["imports"]:
            values.pop("imports")
        return {**values, **self.extra}


class PreparedDataset:
    """A prepared data set at ``root``: its files, its manifest and its per-clip tables.

    Opening is cheap and checks nothing; each reader checks what it reads and raises
    :class:`DatasetError` naming the file. ``info`` is read once (``None`` when the folder has
    no ``dataset.json``, as in data sets assembled by hand for tests).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"PreparedDataset({str(self.root)!r})"

    @classmethod
    def with_layout(cls, root: str | Path, info: DatasetInfo | None = None) -> "PreparedDataset":
        """The data set at ``root`` laid out as ``info`` says (default: as this lesbench lays it
        out), whatever the ``dataset.json`` in ``root`` holds: for ``prepare``, which is about to
        replace that file, and for ``validate``, which reports a damaged one instead of failing."""
        data = cls(root)
        data.__dict__["info"] = info if info is not None else DatasetInfo()
        return data

    # --- where things are -------------------------------------------------------------------
    @property
    def info_path(self) -> Path:
        return self.root / schema.DATASET_JSON

    @cached_property
    def info(self) -> DatasetInfo | None:
        """``dataset.json``, typed; ``None`` when absent. Raises :class:`DatasetError` on invalid
        JSON or an incompatible ``format_version``."""
        path = self.info_path
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from None
        return DatasetInfo.from_dict(data, path)

    def _templates(self) -> dict[str, str]:
        info = self.info
        return info.files if info is not None else {**CLIP_FILES, **DATASET_FILES}

    def path(self, name: str) -> Path:
        """A data-set file (``clips``, ``face_model``, ``dataset``) or a per-clip folder
        (``frames``, ``audio``, ``coeffs``, ``crops``)."""
        if name == "dataset":
            return self.info_path
        templates = self._templates()
        if name in CLIP_FILES:
            return self.root / Path(templates[name]).parent
        if name in templates:
            return self.root / templates[name]
        raise KeyError(f"no part {name!r} in a prepared data set (known: dataset, {', '.join(templates)})")

    def parts(self) -> dict[str, Path]:
        """Every part's :meth:`path` by name: the data-set files and the per-clip folders."""
        return {name: self.path(name) for name in ("dataset", "clips", *CLIP_FILES, "face_model")}

    def provenance(self) -> dict[str, Any]:
        """What an artefact built from this data set records: the resolved root and the sha256 of
        ``dataset.json``, ``clips.parquet`` and ``face_model.npz`` (``None`` for an absent file),
        keyed ``{file name}_sha256``."""
        prov: dict[str, Any] = {"root": str(self.root.resolve())}
        for name in ("dataset", "clips", "face_model"):
            p = self.path(name)
            prov[f"{p.name}_sha256"] = file_sha256(p) if p.is_file() else None
        return prov

    def clip_file(self, kind: str, clip_id: str) -> Path:
        """Where clip ``clip_id``'s ``kind`` part (frames, audio, coeffs, crops) lives; the file
        need not exist."""
        if kind not in CLIP_FILES:
            raise KeyError(f"no per-clip part {kind!r} (known: {', '.join(CLIP_FILES)})")
        return self.root / self._templates()[kind].format(clip_id=clip_id)

    def clip_files(self, kind: str) -> Iterator[tuple[str, Path]]:
        """``(clip_id, path)`` of every ``kind`` file on disk (temporary files excluded)."""
        template = self._templates()[kind]
        folder = self.root / Path(template).parent
        prefix, _, suffix = Path(template).name.partition("{clip_id}")
        if not folder.is_dir():
            return
        for p in sorted(folder.iterdir()):
            name = p.name
            if name.startswith(".") or not name.startswith(prefix) or not name.endswith(suffix):
                continue
            yield name[len(prefix): len(name) - len(suffix)], p

    # --- the manifest -------------------------------------------------------------------------
    def clips(self, statuses: Sequence[str] | None = (schema.STATUS_OK,),
              required: Sequence[str] = REQUIRED_CLIP_COLUMNS) -> "pd.DataFrame":
        """Rows of ``clips.parquet`` whose status is in ``statuses`` (all rows with ``None``),
        sorted by ``clip_id``. Raises :class:`DatasetError` naming the file when the folder is not
        a prepared data set or the manifest lacks a ``required`` column."""
        import pandas as pd

        path = self.path("clips")
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder, so not a prepared data set (make one with `lesbench prepare`)")
        if not path.is_file():
            raise DatasetError(f"{path}: missing; {self.root} is not a prepared data set (run `lesbench prepare`)")
        try:
            table = pd.read_parquet(path)
        except Exception as exc:  # a corrupt or truncated manifest
            raise DatasetError(f"{path}: unreadable manifest ({exc})") from None
        missing = set(required) - set(table.columns)
        if missing:
            raise DatasetError(f"{path}: missing columns {sorted(missing)}")
        if statuses is not None and "status" in table.columns:
            table = table[table["status"].astype(str).isin(list(statuses))]
        return table.sort_values("clip_id").reset_index(drop=True)

    # --- per-clip parts -----------------------------------------------------------------------
    def existing(self, kind: str, clip_id: str) -> Path:
        """:meth:`clip_file`, checked to exist (:class:`DatasetError` naming it otherwise)."""
        path = self.clip_file(kind, clip_id)
        if not path.is_file():
            what = "face crop" if kind == "crops" else f"{kind} table"
            raise DatasetError(f"{path}: missing {what} for clip {clip_id!r}")
        return path

    def read_table(self, kind: str, clip_id: str, columns: Sequence[str] | None = None) -> "pd.DataFrame":
        """One clip's ``frames``/``audio``/``coeffs`` table (optionally only ``columns``)."""
        import pandas as pd

        path = self.existing(kind, clip_id)
        try:
            return pd.read_parquet(path, columns=list(columns) if columns is not None else None)
        except Exception as exc:  # a corrupt or incomplete parquet file, a missing column
            raise DatasetError(f"{path}: unreadable {kind} table ({exc})") from None

    def read_arrow(self, kind: str, clip_id: str, columns: Sequence[str] | None = None) -> "pa.Table":
        """Like :meth:`read_table`, as an Arrow table (no pandas conversion of list columns)."""
        import pyarrow.parquet as pq

        path = self.existing(kind, clip_id)
        try:
            return pq.read_table(path, columns=list(columns) if columns is not None else None)
        except Exception as exc:
            raise DatasetError(f"{path}: unreadable {kind} table ({exc})") from None

    def landmarks(self, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame landmarks in source-video pixels and the face flag, in frame order:
        ``(T, 478, 3)`` float32 (NaN on frames without a face) and ``(T,)`` bool."""
        import pyarrow as pa

        table = self.read_arrow("frames", clip_id, ["frame", "face", "landmarks"]).sort_by("frame")
        face = table.column("face").to_numpy(zero_copy_only=False).astype(bool)
        column = table.column("landmarks").combine_chunks()
        width = schema.N_LANDMARKS * 3
        lm = np.full((len(face), width), np.nan, np.float32)
        if pa.types.is_fixed_size_list(column.type) and column.type.list_size == width:
            lm[:] = column.values.to_numpy(zero_copy_only=False).reshape(-1, width)
            lm[np.asarray(column.is_null())] = np.nan
        else:  # variable-length lists: check each row's width
            for i, v in enumerate(column.to_pylist()):
                if v is not None and len(v) == width:
                    lm[i] = v
        lm[~face] = np.nan
        return lm.reshape(-1, schema.N_LANDMARKS, 3), face

    def crop(self, clip_id: str) -> Path:
        """The clip's aligned face-crop video (256x256, 25 fps, with the clip's audio)."""
        return self.existing("crops", clip_id)

    def crop_frames(self, clip_id: str) -> np.ndarray:
        """The clip's aligned face crop: ``(T, 256, 256, 3)`` uint8 RGB at 25 fps."""
        return io.read_frames(self.crop(clip_id), fps=schema.FPS)

    def first_crop_frame(self, clip_id: str) -> np.ndarray:
        """The crop's first frame, ``(256, 256, 3)`` uint8 RGB, without decoding the rest."""
        path = self.crop(clip_id)
        for frame in io.iter_frames(path, fps=schema.FPS):
            return frame.image
        raise DatasetError(f"{path}: no frames")

    def crop_audio(self, clip_id: str, fallback: str | Path | None = None) -> np.ndarray | None:
        """The clip's audio on its crop video's timeline, ``(N,)`` float32 mono at 16 kHz: the
        crop's own audio track, else ``fallback`` (an audio file, e.g. the manifest's
        ``audio_path``) placed on the crop's timeline; ``None`` when neither can be read."""
        crop = self.crop(clip_id)
        try:
            return io.read_audio_for_video(crop, sr=schema.SAMPLE_RATE)
        except MediaError:
            pass
        if fallback and Path(str(fallback)).is_file():
            try:
                return io.read_audio_for_video(crop, fallback, sr=schema.SAMPLE_RATE)
            except MediaError:
                return None
        return None

    # --- writing (prepare) --------------------------------------------------------------------
    def write_table(self, kind: str, clip_id: str, table: "pa.Table") -> Path:
        """Write one clip's table atomically (zstd, byte-stream-split floats)."""
        return write_parquet(table, self.clip_file(kind, clip_id))

    def write_info(self, info: DatasetInfo) -> Path:
        """Write ``dataset.json`` atomically and forget the cached one."""
        path = write_text(self.info_path, json.dumps(info.to_dict(), indent=2, sort_keys=False, default=str) + "\n")
        self.__dict__.pop("info", None)
        return path


def read_dataset_info(root: str | Path) -> dict[str, Any]:
    """``dataset.json`` of a prepared data set as a dict (``{}`` when absent); see
    :attr:`PreparedDataset.info`."""
    info = PreparedDataset(root).info
    return info.to_dict() if info is not None else {}


def read_clips(root: str | Path, statuses: Sequence[str] | None = (schema.STATUS_OK,),
               required: Sequence[str] = REQUIRED_CLIP_COLUMNS) -> "pd.DataFrame":
    """:meth:`PreparedDataset.clips` of the data set at ``root``."""
    return PreparedDataset(root).clips(statuses, required)
