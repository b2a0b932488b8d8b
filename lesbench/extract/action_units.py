"""Facial action units (FACS) from MediaPipe blendshapes (docs/action_units.md).

The default extractor maps MediaPipe FaceLandmarker's 52 ARKit-style blendshapes to 17 named
AU intensities in ``schema.AU_NAMES`` order (left and right averaged), and, for the 13 AUs whose
blendshapes come in left/right pairs, to one intensity per side (:data:`SIDED_AU_NAMES`,
``AU12_L``, ``AU12_R``, ...). Most AUs are the (bilateral mean of the)
blendshape that describes the same muscle action; AU06 and AU09, whose blendshapes MediaPipe's
model leaves at ~0, use documented proxies. The mapping, the reasons and the check on real MEAD
clips are written up in ``docs/action_units.md``. Values are in [0, 1] like the blendshape scores they come from,
so they are intensities on MediaPipe's scale, not FACS A-E codes.

An optional py-feat backend (:class:`PyFeatAUExtractor`) produces the same columns from images
where py-feat and its detector weights are installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from lesbench.errors import LesbenchError, WeightsNotFoundError
from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES
from lesbench.schema import FACS_PROTOTYPES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Stage version: bump when the mapping (and so the AU columns) can change.
#: 2: adds the per-side columns (:data:`SIDED_AU_NAMES`); the 17 averaged columns are unchanged.
VERSION = "2"

#: AUs whose blendshapes MediaPipe gives per side, so each side has its own intensity
#: (docs/action_units.md says AU by AU why the other four, AU01, AU17, AU25, AU26, have none).
BILATERAL_AUS: tuple[str, ...] = tuple(
    au for au in AU_NAMES if au not in ("AU01", "AU17", "AU25", "AU26")
)
#: The per-side columns, ``AU02_L, AU02_R, ...`` in ``AU_NAMES`` order. ``_L`` is computed from
#: MediaPipe's ``...Left`` blendshapes and ``_R`` from ``...Right`` (which side of the image
#: that is: docs/action_units.md).
SIDED_AU_NAMES: tuple[str, ...] = tuple(f"{au}_{side}" for au in BILATERAL_AUS for side in ("L", "R"))
#: The bilateral AU set: each AU once, split by side where MediaPipe gives both sides
#: (``AU01, AU02_L, AU02_R, ...``; 4 + 2 x 13 = 30 names), ``AU_NAMES`` order.
BILATERAL_SET_NAMES: tuple[str, ...] = tuple(
    name for au in AU_NAMES for name in ((f"{au}_L", f"{au}_R") if au in BILATERAL_AUS else (au,))
)

#: Human-readable formula of each AU (``mean`` = mean over the left/right pair). Kept next to
#: :func:`au_from_blendshapes`, which implements exactly these; ``docs/action_units.md`` explains them.
AU_FORMULAS: dict[str, str] = {
    "AU01": "browInnerUp",
    "AU02": "mean(browOuterUpLeft, browOuterUpRight)",
    "AU04": "mean(browDownLeft, browDownRight)",
    "AU05": "mean(eyeWideLeft, eyeWideRight)",
    "AU06": "max(mean(cheekSquint), sqrt(mean(eyeSquint) * mean(mouthSmile)))",
    "AU07": "mean(eyeSquintLeft, eyeSquintRight)",
    "AU09": "max(mean(noseSneer), sqrt(mean(mouthUpperUp) * mean(eyeSquint)) * (1 - mean(mouthSmile)))",
    "AU10": "mean(mouthUpperUpLeft, mouthUpperUpRight)",
    "AU12": "mean(mouthSmileLeft, mouthSmileRight)",
    "AU14": "mean(mouthDimpleLeft, mouthDimpleRight)",
    "AU15": "mean(mouthFrownLeft, mouthFrownRight)",
    "AU17": "mouthShrugLower",
    "AU20": "mean(mouthStretchLeft, mouthStretchRight)",
    "AU23": "mean(mouthPressLeft, mouthPressRight)",
    "AU25": "max(jawOpen - mouthClose, mean(mouthLowerDownLeft, mouthLowerDownRight))",
    "AU26": "jawOpen",
    "AU45": "mean(eyeBlinkLeft, eyeBlinkRight)",
}


#: Formula of each per-side AU: the averaged formula with every pair replaced by that side's
#: blendshape (``S`` = ``Left`` for ``_L``, ``Right`` for ``_R``).
SIDED_AU_FORMULAS: dict[str, str] = {
    "AU02": "browOuterUpS",
    "AU04": "browDownS",
    "AU05": "eyeWideS",
    "AU06": "max(cheekSquintS, sqrt(eyeSquintS * mouthSmileS))",
    "AU07": "eyeSquintS",
    "AU09": "max(noseSneerS, sqrt(mouthUpperUpS * eyeSquintS) * (1 - mouthSmileS))",
    "AU10": "mouthUpperUpS",
    "AU12": "mouthSmileS",
    "AU14": "mouthDimpleS",
    "AU15": "mouthFrownS",
    "AU20": "mouthStretchS",
    "AU23": "mouthPressS",
    "AU45": "eyeBlinkS",
}


def _blendshape_columns(bs: np.ndarray, caller: str) -> dict[str, np.ndarray]:
    """Name -> ``(...)`` scores, clipped to [0, 1], from ``(..., 52)`` blendshape scores."""
    arr = np.asarray(bs, dtype=np.float32)
    if arr.shape[-1] != len(BLENDSHAPE_NAMES):
        raise ValueError(
            f"{caller}: expected {len(BLENDSHAPE_NAMES)} blendshapes in the last axis, "
            f"got shape {arr.shape}"
        )
    # Inputs are scores in [0, 1]; clipping first keeps sqrt and products well defined.
    arr = np.clip(arr, 0.0, 1.0)
    return {name: arr[..., i] for i, name in enumerate(BLENDSHAPE_NAMES)}


def _sided_aus(pair: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
    """The paired AUs of :data:`BILATERAL_AUS` from ``pair(stem)``, which gives either the
    left/right mean of a blendshape pair or one side of it: one formula for both uses."""
    eye_squint = pair("eyeSquint")
    smile = pair("mouthSmile")
    upper_up = pair("mouthUpperUp")
    return {
        "AU02": pair("browOuterUp"),
        "AU04": pair("browDown"),
        "AU05": pair("eyeWide"),
        # MediaPipe's model leaves cheekSquint at ~0: eye narrowing while the lip corners pull
        # up is the cheek raise (AU06); see docs/action_units.md.
        "AU06": np.fmax(pair("cheekSquint"), np.sqrt(eye_squint * smile)),
        "AU07": eye_squint,
        # noseSneer is ~0 in MediaPipe's model (google-ai-edge/mediapipe#4450): the levator
        # labii alaeque nasi raises the upper lip with the eyes narrowed and no smile.
        "AU09": np.fmax(pair("noseSneer"), np.sqrt(upper_up * eye_squint) * (1.0 - smile)),
        "AU10": upper_up,
        "AU12": smile,
        "AU14": pair("mouthDimple"),
        "AU15": pair("mouthFrown"),
        "AU20": pair("mouthStretch"),
        "AU23": pair("mouthPress"),
        "AU45": pair("eyeBlink"),
    }


def au_from_blendshapes(bs: np.ndarray) -> np.ndarray:
    """Map blendshape scores to AU intensities (formulas in :data:`AU_FORMULAS`).

    Args:
        bs: ``(T, 52)`` (or ``(52,)``) float blendshape scores in ``schema.BLENDSHAPE_NAMES``
            order, in [0, 1]. NaN rows (frames without a face) give NaN AUs.

    Returns:
        ``(T, 17)`` (or ``(17,)``) float32 AU intensities in ``schema.AU_NAMES`` order, in [0, 1].
    """
    col = _blendshape_columns(bs, "au_from_blendshapes")

    def pair(stem: str) -> np.ndarray:
        return 0.5 * (col[stem + "Left"] + col[stem + "Right"])

    au = _sided_aus(pair)
    au.update({
        "AU01": col["browInnerUp"],
        "AU17": col["mouthShrugLower"],
        "AU25": np.fmax(col["jawOpen"] - col["mouthClose"], pair("mouthLowerDown")),
        "AU26": col["jawOpen"],
    })
    out = np.stack([au[name] for name in AU_NAMES], axis=-1)
    # np.clip keeps NaN (no-face frames stay NaN).
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def sided_au_from_blendshapes(bs: np.ndarray) -> np.ndarray:
    """Per-side AU intensities (formulas in :data:`SIDED_AU_FORMULAS`).

    Args:
        bs: ``(T, 52)`` (or ``(52,)``) float blendshape scores in ``schema.BLENDSHAPE_NAMES``
            order, in [0, 1]. NaN rows (frames without a face) give NaN AUs.

    Returns:
        ``(T, 26)`` (or ``(26,)``) float32 in :data:`SIDED_AU_NAMES` order, in [0, 1]:
        ``AU02_L`` from the ``...Left`` blendshapes, ``AU02_R`` from ``...Right``, ...
    """
    col = _blendshape_columns(bs, "sided_au_from_blendshapes")
    left = _sided_aus(lambda stem: col[stem + "Left"])
    right = _sided_aus(lambda stem: col[stem + "Right"])
    out = np.stack([(left if name.endswith("_L") else right)[name[:-2]] for name in SIDED_AU_NAMES], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def bilateral_set(aus: np.ndarray, sided: np.ndarray) -> np.ndarray:
    """The bilateral AU set (:data:`BILATERAL_SET_NAMES` order) from the averaged and the
    per-side AUs: ``(..., 17)`` and ``(..., 26)`` -> ``(..., 30)``, same dtype as ``aus``."""
    aus, sided = np.asarray(aus), np.asarray(sided)
    if aus.shape[-1] != len(AU_NAMES) or sided.shape[-1] != len(SIDED_AU_NAMES):
        raise ValueError(f"bilateral_set: expected (..., {len(AU_NAMES)}) and (..., {len(SIDED_AU_NAMES)}), "
                         f"got {aus.shape} and {sided.shape}")
    avg = {n: aus[..., j] for j, n in enumerate(AU_NAMES)}
    side = {n: sided[..., j] for j, n in enumerate(SIDED_AU_NAMES)}
    return np.stack([side[n] if n in side else avg[n] for n in BILATERAL_SET_NAMES], axis=-1).astype(aus.dtype)


def au_frame(bs: np.ndarray) -> "pd.DataFrame":
    """AU intensities as a DataFrame with one named float32 column per AU: the 17 averaged
    (``AU01`` ... ``AU45``), then the 26 per-side (``AU02_L`` ... ``AU45_R``)."""
    import pandas as pd

    bs = np.atleast_2d(bs)
    aus, sided = au_from_blendshapes(bs), sided_au_from_blendshapes(bs)
    return pd.DataFrame({**{name: aus[:, j] for j, name in enumerate(AU_NAMES)},
                         **{name: sided[:, j] for j, name in enumerate(SIDED_AU_NAMES)}})


def facs_rises(delta: dict[str, float], emotion: str, threshold: float = 0.0) -> dict[str, bool]:
    """For one emotion, whether each of its FACS prototype AUs rose above neutral.

    Args:
        delta: AU name -> (mean AU of the emotion clip) - (mean AU of the same speaker's neutral).
        emotion: an entry of ``schema.FACS_PROTOTYPES``.
        threshold: minimum rise counted as a rise.
    """

    return {au: bool(delta[au] > threshold) for au in FACS_PROTOTYPES[emotion]}


class PyFeatAUExtractor:
    """Optional AU backend using py-feat's detector (``pip install lesbench[pyfeat]``).

    Produces the same AU columns (``schema.AU_NAMES``, [0, 1]) from RGB frames. py-feat downloads
    its detector weights from a model hub on first use; offline, the weights must already be in
    its cache. Construction raises :class:`~lesbench.errors.LesbenchError` (py-feat missing) or
    :class:`~lesbench.errors.WeightsNotFoundError` (weights missing) with what to do.
    """

    def __init__(self, au_model: str = "xgb", device: str | None = None) -> None:
        try:
            from feat import Detector  # type: ignore[import-not-found]
        except ImportError as exc:
            raise LesbenchError(
                "the py-feat AU backend needs py-feat: pip install 'lesbench[pyfeat]' "
                f"(import failed: {exc}); the default backend (MediaPipe blendshapes) needs nothing extra"
            ) from exc
        try:
            self._detector = Detector(au_model=au_model, device=device or "cpu")
        except Exception as exc:  # py-feat raises assorted errors when its hub download fails
            raise WeightsNotFoundError(
                f"py-feat could not load its detector weights (au_model={au_model!r}): {exc}. "
                "py-feat downloads them from its model hub on first use; run it once while online "
                "or copy its weights into py-feat's cache, or use the default MediaPipe backend"
            ) from exc

    def extract(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """AU intensities per frame.

        Args:
            frames: RGB uint8 images ``(H, W, 3)``.

        Returns:
            ``(T, 17)`` float32 in ``schema.AU_NAMES`` order, in [0, 1]; NaN where py-feat
            found no face or does not output an AU.
        """
        import torch

        rows: list[np.ndarray] = []
        for image in frames:
            tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
            fex = self._detector.detect(tensor, data_type="tensor")
            rows.append(self._to_row(fex))
        return np.stack(rows) if rows else np.zeros((0, len(AU_NAMES)), np.float32)

    @staticmethod
    def _to_row(fex) -> np.ndarray:  # noqa: ANN001 - py-feat's Fex (a DataFrame)
        row = np.full(len(AU_NAMES), np.nan, dtype=np.float32)
        if len(fex) == 0:
            return row
        first = fex.iloc[0]
        for j, au in enumerate(AU_NAMES):
            if au in first.index and first[au] == first[au]:
                row[j] = float(np.clip(first[au], 0.0, 1.0))
        return row

