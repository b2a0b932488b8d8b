"""lesbench's linear face model on MediaPipe's 478-vertex topology (docs/design.md).

No redistributable 3DMM with expressions is installable here, so lesbench fits its own from the
landmark tracks of the training split:

1. **Rigid alignment.** Every frame's ``(478, 3)`` landmarks (pixels; x right, y down, z away
   from the camera, as in the frames table) are aligned to a reference by a least-squares
   similarity transform (Umeyama) computed on :data:`STABLE_LANDMARKS` only: forehead, nose
   bridge and tip, eye corners and the upper face contour, which expressions and speech barely
   move. The inverse transform is the frame's pose.
2. **Reference / model space.** The reference is the generalised-Procrustes mean of a sample of
   frames, put in a canonical frame: origin at the centroid of the stable landmarks, x along
   the outer eye corners (33 -> 263), y from forehead (10) towards chin (152) (orthogonalised),
   z = x cross y (away from the camera for a frontal face), unit = the outer-eye-corner distance.
3. **Expression.** Mean shape = mean of the per-group (speaker, or clip) mean aligned shapes.
   The expression basis = PCA of every frame's deviation from its group's mean shape: all that
   varies within one person. It is accumulated as a 1434 x 1434 scatter matrix, so memory
   does not grow with the data, and the top components are found by Lanczos iteration.
4. **Identity.** PCA of the group means around the mean shape after removing the expression
   subspace: identity is the shape difference between people that expressions cannot explain
   (at most #groups - 1 components). The two bases are orthogonal, so projection is unique
   and a clip's identity coefficients do not move with its expressions.

Projection of a clip: ``id`` = identity coefficients of the clip's mean aligned shape (one
vector per clip), ``exp`` = per-frame expression coefficients, ``pose`` = per-frame
``(yaw, pitch, roll, tx, ty, tz, scale)``: angles in degrees in the same convention as the
frames table (:mod:`lesbench.extract.head_pose`: yaw > 0 face turned towards the image's right,
pitch > 0 looking up, roll > 0 counter-clockwise in the image; zero = the canonical frontal
frame above), ``tx, ty, tz`` pixels = where the model origin lands in the frame, ``scale`` =
pixels per model unit (so the outer-eye-corner distance of the mean face in pixels).

**Determinism.** PCA components are defined up to sign; :meth:`FaceModel.fit` fixes each one's
sign itself (:func:`lesbench.extract.pca.fix_signs`), so the same data always give the same bases and coefficients.
With fewer than two identity groups there are no identity components (``k_id == 0``): the
``id`` column of the coeffs table is then an (empty) variable-size list, because a zero-width
fixed-size list cannot round-trip through Parquet.

The model and its provenance (clips, groups, lesbench and stage versions, explained variance;
no wall-clock time, no absolute path) are saved in one ``face_model.npz``
(``allow_pickle=False``) with fixed zip timestamps, so identical fits give byte-identical files
and a model fitted on one data set can project another. ``lesbench prepare`` records when and
where it fitted the model in ``dataset.json``.

**Speed.** The fit is dominated by the 1434 x 1434 scatter products; on a busy machine a
multi-threaded BLAS was measured 4-7x slower than one thread, so ``prepare`` runs the fit on a
Dask worker, where the nanny limits BLAS to one thread. Direct callers on a shared machine can
do the same by setting ``OPENBLAS_NUM_THREADS=1`` (or ``OMP_NUM_THREADS=1``) before NumPy loads.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from lesbench import __version__
from lesbench.atomic import replacing
from lesbench.errors import DatasetError, LesbenchError
from lesbench.schema import N_LANDMARKS
from lesbench.extract.pca import fix_signs, top_eigen
from lesbench.extract.rigid_alignment import align_shapes, as_shapes, transform_from_pose, umeyama

#: Stage version: bump when fitting or projection can change the coefficients.
VERSION = "2"
#: Layout version of face_model.npz.
FILE_FORMAT = "lesbench-face-model/1"

#: Landmarks that expressions and speech barely move (MediaPipe face mesh indices): forehead
#: midline, nose bridge to tip, inner/outer eye corners, upper face contour and temples.
STABLE_LANDMARKS: tuple[int, ...] = (
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1,  # forehead midline, nose bridge, nose tip
    33, 133, 362, 263,  # eye corners
    21, 251, 54, 284, 103, 332, 67, 297, 109, 338,  # upper face contour / forehead sides
    127, 356, 162, 389,  # temples
)
EYE_OUTER = (33, 263)
FOREHEAD, CHIN = 10, 152

class Coefficients(NamedTuple):
    """Projection of one clip: ``id`` (K_id,), ``exp`` (T, K_exp), ``pose`` (T, 7) in
    ``schema.POSE_NAMES`` order; NaN rows for frames without landmarks."""

    id: np.ndarray
    exp: np.ndarray
    pose: np.ndarray


def _canonical_frame(shape: np.ndarray) -> np.ndarray:
    """Move a (478, 3) shape to the canonical model frame (see the module docstring)."""
    stable = list(STABLE_LANDMARKS)
    x = shape - shape[stable].mean(axis=0)
    ex = x[EYE_OUTER[1]] - x[EYE_OUTER[0]]
    eye_distance = np.linalg.norm(ex)
    ex = ex / eye_distance
    down = x[CHIN] - x[FOREHEAD]
    ey = down - (down @ ex) * ex
    ey /= np.linalg.norm(ey)
    ez = np.cross(ex, ey)
    rot = np.stack([ex, ey, ez])
    return (x @ rot.T) / eye_distance


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass
class FaceModel:
    """Linear face model: ``shape = mean + id @ id_basis + exp @ exp_basis`` in model space.

    Attributes:
        mean: ``(478, 3)`` float64 mean shape, model units.
        id_basis: ``(K_id, 1434)`` orthonormal rows.
        exp_basis: ``(K_exp, 1434)`` orthonormal rows, orthogonal to ``id_basis``.
        (Both bases may have fewer rows than asked for when the data has lower rank.)
        id_std, exp_std: ``(K,)`` standard deviation of each coefficient on the fitting data.
        reference: ``(P, 3)`` the stable landmarks' reference positions used for alignment.
        provenance: JSON-able dict (clips, groups, lesbench version, explained variance...; no
            wall-clock time, so identical fits save identical bytes).
    """

    mean: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    id_std: np.ndarray
    exp_std: np.ndarray
    reference: np.ndarray
    stable_landmarks: tuple[int, ...] = STABLE_LANDMARKS
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def k_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def k_exp(self) -> int:
        return int(self.exp_basis.shape[0])

    # -- alignment -------------------------------------------------------------------------
    def align(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rigidly align frames to model space.

        Args:
            landmarks: ``(T, 478, 3)`` or ``(T, 1434)`` pixels; NaN rows allowed.

        Returns:
            (aligned ``(T, 478, 3)`` model units, pose ``(T, 7)``, valid ``(T,)`` bool); NaN
            where not valid.
        """
        return align_shapes(as_shapes(landmarks), self.reference, self.stable_landmarks)

    # -- projection ------------------------------------------------------------------------
    def project(self, landmarks: np.ndarray) -> Coefficients:
        """Coefficients of one clip (see :class:`Coefficients`).

        ``id`` comes from the mean aligned shape of the clip's valid frames (NaN when none),
        ``exp`` per frame, ``pose`` per frame.
        """
        aligned, pose, valid = self.align(landmarks)
        t = len(aligned)
        exp = np.full((t, self.k_exp), np.nan)
        ident = np.full(self.k_id, np.nan)
        if valid.any():
            dev = aligned[valid].reshape(int(valid.sum()), -1) - self.mean.reshape(-1)
            ident = self.id_basis @ dev.mean(axis=0)
            exp[valid] = dev @ self.exp_basis.T
        return Coefficients(ident.astype(np.float32), exp.astype(np.float32), pose.astype(np.float32))

    def reconstruct(self, id: np.ndarray, exp: np.ndarray, pose: np.ndarray | None = None) -> np.ndarray:  # noqa: A002
        """Shapes from coefficients.

        Args:
            id: ``(K_id,)`` (shared by all frames) or ``(T, K_id)``.
            exp: ``(T, K_exp)`` (or ``(K_exp,)`` for one frame).
            pose: optional ``(T, 7)``: return pixels in the frame; ``None``: model space.

        Returns:
            ``(T, 478, 3)`` float64.
        """
        exp = np.atleast_2d(np.asarray(exp, dtype=np.float64))
        ident = np.asarray(id, dtype=np.float64)
        ident = np.broadcast_to(ident, (len(exp), self.k_id)) if ident.ndim == 1 else ident
        flat = self.mean.reshape(-1) + ident @ self.id_basis + exp @ self.exp_basis
        shapes = flat.reshape(len(exp), N_LANDMARKS, 3)
        if pose is None:
            return shapes
        s, r, t = transform_from_pose(pose)
        return s[:, None, None] * np.einsum("nij,npj->npi", r, shapes) + t[:, None, :]

    # -- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        tracks: Sequence[np.ndarray],
        groups: Sequence[str] | None = None,
        k_id: int = 16,
        k_exp: int = 32,
        frame_step: int = 1,
        reference_frames: int = 4000,
        gpa_iterations: int = 3,
        provenance: dict[str, Any] | None = None,
    ) -> "FaceModel":
        """Fit on landmark tracks of the training split.

        Args:
            tracks: one ``(T, 478, 3)`` or ``(T, 1434)`` pixel array per clip (NaN rows for
                frames without a face). Read twice; a lazy ``Sequence`` (``__len__`` and
                ``__getitem__`` loading from disk) keeps memory flat.
            groups: identity group of each track (the speaker; ``prepare`` always passes
                speakers); default: each clip its own.
            k_id: identity components wanted (capped at #groups - 1, so 0 with one group).
            k_exp: expression components wanted.
            frame_step: use every n-th frame (fitting cost grows with frames).
            reference_frames: frames sampled evenly for the Procrustes reference.
            gpa_iterations: generalised-Procrustes iterations for the reference.
            provenance: extra fields stored with the model (data set, clip ids...).
        """
        n_tracks = len(tracks)
        if n_tracks == 0:
            raise DatasetError("FaceModel.fit: no landmark tracks to fit on")
        groups = [str(g) for g in groups] if groups is not None else [str(i) for i in range(n_tracks)]
        if len(groups) != n_tracks:
            raise ValueError(f"FaceModel.fit: {n_tracks} tracks but {len(groups)} groups")
        stable = list(STABLE_LANDMARKS)

        # Pass 0: reference from an even sample of frames (generalised Procrustes).
        counts = [len(as_shapes(tracks[i])) for i in range(n_tracks)]
        total = sum(counts)
        step0 = max(1, total // max(1, reference_frames))
        sample = []
        seen = 0
        for i in range(n_tracks):
            shapes = as_shapes(tracks[i])
            idx = np.arange((-seen) % step0, len(shapes), step0)
            seen += len(shapes)
            picked = shapes[idx]
            sample.append(picked[np.isfinite(picked).all(axis=(1, 2))])
        sample_arr = np.concatenate(sample) if sample else np.zeros((0, N_LANDMARKS, 3))
        if len(sample_arr) == 0:
            raise DatasetError("FaceModel.fit: no frame with landmarks in the tracks")
        ref_shape = _canonical_frame(sample_arr[0])
        for _ in range(max(1, gpa_iterations)):
            s, r, t = umeyama(sample_arr[:, stable], ref_shape[stable])
            aligned = s[:, None, None] * np.einsum("nij,npj->npi", r, sample_arr) + t[:, None]
            ref_shape = _canonical_frame(aligned.mean(axis=0))
        reference = ref_shape[stable]

        # Pass 1: per-group mean aligned shape.
        dim = N_LANDMARKS * 3
        group_sum: dict[str, np.ndarray] = {}
        group_n: dict[str, int] = {}
        used_frames = 0
        for i in range(n_tracks):
            aligned, _, valid = align_shapes(as_shapes(tracks[i])[::frame_step], reference, STABLE_LANDMARKS, with_pose=False)
            if not valid.any():
                continue
            g = groups[i]
            group_sum[g] = group_sum.get(g, np.zeros(dim)) + aligned[valid].reshape(-1, dim).sum(axis=0)
            group_n[g] = group_n.get(g, 0) + int(valid.sum())
            used_frames += int(valid.sum())
        names = sorted(group_sum)
        group_means = np.stack([group_sum[g] / group_n[g] for g in names])
        mean = group_means.mean(axis=0)

        # Pass 2: expression = PCA of every frame's deviation from its group's mean shape.
        scatter = np.zeros((dim, dim))
        n_dev = 0
        group_index = {g: j for j, g in enumerate(names)}
        for i in range(n_tracks):
            g = groups[i]
            if g not in group_index:
                continue
            aligned, _, valid = align_shapes(as_shapes(tracks[i])[::frame_step], reference, STABLE_LANDMARKS, with_pose=False)
            if not valid.any():
                continue
            dev = aligned[valid].reshape(-1, dim) - group_means[group_index[g]]
            scatter += dev.T @ dev
            n_dev += len(dev)
        cov = scatter / max(1, n_dev - 1)
        total_var = float(np.trace(cov))
        k_want = int(min(k_exp, dim))
        if k_want > 0 and n_dev > 1 and total_var > 0:
            evals, evecs = top_eigen(cov, k_want)
            order = np.argsort(evals)[::-1]
            evals = np.clip(evals[order], 0.0, None)
            evecs = evecs[:, order]
        else:
            evals, evecs = np.zeros(0), np.zeros((dim, 0))
        # Numerical rank: landmarks are float32, so variance below 1e-8 of the largest is noise.
        k_exp_eff = int((evals > (evals[0] if evals.size else 0.0) * 1e-8).sum()) if evals.size else 0
        exp_basis = fix_signs(evecs[:, :k_exp_eff].T.copy())
        exp_std = np.sqrt(evals[:k_exp_eff])
        exp_explained = float(evals[:k_exp_eff].sum() / max(total_var, 1e-300))

        # Identity = what expression cannot explain: PCA of the group means with the
        # expression subspace removed (so the bases are orthogonal and a clip's identity does
        # not move with its expressions).
        centred = group_means - mean
        if k_exp_eff:
            centred = centred - (centred @ exp_basis.T) @ exp_basis
        k_id_eff = int(min(k_id, max(0, len(names) - 1)))
        id_basis, id_std, id_explained = np.zeros((0, dim)), np.zeros(0), 0.0
        if k_id_eff > 0:
            _, sv, vt = np.linalg.svd(centred, full_matrices=False)
            k_id_eff = int(min(k_id_eff, (sv > (sv[0] if sv.size else 0.0) * 1e-4).sum())) if sv.size and sv[0] > 0 else 0
            if k_id_eff:
                id_basis = fix_signs(vt[:k_id_eff].copy())
                id_var = sv**2 / max(1, len(names) - 1)
                id_std = np.sqrt(id_var[:k_id_eff])
                id_explained = float(id_var[:k_id_eff].sum() / max(id_var.sum(), 1e-300))

        prov = {
            "format": FILE_FORMAT,
            "stage_version": VERSION,
            "lesbench_version": __version__,
            "n_tracks": n_tracks,
            "n_groups": len(names),
            "n_frames": used_frames,
            "frame_step": frame_step,
            "k_id": k_id_eff,
            "k_exp": k_exp_eff,
            "id_explained_variance": id_explained,
            "exp_explained_variance": exp_explained,
            "exp_explained_variance_per_component": (evals[:k_exp_eff] / max(total_var, 1e-300)).tolist(),
        }
        prov.update(provenance or {})
        return cls(
            mean=mean.reshape(N_LANDMARKS, 3),
            id_basis=id_basis,
            exp_basis=exp_basis,
            id_std=id_std,
            exp_std=exp_std,
            reference=reference,
            provenance=prov,
        )

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``face_model.npz`` atomically (temp file + rename) and deterministically: the
        same model always gives the same bytes (fixed member order and zip timestamps, which
        ``np.savez`` takes from the clock)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "format": np.array(FILE_FORMAT),
            "mean": self.mean,
            "id_basis": self.id_basis,
            "exp_basis": self.exp_basis,
            "id_std": self.id_std,
            "exp_std": self.exp_std,
            "reference": self.reference,
            "stable_landmarks": np.asarray(self.stable_landmarks, dtype=np.int32),
            "provenance": np.array(json.dumps(self.provenance, sort_keys=True)),
        }
        with replacing(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FaceModel":
        """Read a model written by :meth:`save`; clear error on a missing or foreign file."""
        path = Path(path)
        if not path.is_file():
            raise LesbenchError(f"{path}: face model file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = str(data["format"]) if "format" in data.files else ""
                if fmt != FILE_FORMAT:
                    raise LesbenchError(f"{path}: not a lesbench face model (format {fmt or 'missing'!r}, expected {FILE_FORMAT!r})")
                model = cls(
                    mean=data["mean"],
                    id_basis=data["id_basis"],
                    exp_basis=data["exp_basis"],
                    id_std=data["id_std"],
                    exp_std=data["exp_std"],
                    reference=data["reference"],
                    stable_landmarks=tuple(int(i) for i in data["stable_landmarks"]),
                    provenance=json.loads(str(data["provenance"])),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise LesbenchError(f"{path}: unreadable face model ({exc})") from exc
        return model
