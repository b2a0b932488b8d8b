"""The prepared data set's bookkeeping: ``clips.parquet`` rows (columns per stage come from the
pipeline, :data:`lesbench.pipelines.stages.PIPELINE`) and the per-clip done-records that make
``prepare`` resumable.

Every file is written atomically (:mod:`lesbench.atomic`), so a reader never sees a
half-written file under a final name; :func:`remove_stale_temps` deletes what an interrupted run
left behind.

Done-records (``OUT/.lesbench/done/{clip_id}.json``) are written last, after every output of
a clip is in place. A record holds the clip's input fingerprint (size and mtime of its video
and audio files), the stage versions, the hash of the per-clip config, the outputs with their
sizes and sha256, and the manifest row. A clip is redone unless its record exists, matches the
current inputs/versions/config, and every listed output exists with the recorded size and
sha256 (:func:`check_done`); ``lesbench validate`` checks the same (:func:`verify_outputs`).
The content is hashed because damage that keeps a file's size (flipped bytes) is invisible to
sizes, and often to Parquet and video readers too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from lesbench.atomic import is_temp_name, write_text
from lesbench.pipelines.stages import MANIFEST_STAGES
from lesbench.weights import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

STATE_DIR = ".lesbench"
DONE_DIR = "done"
#: Stages whose version and time a manifest row records, in column order (from the pipeline).
STAGE_NAMES: tuple[str, ...] = MANIFEST_STAGES


def stage_column(stage: str) -> str:
    """``action-units`` -> ``action_units`` (column-name form)."""
    return stage.replace("-", "_")


#: Columns that legitimately differ between runs (wall-clock times); everything else in
#: ``clips.parquet`` is a function of the inputs and the config.
TIMING_COLUMNS: tuple[str, ...] = ("time_total_s", *[f"time_{stage_column(s)}_s" for s in STAGE_NAMES])


def manifest_schema() -> "pa.Schema":
    """Arrow schema of ``clips.parquet`` (one row per clip found, failures included)."""
    import pyarrow as pa

    fields = [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("speaker", pa.string()),
        pa.field("view", pa.string()),
        pa.field("emotion", pa.string()),
        pa.field("level", pa.int16()),
        pa.field("sentence", pa.string()),
        pa.field("split", pa.string()),
        pa.field("video_path", pa.string()),
        pa.field("audio_path", pa.string()),
        pa.field("audio_source", pa.string()),  # "file", "video" (the video's own track) or null
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        # what reading put right without failing the clip (rotation, audio offset, short audio)
        pa.field("notes", pa.string()),
        pa.field("n_frames", pa.int32()),
        pa.field("src_fps", pa.float64()),
        pa.field("src_width", pa.int32()),
        pa.field("src_height", pa.int32()),
        pa.field("vfr", pa.bool_()),
        pa.field("duration_s", pa.float64()),
        pa.field("audio_duration_s", pa.float64()),
        pa.field("face_ratio", pa.float32()),
        *[pa.field(f"version_{stage_column(s)}", pa.string()) for s in STAGE_NAMES],
        *[pa.field(c, pa.float64()) for c in TIMING_COLUMNS],
    ]
    return pa.schema(fields)


def empty_row(clip_row: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest row for ``clip_row`` (``Clip.as_row()``) with every other column null."""
    row = {f.name: None for f in manifest_schema()}
    for k, v in clip_row.items():
        if k in row:
            row[k] = v
    return row


def manifest_table(rows: Iterable[Mapping[str, Any]]) -> "pa.Table":
    """Rows -> table with :func:`manifest_schema`, sorted by ``clip_id`` (deterministic)."""
    import pyarrow as pa

    schema = manifest_schema()
    rows = sorted(rows, key=lambda r: r["clip_id"])
    ids = [r["clip_id"] for r in rows]
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"manifest: duplicate clip_id(s) {dup[:5]}")
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def stale_temps(out: str | os.PathLike) -> list[Path]:
    """Temporary files an interrupted run left in ``out`` (recursively)."""
    found = []
    for dirpath, _, filenames in os.walk(out):
        found.extend(Path(dirpath) / n for n in filenames if is_temp_name(n))
    return sorted(found)


def remove_stale_temps(out: str | os.PathLike) -> int:
    """Delete :func:`stale_temps`; returns how many. Call only when no run writes to ``out``."""
    paths = stale_temps(out)
    for p in paths:
        p.unlink(missing_ok=True)
    return len(paths)


# ------------------------------------------------------------------------------- done-records


def file_fingerprint(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """Size and mtime (ns) of a file, or ``None`` when there is no such file."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class DoneRecord:
    """What one finished clip looked like; see the module docstring."""

    clip_id: str
    inputs: dict[str, Any]
    versions: dict[str, str]
    config: str
    outputs: dict[str, int]  # path relative to OUT -> size in bytes
    row: dict[str, Any]
    #: sha256 of every output (path relative to OUT -> hex digest); also what the face-model
    #: fit keys on for the frames tables
    hashes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, indent=1, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def done_path(out: str | os.PathLike, clip_id: str, part: str = "clip") -> Path:
    suffix = "" if part == "clip" else f".{part}"
    return Path(out) / STATE_DIR / DONE_DIR / f"{clip_id}{suffix}.json"


def write_done(out: str | os.PathLike, record: DoneRecord, part: str = "clip") -> Path:
    return write_text(done_path(out, record.clip_id, part), record.to_json())


def read_done(out: str | os.PathLike, clip_id: str, part: str = "clip") -> DoneRecord | None:
    """The clip's done-record as written (unchecked), or ``None``."""
    try:
        return DoneRecord(**json.loads(done_path(out, clip_id, part).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of the file as it is on disk now (never a cached value: see
    :func:`verify_outputs`)."""
    return file_sha256(path, fresh=True)


def verify_outputs(out: str | os.PathLike, record: DoneRecord) -> list[tuple[str, str]]:
    """``(path relative to out, problem)`` for every output of ``record`` that is missing,
    has another size, has no recorded sha256 (a record written by an older lesbench: its
    content cannot be verified) or whose content differs; empty when all are intact."""
    problems: list[tuple[str, str]] = []
    for rel, size in sorted(record.outputs.items()):
        path = Path(out) / rel
        try:
            actual = os.stat(path).st_size
        except OSError as exc:
            problems.append((rel, f"missing, the done-record lists it ({exc.strerror or exc})"))
            continue
        if actual != size:
            problems.append((rel, f"{actual} bytes, the done-record says {size}"))
        elif rel not in record.hashes:
            problems.append((rel, "no sha256 in the done-record (written by an older lesbench); "
                                  "its content cannot be verified"))
        else:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                problems.append((rel, f"unreadable ({exc.strerror or exc})"))
                continue
            if digest != record.hashes[rel]:
                problems.append((rel, "content differs from the done-record (sha256 mismatch, same size): "
                                      "damaged"))
    return problems


@dataclass
class DoneCheck:
    """Whether a clip (part) is done. ``record``: its done-record when it applies and its
    outputs are intact, else None. ``damage``: ``"path: problem"`` for each output that no
    longer matches a record that otherwise applies (damaged, resized, missing); empty when the
    record is absent or stale (other inputs, versions or config), which is not damage."""

    record: DoneRecord | None = None
    damage: list[str] = field(default_factory=list)


def check_done(
    out: str | os.PathLike,
    clip_id: str,
    inputs: Mapping[str, Any],
    versions: Mapping[str, str],
    config: str,
    part: str = "clip",
) -> DoneCheck:
    """Check the clip's done-record against the current inputs, versions and config, then its
    outputs by size and content (see :class:`DoneCheck`)."""
    record = read_done(out, clip_id, part)
    if record is None:
        path = done_path(out, clip_id, part)
        if path.exists():  # there, but not JSON of a record: damaged too
            return DoneCheck(damage=[f"{path.relative_to(out).as_posix()}: unreadable done-record"])
        return DoneCheck()
    if record.clip_id != clip_id or record.inputs != dict(inputs) or record.versions != dict(versions):
        return DoneCheck()
    if record.config != config:
        return DoneCheck()
    damage = [f"{rel}: {problem}" for rel, problem in verify_outputs(out, record)]
    return DoneCheck(None if damage else record, damage)


def read_valid_done(
    out: str | os.PathLike,
    clip_id: str,
    inputs: Mapping[str, Any],
    versions: Mapping[str, str],
    config: str,
    part: str = "clip",
) -> DoneRecord | None:
    """The clip's done-record if it matches and its outputs are intact, else ``None``."""
    return check_done(out, clip_id, inputs, versions, config, part).record


def output_hashes(out: str | os.PathLike, paths: Iterable[Path]) -> dict[str, str]:
    """``{path relative to out: sha256}`` for the given written files."""
    out = Path(out)
    return {p.relative_to(out).as_posix(): sha256_file(p) for p in paths}


def output_sizes(out: str | os.PathLike, paths: Iterable[Path]) -> dict[str, int]:
    """``{path relative to out: size}`` for the given written files."""
    out = Path(out)
    return {p.relative_to(out).as_posix(): p.stat().st_size for p in paths}
