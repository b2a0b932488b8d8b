"""Atomic writes: a reader never sees a half-written file under its final name.

Every file is written to ``.{name}.{random}.tmp`` in its destination folder and moved into place
with ``os.replace``; a hidden name with a ``.tmp`` suffix is never mistaken for an output, and
what an interrupted run leaves behind is found by :func:`is_temp_name`.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def _float_leaf_paths(schema: "pa.Schema") -> list[str]:
    """Parquet column paths of float columns (fixed-size lists included) for byte_stream_split."""
    import pyarrow as pa

    paths = []
    for f in schema:
        t = f.type
        if pa.types.is_floating(t):
            paths.append(f.name)
        elif (pa.types.is_fixed_size_list(t) or pa.types.is_list(t)) and pa.types.is_floating(t.value_type):
            paths.append(f"{f.name}.list.element")
    return paths


def tmp_path(path: Path) -> Path:
    """Temporary sibling of ``path`` (hidden, ``.tmp`` suffix: never mistaken for an output)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write, then move it into place. On any error or
    interrupt the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(table: "pa.Table", path: str | os.PathLike) -> Path:
    """Write ``table`` atomically: zstd, BYTE_STREAM_SPLIT for float columns (docs/design.md, performance).

    Float columns skip dictionary encoding (it would take precedence over byte-stream-split and
    does nothing for continuous values); strings and integers keep it. The bytes depend only on
    the table (no timestamps), so equal tables give equal files.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    floats = _float_leaf_paths(table.schema)
    dict_cols = [f.name for f in table.schema if f.name not in {p.split(".")[0] for p in floats}]
    with replacing(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_byte_stream_split=floats or False,
                       use_dictionary=dict_cols or False)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (temp file + rename)."""
    path = Path(path)
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")
