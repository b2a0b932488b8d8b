"""``lesbench info OUT``: what a prepared data set holds.

Counts by status, speaker, emotion, level and split; the face ratio; and the action-unit table
that shows whether the emotion signal is there: for every clip with a face track, the mean of
each AU over its face frames, minus the same speaker's neutral mean; averaged per emotion
(and per emotion and level). A FACS check marks, for each emotion, whether its prototype AUs
rose above neutral (happy AU12, surprise AU01/AU02, anger AU04, sadness AU15, disgust
AU09/AU10, fear AU01: the rises docs/action_units.md expects from MediaPipe's blendshapes). When the
source root holds a ``truth.parquet`` (the synthetic demo), also the Pearson r between its
ground-truth AU tracks and the extracted ones (:func:`truth_correlation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesbench import schema
from lesbench.errors import DatasetError
from lesbench.prepared import PreparedDataset

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The rises ``info`` checks (the subset of the FACS prototypes that MediaPipe's blendshapes
#: carry reliably, docs/action_units.md).
EXPECTED_RISES: dict[str, tuple[str, ...]] = {
    "happy": ("AU12",),
    "surprised": ("AU01", "AU02"),
    "angry": ("AU04",),
    "sad": ("AU15",),
    "disgusted": ("AU09", "AU10"),
    "fear": ("AU01",),
}
#: Statuses whose frames carry a usable face track.
FACE_STATUSES = ("ok", "no_audio", "silent_audio")
#: Ground-truth columns of the demo's ``truth.parquet`` that are not AUs, with the extracted AU
#: columns they should move with (mouth opening: lips apart AU25, jaw drop AU26).
TRUTH_EXTRA_PAIRS: tuple[tuple[str, str], ...] = (
    ("mouth_open", "AU25"), ("mouth_open", "AU26"), ("lip_gap", "AU25"), ("lip_gap", "AU26"),
)


@dataclass
class DatasetInfo:
    """Summary of a prepared data set (see :func:`dataset_info`)."""

    out: Path
    n_clips: int
    counts: dict[str, dict[str, int]]
    face_ratio: dict[str, float]
    n_frames: int
    au_means: "pd.DataFrame"  # (clip, AU) per-clip mean over face frames, with metadata columns
    au_delta: "pd.DataFrame"  # emotion x AU: mean of (clip mean - speaker's neutral mean)
    au_delta_by_level: "pd.DataFrame"  # (emotion, level) x AU
    facs_check: dict[str, dict[str, bool]]
    speakers_without_neutral: list[str] = field(default_factory=list)
    dataset_json: dict[str, Any] = field(default_factory=dict)
    #: :func:`truth_correlation` against the source's ``truth.parquet`` (demo data), else None
    truth_r: "pd.DataFrame | None" = None
    truth_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "n_clips": self.n_clips,
            "n_frames": self.n_frames,
            "counts": self.counts,
            "face_ratio": self.face_ratio,
            "au_delta": {e: {a: _r(v) for a, v in row.items()} for e, row in self.au_delta.to_dict("index").items()},
            "facs_check": self.facs_check,
            "speakers_without_neutral": self.speakers_without_neutral,
            **({"truth_correlation": {"truth": str(self.truth_path), "r": [
                {"truth": t, "extracted": a, "r": _r(row["r"]), "n_frames": int(row["n_frames"])}
                for (t, a), row in self.truth_r.iterrows()]}} if self.truth_r is not None else {}),
        }

    def format(self) -> str:
        lines = [f"{self.out}: {self.n_clips} clips, {self.n_frames} frames"]
        if self.dataset_json:
            d = self.dataset_json
            lines.append(f"  format {d.get('format_version')}, lesbench {d.get('lesbench_version')}, "
                         f"{d.get('fps')} fps, {d.get('sample_rate')} Hz, source {d.get('source_root')}")
        for key in ("status", "split", "speaker", "emotion", "level"):
            c = self.counts.get(key, {})
            lines.append(f"  by {key:<8} " + ", ".join(f"{k}: {v}" for k, v in c.items()))
        fr = self.face_ratio
        if fr:
            lines.append(f"  face ratio: mean {fr['mean']:.3f}, min {fr['min']:.3f} over {fr['n_clips']} decoded clips")
        if self.speakers_without_neutral:
            lines.append(f"  no neutral clip (left out of the AU table): {', '.join(self.speakers_without_neutral)}")
        if len(self.au_delta):
            lines.append("  AU means per emotion minus the same speaker's neutral (x100):")
            aus = list(self.au_delta.columns)
            lines.append("    " + f"{'emotion':<10}" + "".join(f"{a:>6}" for a in aus))
            for emo, row in self.au_delta.iterrows():
                lines.append("    " + f"{emo:<10}" + "".join(f"{100 * v:6.1f}" for v in row.to_numpy()))
            if self.facs_check:
                lines.append("  FACS check (prototype AU above neutral):")
                for emo, res in self.facs_check.items():
                    marks = ", ".join(f"{a} {'up' if ok else 'NOT up'}" for a, ok in res.items())
                    lines.append(f"    {emo:<10} {marks}")
        if self.truth_r is not None and len(self.truth_r):
            n = int(self.truth_r["n_frames"].max())
            lines.append(f"  extracted vs ground truth ({self.truth_path}; Pearson r over {n} face frames):")
            cells = [f"{a if t == a else f'{t}~{a}'} {v:.2f}" for (t, a), v in self.truth_r["r"].items()
                     if np.isfinite(v)]
            for i in range(0, len(cells), 6):
                lines.append("    " + ", ".join(cells[i:i + 6]))
        return "\n".join(lines)


def _r(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 5)


def clip_au_means(out: str | Path, clips: "pd.DataFrame | None" = None) -> "pd.DataFrame":
    """Per-clip mean of each AU over the clip's face frames, for clips with a face track.

    Returns a DataFrame with clip_id, speaker, emotion, level, split and one column per AU.
    """
    import pandas as pd

    data = PreparedDataset(out)
    if clips is None:
        clips = data.clips(statuses=None)
    rows = []
    for r in clips[clips["status"].isin(FACE_STATUSES)].itertuples(index=False):
        if not data.clip_file("frames", r.clip_id).is_file():
            continue
        t = data.read_arrow("frames", r.clip_id, ["face", *schema.AU_NAMES])
        face = t.column("face").to_numpy(zero_copy_only=False)
        if not face.any():
            continue
        vals = {a: float(np.nanmean(t.column(a).to_numpy(zero_copy_only=False)[face])) for a in schema.AU_NAMES}
        rows.append({"clip_id": r.clip_id, "speaker": r.speaker, "emotion": r.emotion,
                     "level": int(r.level), "split": r.split, **vals})
    return pd.DataFrame(rows, columns=["clip_id", "speaker", "emotion", "level", "split", *schema.AU_NAMES])


def au_delta_table(means: "pd.DataFrame", by: tuple[str, ...] = ("emotion",)) -> tuple["pd.DataFrame", list[str]]:
    """Mean over clips of (clip AU mean - the same speaker's neutral AU mean), grouped by ``by``.

    Returns (table indexed by ``by`` with one column per AU, speakers without a neutral clip).
    Neutral rows are included (their deltas average to ~0 by construction).
    """
    import pandas as pd

    if means.empty:
        return pd.DataFrame(columns=list(schema.AU_NAMES)), []
    neutral = means[means["emotion"] == "neutral"].groupby("speaker")[list(schema.AU_NAMES)].mean()
    missing = sorted(set(means["speaker"]) - set(neutral.index))
    usable = means[means["speaker"].isin(neutral.index)].copy()
    usable[list(schema.AU_NAMES)] = usable[list(schema.AU_NAMES)].to_numpy() - neutral.loc[usable["speaker"]].to_numpy()
    table = usable.groupby(list(by))[list(schema.AU_NAMES)].mean()
    order = [e for e in schema.EMOTIONS if e in table.index.get_level_values(0)]
    if by == ("emotion",):
        table = table.loc[order + [e for e in table.index if e not in order]]
    return table, missing


def facs_check(delta: "pd.DataFrame", threshold: float = 0.0) -> dict[str, dict[str, bool]]:
    """For each emotion in ``delta`` with expected rises, AU -> rose above ``threshold``."""
    return {emo: {au: bool(delta.loc[emo, au] > threshold) for au in aus}
            for emo, aus in EXPECTED_RISES.items() if emo in delta.index}


def truth_correlation(out: str | Path, truth: "str | Path | pd.DataFrame",
                      pairs: "tuple[tuple[str, str], ...] | None" = None) -> "pd.DataFrame":
    """Pearson r between ground-truth tracks (the demo's ``truth.parquet``: one row per SOURCE
    frame with ``clip_id``, ``t`` seconds and the true AU01..AU45, ``mouth_open``, ``lip_gap``...)
    and the extracted AU columns of the prepared frames tables.

    Alignment is by time: each clip's truth track is linearly interpolated at the prepared
    frames' ``t`` (25 fps vs the source's 30 fps); only face frames inside the truth's time span
    count. r is pooled over all frames of all clips present in both, so it measures both the
    between-clip (emotion, level) and the within-clip (speech, blinks) agreement.

    Args:
        out: a prepared data set.
        truth: ``truth.parquet`` path or its DataFrame.
        pairs: (truth column, extracted AU column) pairs; default: every AU in both, plus
            :data:`TRUTH_EXTRA_PAIRS`.

    Returns:
        DataFrame indexed by (truth, extracted) with ``r`` (NaN when either side is constant),
        ``n_frames``, ``n_clips``, ``truth_std`` and ``extracted_std``; rows in ``pairs`` order.
    """
    import pandas as pd

    data = PreparedDataset(out)
    table = truth if isinstance(truth, pd.DataFrame) else pd.read_parquet(truth)
    for col in ("clip_id", "t"):
        if col not in table.columns:
            raise DatasetError(f"{truth if not isinstance(truth, pd.DataFrame) else 'truth table'}: "
                               f"no {col!r} column; not a demo truth table")
    if pairs is None:
        pairs = tuple((a, a) for a in schema.AU_NAMES if a in table.columns) + tuple(
            (t, a) for t, a in TRUTH_EXTRA_PAIRS if t in table.columns)
    truth_cols = sorted({t for t, _ in pairs})
    extracted_cols = sorted({a for _, a in pairs})
    xs: dict[str, list[np.ndarray]] = {a: [] for a in extracted_cols}
    ts: dict[str, list[np.ndarray]] = {t: [] for t in truth_cols}
    n_clips = 0
    for clip_id, g in table.groupby("clip_id", sort=True):
        if not data.clip_file("frames", clip_id).is_file():
            continue
        f = data.read_table("frames", clip_id, ["t", "face", *extracted_cols])
        g = g.sort_values("t")
        tt = g["t"].to_numpy(np.float64)
        keep = f["face"].to_numpy(bool) & (f["t"] >= tt[0]) & (f["t"] <= tt[-1])
        keep &= np.isfinite(f[extracted_cols].to_numpy(np.float64)).all(axis=1)
        if not keep.any():
            continue
        n_clips += 1
        at = f["t"].to_numpy(np.float64)[keep]
        for a in extracted_cols:
            xs[a].append(f[a].to_numpy(np.float64)[keep])
        for c in truth_cols:
            ts[c].append(np.interp(at, tt, g[c].to_numpy(np.float64)))
    rows = []
    for tcol, acol in pairs:
        x = np.concatenate(ts[tcol]) if ts[tcol] else np.zeros(0)
        y = np.concatenate(xs[acol]) if xs[acol] else np.zeros(0)
        sx, sy = (float(x.std()), float(y.std())) if len(x) else (float("nan"), float("nan"))
        r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and sx > 0 and sy > 0 else float("nan")
        rows.append({"truth": tcol, "extracted": acol, "r": r, "n_frames": int(len(x)),
                     "n_clips": n_clips, "truth_std": sx, "extracted_std": sy})
    return pd.DataFrame(rows).set_index(["truth", "extracted"])


def _source_truth(meta: dict[str, Any]) -> Path | None:
    """``truth.parquet`` at the data set's source root (the synthetic demo has one)."""
    root = meta.get("source_root")
    path = Path(root) / "truth.parquet" if root else None
    return path if path is not None and path.is_file() else None


def dataset_info(out: str | Path) -> DatasetInfo:
    """Summarise a prepared data set. Raises :class:`DatasetError` when ``out`` is not one."""
    out = Path(out)
    data = PreparedDataset(out)
    clips = data.clips(statuses=None)
    try:
        meta = data.info.to_dict() if data.info is not None else {}
    except DatasetError:  # the summary is of the clips; a damaged dataset.json is validate's to report
        meta = {}

    def count(col: str) -> dict[str, int]:
        vc = clips[col].astype(str).value_counts()
        return {k: int(vc[k]) for k in sorted(vc.index)}

    counts = {c: count(c) for c in ("status", "split", "speaker", "emotion", "level")}
    decoded = clips[clips["status"] != "failed"]
    ratios = decoded["face_ratio"].dropna()
    face_ratio = ({"mean": float(ratios.mean()), "min": float(ratios.min()), "n_clips": int(len(ratios))}
                  if len(ratios) else {})
    means = clip_au_means(out, clips)
    truth_path = _source_truth(meta)
    delta, missing = au_delta_table(means)
    by_level, _ = au_delta_table(means, by=("emotion", "level"))
    return DatasetInfo(
        out=out,
        n_clips=len(clips),
        counts=counts,
        face_ratio=face_ratio,
        n_frames=int(decoded["n_frames"].fillna(0).sum()),
        au_means=means,
        au_delta=delta,
        au_delta_by_level=by_level,
        facs_check=facs_check(delta) if len(delta) else {},
        speakers_without_neutral=missing,
        dataset_json=meta,
        truth_r=truth_correlation(out, truth_path) if truth_path is not None else None,
        truth_path=truth_path,
    )
