"""Training data for LES-Talker, read from a prepared data set (its only input).

Per clip: log-mel (T, 80), expression coefficients (T, K_exp), identity coefficients (K_id,),
head pose (T, 3: yaw, pitch, roll in degrees), AUs (T, 17) and a validity mask (face found and
every feature finite). :func:`fit_statistics` computes everything derived from the *train*
split: normalisers, the exp <-> AU linear regressors, per-speaker neutral references and each
clip's LES vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench import schema
from lesbench.errors import DatasetError
from lesbench.les.prepared import ClipRecord, PreparedIndex
from lesbench.les.space import NEUTRAL, LinearEmotionSpace
from lesbench.extract.face_model import FaceModel

#: MediaPipe face-mesh lip contours (outer then inner), the vertices of the lip loss.
MOUTH_LANDMARKS: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
)
POSE_COLUMNS = ("yaw", "pitch", "roll")


@dataclass
class ClipArrays:
    """One clip's aligned per-frame arrays (T frames at 25 fps)."""

    record: ClipRecord
    mel: np.ndarray  # (T, 80) float32 log-mel
    exp: np.ndarray  # (T, K_exp) float32 (NaN-free; invalid frames zero-filled)
    ident: np.ndarray  # (K_id,) float32, mean over valid frames
    pose: np.ndarray  # (T, 3) float32 degrees (yaw, pitch, roll)
    aus: np.ndarray  # (T, 17) float32
    valid: np.ndarray  # (T,) bool

    @property
    def n_frames(self) -> int:
        return len(self.mel)


@dataclass
class FaceBases:
    """The linear face model's bases as arrays: ``shape = mean + id @ id_basis + exp @ exp_basis``.

    ``mean`` (478, 3); ``id_basis`` (K_id, 478, 3); ``exp_basis`` (K_exp, 478, 3), in the face
    model's own (normalised) units.
    """

    mean: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    source: str = ""

    def mouth_exp_basis(self) -> np.ndarray:
        """(K_exp, n_mouth * 3) rows of the expression basis at the lip vertices."""
        return self.exp_basis[:, list(MOUTH_LANDMARKS), :].reshape(self.exp_basis.shape[0], -1)


def load_face_bases(path: str | Path) -> FaceBases:
    """The bases of a ``face_model.npz`` (:class:`lesbench.extract.face_model.FaceModel`)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: face model missing (a prepared data set has face_model.npz)")
    fm = FaceModel.load(path)
    n = schema.N_LANDMARKS
    return FaceBases(
        mean=np.asarray(fm.mean, np.float32).reshape(n, 3),
        id_basis=np.asarray(fm.id_basis, np.float32).reshape(-1, n, 3),
        exp_basis=np.asarray(fm.exp_basis, np.float32).reshape(-1, n, 3),
        source=str(path),
    )


def _list_column(values, width: int | None = None) -> np.ndarray:
    arr = np.stack([np.asarray(v, np.float32) for v in values]) if len(values) else np.zeros((0, width or 0), np.float32)
    return arr


def advance(values: np.ndarray, valid: np.ndarray, lead: float) -> tuple[np.ndarray, np.ndarray]:
    """Move a per-frame track ``lead`` frames earlier: ``out[t] = values(t + lead)``.

    ``values`` (T, ...) float, ``valid`` (T,) bool; fractional leads interpolate linearly between
    frames ``t + floor(lead)`` and the next. A frame is valid when both frames it reads are
    valid and inside the clip (the last ``ceil(lead)`` frames become invalid). ``lead`` < 0
    delays the track. Returns ``(values (T, ...), valid (T,))``; invalid rows are zero.
    """
    values = np.asarray(values)
    valid = np.asarray(valid, bool)
    t = len(values)
    if lead == 0 or t == 0:
        return values, valid
    base = int(np.floor(lead))
    frac = float(lead - base)
    idx = np.arange(t) + base
    ok = (idx >= 0) & (idx < t)
    i0 = np.clip(idx, 0, t - 1)
    out_ok = ok & valid[i0]
    out = values[i0].astype(np.float64)
    if frac > 0:
        ok1 = (idx + 1 >= 0) & (idx + 1 < t)
        i1 = np.clip(idx + 1, 0, t - 1)
        out_ok &= ok1 & valid[i1]
        out = (1.0 - frac) * out + frac * values[i1]
    shape = (-1,) + (1,) * (values.ndim - 1)
    out = np.where(out_ok.reshape(shape), out, 0).astype(values.dtype)
    return out, out_ok


def load_clip(index: PreparedIndex, clip: ClipRecord, target_lead: float = 0.0) -> ClipArrays:
    """Read and align one clip's audio, coefficient and frame tables (by ``frame``).

    ``target_lead``: frames by which the tracked tables (coefficients, pose, AUs) are moved
    earlier relative to the audio (:func:`advance`), compensating the face tracker's temporal
    lag (``data.target_lead`` in the training config).
    """
    data, cid = index.data, clip.clip_id
    audio = data.read_table("audio", cid, ["frame", "mel"])
    coeffs = data.read_table("coeffs", cid, ["frame", "id", "exp", *POSE_COLUMNS])
    frames = data.read_table("frames", cid, ["frame", "face", *schema.AU_NAMES])
    merged = audio.merge(coeffs, on="frame", how="inner").merge(frames, on="frame", how="inner").sort_values("frame")
    if len(merged) == 0:
        raise DatasetError(f"{clip.clip_id}: audio, coeffs and frames tables share no frame")
    mel = _list_column(list(merged["mel"]))
    face = merged["face"].to_numpy(bool)
    exp_list = [np.asarray(v, np.float32) if v is not None else None for v in merged["exp"]]
    widths = {len(v) for v in exp_list if v is not None}
    if len(widths) != 1:
        raise DatasetError(f"{data.clip_file('coeffs', cid)}: exp column has no or inconsistent widths {sorted(widths)}")
    k_exp = widths.pop()
    exp = np.stack([v if v is not None and len(v) == k_exp else np.full(k_exp, np.nan, np.float32) for v in exp_list])
    id_list = [np.asarray(v, np.float32) for v in merged["id"] if v is not None and len(v)]
    pose = merged[list(POSE_COLUMNS)].to_numpy(np.float32)
    aus = merged[list(schema.AU_NAMES)].to_numpy(np.float32)
    valid = (
        face & np.isfinite(exp).all(1) & np.isfinite(mel).all(1) & np.isfinite(aus).all(1) & np.isfinite(pose).all(1)
    )
    if not valid.any():
        raise DatasetError(f"{clip.clip_id}: no frame with a face and finite features")
    if id_list:
        ident = np.stack(id_list)[valid[: len(id_list)] if len(id_list) == len(valid) else slice(None)]
        ident = np.nanmean(ident, axis=0).astype(np.float32)
    else:  # a face model fitted on one speaker has no identity components (k_id == 0)
        ident = np.zeros(0, np.float32)
    mel = np.where(np.isfinite(mel), mel, 0).astype(np.float32)
    if target_lead:
        exp = np.where(valid[:, None], exp, 0)
        pose = np.where(valid[:, None], pose, 0)
        aus = np.where(valid[:, None], aus, 0)
        exp, v_new = advance(exp, valid, target_lead)
        pose, _ = advance(pose, valid, target_lead)
        aus, _ = advance(aus, valid, target_lead)
        valid = v_new
        if not valid.any():
            raise DatasetError(f"{clip.clip_id}: no valid frame left after moving targets by {target_lead} frames")
    return ClipArrays(
        record=clip,
        mel=mel,
        exp=np.where(valid[:, None], exp, 0).astype(np.float32),
        ident=ident,
        pose=np.where(valid[:, None], pose, 0).astype(np.float32),
        aus=np.where(valid[:, None], aus, 0).astype(np.float32),
        valid=valid,
    )


def load_clips(index: PreparedIndex, clips: list[ClipRecord] | None = None,
               target_lead: float = 0.0) -> list[ClipArrays]:
    """Load clips (see :func:`load_clip`); an unreadable clip is recorded in ``index.skipped``
    and left out."""
    out = []
    for c in clips if clips is not None else index.clips:
        try:
            out.append(load_clip(index, c, target_lead))
        except DatasetError as exc:
            index.skipped[c.clip_id] = str(exc)
    return out


@dataclass
class TrainStatistics:
    """Everything fitted on the train split that the model and losses need.

    ``mel_mean/std`` (80,), ``exp_mean/std`` (K,), ``pose_std`` (3,); ``au_from_exp`` (K, 17)
    and ``exp_from_au`` (17, K) ridge regressors between per-speaker-neutral-relative deltas;
    ``neutral_exp``/``neutral_au``: speaker -> (K,) / (17,) means over that speaker's neutral
    clips (train *and* held-out speakers, each from its own neutral clips); ``les_vectors``:
    clip_id -> (17,) LES vector of the clip (measured or label, per the config);
    ``emotion_levels``: clip_id -> {emotion: level} used by the one-hot variant.
    """

    mel_mean: np.ndarray
    mel_std: np.ndarray
    exp_mean: np.ndarray
    exp_std: np.ndarray
    pose_std: np.ndarray
    id_mean: np.ndarray
    id_std: np.ndarray
    au_from_exp: np.ndarray
    exp_from_au: np.ndarray
    neutral_exp: dict[str, np.ndarray] = field(default_factory=dict)
    neutral_au: dict[str, np.ndarray] = field(default_factory=dict)
    les_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    emotion_levels: dict[str, dict[str, float]] = field(default_factory=dict)
    au_fit_r2: float = float("nan")


def _ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_W |x W - y|^2 + lam |W|^2 with lam = ridge * trace(x'x)/d."""
    xtx = x.T @ x
    lam = ridge * np.trace(xtx) / max(x.shape[1], 1)
    return np.linalg.solve(xtx + lam * np.eye(x.shape[1]), x.T @ y)


def fit_statistics(
    clips: list[ClipArrays], space: LinearEmotionSpace, *, train_split: str = "train",
    condition_source: str = "measured", ridge: float = 1e-3, pinv_rcond: float = 0.01,
) -> TrainStatistics:
    """Fit normalisers, regressors and LES vectors (train split only, see the class doc).

    ``pinv_rcond``: singular values of the exp -> AU map below this fraction of the largest are
    dropped from the inverse used for counterfactual targets (AU directions the expression
    coefficients barely reach are not amplified; ``augment.pinv_rcond``)."""
    train = [c for c in clips if c.record.split == train_split]
    if not train:
        raise DatasetError(f"no loadable clip in split {train_split!r}")
    mel = np.concatenate([c.mel[c.valid] for c in train])
    exp = np.concatenate([c.exp[c.valid] for c in train])
    ids = np.stack([c.ident for c in train])
    pose_motion = np.concatenate([(c.pose - c.pose[c.valid].mean(0))[c.valid] for c in train])

    neutral_exp: dict[str, list] = {}
    neutral_au: dict[str, list] = {}
    for c in clips:
        if c.record.emotion == NEUTRAL:
            neutral_exp.setdefault(c.record.speaker, []).append(c.exp[c.valid])
            neutral_au.setdefault(c.record.speaker, []).append(c.aus[c.valid])
    n_exp = {s: np.concatenate(v).mean(0) for s, v in neutral_exp.items()}
    n_au = {s: np.concatenate(v).mean(0) for s, v in neutral_au.items()}
    # the LES's own references for train speakers (same numbers, frames-with-face means of clip means)
    for s, ref in space.neutral_refs.items():
        n_au[s] = np.asarray(ref, np.float32)

    dx, dy = [], []
    for c in train:
        s = c.record.speaker
        if s in n_exp and s in n_au:
            dx.append(c.exp[c.valid] - n_exp[s])
            dy.append(c.aus[c.valid] - n_au[s])
    if not dx:
        raise DatasetError("no train speaker has neutral clips: cannot fit the exp <-> AU regressors")
    dx, dy = np.concatenate(dx).astype(np.float64), np.concatenate(dy).astype(np.float64)
    a = _ridge(dx, dy, ridge)  # (K, 17)
    b = _ridge(dy, dx, ridge)  # (17, K)
    # Make the AU -> exp map read back pure through exp -> AU (b @ a = I): the ridge map follows
    # the data's natural co-variation but leaks (e.g. a brow AU also moving the smile through
    # correlated speakers/emotions); the min-norm correction removes exactly that leak, so
    # counterfactual targets for single-unit edits change only the requested AUs.
    b = b + (np.eye(b.shape[0]) - b @ a) @ np.linalg.pinv(a, rcond=pinv_rcond)
    resid = dy - dx @ a
    r2 = 1.0 - float((resid**2).sum() / max(((dy - dy.mean(0)) ** 2).sum(), 1e-12))

    les_vectors, emotion_levels = {}, {}
    for c in clips:
        r = c.record
        ref = n_au.get(r.speaker, space.global_neutral)
        if r.emotion == NEUTRAL or r.emotion not in space.directions:
            weights = {}
        elif condition_source == "measured":
            weights = space.to_les(c.aus[c.valid], ref)
        else:
            weights = {r.emotion: space.directions[r.emotion].level_fraction(r.level)}
        les_vectors[r.clip_id] = space.vector(weights).astype(np.float32)
        label_level = space.directions[r.emotion].level_fraction(r.level) if r.emotion in space.directions else 0.0
        emotion_levels[r.clip_id] = {r.emotion: float(label_level)} if r.emotion in space.directions else {}
    return TrainStatistics(
        mel_mean=mel.mean(0).astype(np.float32),
        mel_std=(mel.std(0) + 1e-3).astype(np.float32),
        exp_mean=exp.mean(0).astype(np.float32),
        exp_std=(exp.std(0) + 1e-6).astype(np.float32),
        pose_std=(pose_motion.std(0) + 1e-3).astype(np.float32),
        id_mean=ids.mean(0).astype(np.float32),
        id_std=(ids.std(0) + 1e-3).astype(np.float32),
        au_from_exp=a.astype(np.float32),
        exp_from_au=b.astype(np.float32),
        neutral_exp={s: v.astype(np.float32) for s, v in n_exp.items()},
        neutral_au={s: np.asarray(v, np.float32) for s, v in n_au.items()},
        les_vectors=les_vectors,
        emotion_levels=emotion_levels,
        au_fit_r2=r2,
    )
