"""Reading a prepared data set (the output of ``lesbench prepare``; layout in
:mod:`lesbench.schema`). One place for the checks every reader needs: the folder exists, the
manifest and its columns are there, ``dataset.json`` is valid and of a compatible format.

``lesbench validate`` (``lesbench.pipelines.validate``) checks the whole contract; this module
only opens a data set for the parts that read it (LES, training, evaluation, classifiers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from lesbench import schema
from lesbench.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

#: Manifest columns every reader relies on.
REQUIRED_CLIP_COLUMNS = ("clip_id", "speaker", "emotion", "level", "split")


def read_dataset_info(root: str | Path) -> dict[str, Any]:
    """``dataset.json`` of a prepared data set as a dict (``{}`` when absent).

    Raises :class:`DatasetError` on invalid JSON or an incompatible ``format_version``.
    """
    path = schema.dataset_paths(root)["dataset"]
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    version = str(info.get("format_version", ""))
    if version and version.split(".")[0] != schema.DATASET_FORMAT_VERSION.split(".")[0]:
        raise DatasetError(
            f"{path}: format_version {version} is not compatible with this lesbench "
            f"(reads {schema.DATASET_FORMAT_VERSION}); re-run `lesbench prepare`"
        )
    return info


def read_clips(
    root: str | Path,
    statuses: Sequence[str] | None = (schema.STATUS_OK,),
    required: Sequence[str] = REQUIRED_CLIP_COLUMNS,
) -> "pd.DataFrame":
    """Rows of ``clips.parquet`` whose status is in ``statuses`` (all rows with ``None``),
    sorted by ``clip_id``. Raises :class:`DatasetError` naming the file when ``root`` is not a
    prepared data set or the manifest lacks a ``required`` column."""
    import pandas as pd

    root = Path(root)
    path = schema.dataset_paths(root)["clips"]
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected a prepared data set from `lesbench prepare`)")
    if not path.is_file():
        raise DatasetError(f"{path}: missing; {root} is not a prepared data set (run `lesbench prepare`)")
    table = pd.read_parquet(path)
    missing = set(required) - set(table.columns)
    if missing:
        raise DatasetError(f"{path}: missing columns {sorted(missing)}")
    if statuses is not None and "status" in table.columns:
        table = table[table["status"].astype(str).isin(list(statuses))]
    return table.sort_values("clip_id").reset_index(drop=True)
