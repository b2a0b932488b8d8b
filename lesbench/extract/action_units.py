"""Facial action units (FACS) from MediaPipe blendshapes (docs/action_units.md).

The default extractor maps MediaPipe FaceLandmarker's 52 ARKit-style blendshapes to 17 named
AU intensities in ``schema.AU_NAMES`` order. Most AUs are the (bilateral mean of the)
blendshape that describes the same muscle action; AU06 and AU09, whose blendshapes MediaPipe's
model leaves at ~0, use documented proxies. The mapping, the reasons and the check on real MEAD
clips are written up in ``docs/action_units.md``. Values are in [0, 1] like the blendshape scores they come from,
so they are intensities on MediaPipe's scale, not FACS A-E codes.

An optional py-feat backend (:class:`PyFeatAUExtractor`) produces the same columns from images
where py-feat and its detector weights are installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

from lesbench.errors import LesbenchError, WeightsNotFoundError
from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES
from lesbench.schema import FACS_PROTOTYPES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Stage version: bump when the mapping (and so the AU columns) can change.
VERSION = "1"

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


def au_from_blendshapes(bs: np.ndarray) -> np.ndarray:
    """Map blendshape scores to AU intensities (formulas in :data:`AU_FORMULAS`).

    Args:
        bs: ``(T, 52)`` (or ``(52,)``) float blendshape scores in ``schema.BLENDSHAPE_NAMES``
            order, in [0, 1]. NaN rows (frames without a face) give NaN AUs.

    Returns:
        ``(T, 17)`` (or ``(17,)``) float32 AU intensities in ``schema.AU_NAMES`` order, in [0, 1].
    """
    arr = np.asarray(bs, dtype=np.float32)
    if arr.shape[-1] != len(BLENDSHAPE_NAMES):
        raise ValueError(
            f"au_from_blendshapes: expected {len(BLENDSHAPE_NAMES)} blendshapes in the last axis, "
            f"got shape {arr.shape}"
        )
    # Inputs are scores in [0, 1]; clipping first keeps sqrt and products well defined.
    arr = np.clip(arr, 0.0, 1.0)
    col = {name: arr[..., i] for i, name in enumerate(BLENDSHAPE_NAMES)}

    def pair(stem: str) -> np.ndarray:
        return 0.5 * (col[stem + "Left"] + col[stem + "Right"])

    eye_squint = pair("eyeSquint")
    smile = pair("mouthSmile")
    upper_up = pair("mouthUpperUp")
    au = {
        "AU01": col["browInnerUp"],
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
        "AU17": col["mouthShrugLower"],
        "AU20": pair("mouthStretch"),
        "AU23": pair("mouthPress"),
        "AU25": np.fmax(col["jawOpen"] - col["mouthClose"], pair("mouthLowerDown")),
        "AU26": col["jawOpen"],
        "AU45": pair("eyeBlink"),
    }
    out = np.stack([au[name] for name in AU_NAMES], axis=-1)
    # np.clip keeps NaN (no-face frames stay NaN).
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def au_frame(bs: np.ndarray) -> "pd.DataFrame":
    """AU intensities as a DataFrame with one named float32 column per AU (``AU01`` ... ``AU45``)."""
    import pandas as pd

    aus = au_from_blendshapes(np.atleast_2d(bs))
    return pd.DataFrame({name: aus[:, j] for j, name in enumerate(AU_NAMES)})


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

