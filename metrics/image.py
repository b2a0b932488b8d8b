"""Paired image metrics: PSNR, SSIM, LPIPS between generated and reference frames.

All three are computed per frame on RGB uint8 ``(T, H, W, 3)`` frames (generated frame *t*
against reference frame *t*, same size) and averaged over the frames of a clip; a score run
averages clips. Settings follow common talking-head evaluations and scikit-image, which the
tests use as the reference:

**PSNR** (dB, higher is better): ``10 log10(255² / MSE)`` over all pixels and channels of a
frame (``skimage.metrics.peak_signal_noise_ratio(ref, pred, data_range=255)``, which is also
what scikit-image infers for uint8 without ``data_range``). Identical frames have MSE 0 and an
infinite PSNR; :class:`PSNR` follows the protocol's rule for them (``identical="cap"``: the
frame counts as ``cap_db`` dB; ``"skip"``: it is left out of the mean) and counts them
(``n_identical``) either way. A clip's value is the mean over its frames.

**SSIM** (unitless, in [-1, 1], higher is better; Wang et al. 2004, "Image quality assessment:
from error visibility to structural similarity", IEEE TIP), K1 = 0.01, K2 = 0.03, data range
255, computed on each RGB channel and averaged, the border of the window radius excluded.
Two windows:

- ``window="gaussian"`` (default, mead-v1): Gaussian σ = 1.5 truncated at 3.5σ (11×11),
  population covariance — exactly ``structural_similarity(ref, pred, channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``;
- ``window="uniform"`` (eat-mead): 7×7 box, sample covariance (variances × 49/48) —
  scikit-image's defaults, i.e. ``structural_similarity(ref, pred, channel_axis=-1)`` on uint8,
  which is what EAT's ``structural_similarity(gt, fake, multichannel=True)`` meant
  (``multichannel=True`` was renamed ``channel_axis=-1`` in scikit-image 0.19).

Implemented as separable float64 'valid' convolutions in torch (batched over frames), not by
calling scikit-image; the tests compare both windows with scikit-image.

**LPIPS** (unitless, lower is better; Zhang et al. 2018, "The unreasonable effectiveness of deep
features as a perceptual metric", CVPR) through the ``lpips`` package (v0.1 linear layers shipped
in it) with the AlexNet (default) or VGG backbone weights resolved as ``lpips-alex`` /
``lpips-vgg`` (torchvision's ImageNet state dicts). Inputs scaled to [-1, 1]. The ``lpips``
package imports torchvision, which is not usable with this project's torch build, and the
backbone files are not shipped by any installable package here, so the metric raises
:class:`~lesbench.metrics.base.MetricUnavailable` with the reason when either is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lesbench.metrics.base import Metric, MetricUnavailable, Output
from lesbench.errors import LesbenchError
from lesbench import weights

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim == 3:
        pred, ref = pred[None], ref[None]
    if pred.shape != ref.shape:
        raise ValueError(f"generated and reference frames differ in shape: {pred.shape} vs {ref.shape}")
    if pred.ndim != 4 or pred.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3) RGB, got {pred.shape}")
    return pred, ref


def psnr_frames(pred: np.ndarray, ref: np.ndarray, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-frame PSNR ``(T,)`` float64 in dB for frames ``(T, H, W, 3)``; ``inf`` where a
    frame pair is identical."""
    pred, ref = _pair(pred, ref)
    diff = pred.astype(np.float64) - ref.astype(np.float64)
    mse = (diff * diff).reshape(len(diff), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def _gaussian_taps(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)  # as scipy.ndimage.gaussian_filter
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


SSIM_WINDOWS = ("gaussian", "uniform")


def ssim_taps(window: str = "gaussian", win_size: int | None = None) -> np.ndarray:
    """1-D window taps (summing to 1): Gaussian σ 1.5 (11 taps unless ``win_size``) or a box of
    ``win_size`` (default 7, scikit-image's)."""
    if window == "gaussian":
        taps = _gaussian_taps()
        if win_size is not None and win_size != len(taps):
            raise ValueError(f"the Gaussian SSIM window has {len(taps)} taps (sigma 1.5), not {win_size}")
        return taps
    if window == "uniform":
        k = 7 if win_size is None else int(win_size)
        if k < 3 or k % 2 == 0:
            raise ValueError(f"SSIM window size must be odd and >= 3, got {k}")
        return np.full(k, 1.0 / k)
    raise ValueError(f"SSIM window must be one of {SSIM_WINDOWS}, got {window!r}")


def ssim_frames(pred: np.ndarray, ref: np.ndarray, data_range: float = DATA_RANGE, device: str | None = None,
                batch: int = 16, window: str = "gaussian", win_size: int | None = None,
                sample_covariance: bool | None = None) -> np.ndarray:
    """Per-frame SSIM ``(T,)`` float64 for frames ``(T, H, W, 3)`` (settings in the module doc).

    ``window``: ``gaussian`` or ``uniform``; ``sample_covariance`` (default: False for the
    Gaussian window, True for the uniform one, as the two settings in the module doc) scales
    variances and covariance by ``N / (N - 1)``, N = window area, as scikit-image does.
    'valid' separable convolutions give exactly the interior that scikit-image keeps after
    cropping the window radius, so no border padding is needed.
    """
    import torch

    pred, ref = _pair(pred, ref)
    taps = [float(t) for t in ssim_taps(window, win_size)]
    k = len(taps)
    if min(pred.shape[1:3]) < k:
        raise ValueError(f"SSIM needs frames of at least {k}x{k} px, got {pred.shape[1:3]}")
    if sample_covariance is None:
        sample_covariance = window == "uniform"
    cov_norm = k * k / (k * k - 1.0) if sample_covariance else 1.0
    dev = torch.device(device or "cpu")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    def blur_last(x: Any) -> Any:  # 'valid' 1-D filter along the last axis by shifted adds
        n = x.shape[-1] - k + 1
        y = x[..., 0:n] * taps[0]
        for j in range(1, k):
            y.add_(x[..., j : j + n], alpha=taps[j])
        return y

    def blur(x: Any) -> Any:  # x: (B, 1, H, W) float64 -> (B, 1, H-k+1, W-k+1)
        # (float64 shifted adds are ~8x faster than float64 conv2d on CPU)
        return blur_last(blur_last(x).transpose(-1, -2)).transpose(-1, -2)

    out = np.empty(len(pred), np.float64)
    for s in range(0, len(pred), batch):
        x = torch.from_numpy(np.ascontiguousarray(pred[s : s + batch])).to(dev, torch.float64)
        y = torch.from_numpy(np.ascontiguousarray(ref[s : s + batch])).to(dev, torch.float64)
        n = x.shape[0]
        x = x.permute(0, 3, 1, 2).reshape(n * 3, 1, *x.shape[1:3])
        y = y.permute(0, 3, 1, 2).reshape(n * 3, 1, *y.shape[1:3])
        stacked = blur(torch.cat([x, y, x * x, y * y, x * y], dim=0))
        ux, uy, uxx, uyy, uxy = stacked.chunk(5, dim=0)
        vx = (uxx - ux * ux) * cov_norm
        vy = (uyy - uy * uy) * cov_norm
        vxy = (uxy - ux * uy) * cov_norm
        s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[s : s + n] = s_map.reshape(n, -1).mean(dim=1).cpu().numpy()
    return out


PSNR_IDENTICAL_RULES = ("cap", "skip")


def apply_identical_rule(values: np.ndarray, identical: str = "cap", cap_db: float = 100.0) -> tuple[np.ndarray, int]:
    """Per-frame PSNR values ``(T,)`` after the rule for identical frames (infinite PSNR):
    ``cap`` replaces them by ``cap_db``, ``skip`` drops them. Returns ``(values, n_identical)``."""
    if identical not in PSNR_IDENTICAL_RULES:
        raise ValueError(f"PSNR rule for identical frames must be one of {PSNR_IDENTICAL_RULES}, got {identical!r}")
    values = np.asarray(values, np.float64)
    inf = np.isposinf(values)
    if identical == "cap":
        return np.where(inf, float(cap_db), values), int(inf.sum())
    return values[~inf], int(inf.sum())


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float = DATA_RANGE, identical: str = "cap",
         cap_db: float = 100.0) -> float:
    """Functional twin of :class:`PSNR`: mean per-frame PSNR (dB) of a clip, identical frames
    handled by ``identical`` (NaN when every frame is identical and the rule is ``skip``)."""
    vals, _ = apply_identical_rule(psnr_frames(pred, ref, data_range), identical, cap_db)
    return float(vals.mean()) if len(vals) else float("nan")


def ssim(pred: np.ndarray, ref: np.ndarray, data_range: float = DATA_RANGE, device: str | None = None,
         window: str = "gaussian", win_size: int | None = None, sample_covariance: bool | None = None) -> float:
    """Functional twin of :class:`SSIM`: mean per-frame SSIM of a clip."""
    return float(ssim_frames(pred, ref, data_range, device, window=window, win_size=win_size,
                             sample_covariance=sample_covariance).mean())


class _FrameMeanMetric(Metric):
    """Mean of a per-frame value over all frames given to ``update``; also keeps clip means.

    :meth:`frame_counts` reports how many frames the mean is over (``n_frames``) and how many were
    given but could not be counted in it, by reason (``n_identical`` for PSNR's ``skip``)."""

    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "ref_video")

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0
        self.per_clip: list[float] = []
        self._counts: dict[str, int] = {}

    def _frames(self, pred: np.ndarray, ref: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def update(self, pred_video: np.ndarray, ref_video: np.ndarray) -> None:
        vals = self._frames(pred_video, ref_video)
        self.total += float(vals.sum())
        self.count += len(vals)
        if len(vals):
            self.per_clip.append(float(vals.mean()))

    def frame_counts(self) -> dict[str, int]:
        """Frame counts of the values given so far: ``n_frames`` in the mean, plus exclusions."""
        return {"n_frames": int(self.count), **self._counts}

    def compute(self) -> float:
        if self.count == 0:
            extra = ", ".join(f"{k}={v}" for k, v in self._counts.items() if v)
            raise ValueError(f"{self.name}: no frame could be scored" + (f" ({extra})" if extra else ""))
        return self.total / self.count


class PSNR(_FrameMeanMetric):
    """Peak signal-to-noise ratio in dB, per frame, averaged (see module doc).

    ``identical``: ``cap`` (identical frames count as ``cap_db`` dB) or ``skip`` (left out of
    the mean); either way they are counted in ``frame_counts()["n_identical"]``.
    """

    name = "psnr"
    version = "rgb-255/2"
    outputs = (Output("", "psnr", "PSNR", "higher", 2, "dB"),)
    protocol_args = {"identical": "psnr_identical", "cap_db": "psnr_cap_db"}

    def __init__(self, device: str | None = None, identical: str = "cap", cap_db: float = 100.0) -> None:
        if identical not in PSNR_IDENTICAL_RULES:
            raise ValueError(f"PSNR rule for identical frames must be one of {PSNR_IDENTICAL_RULES}, got {identical!r}")
        self.identical, self.cap_db = identical, float(cap_db)
        super().__init__(device=device)

    def _frames(self, pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
        vals, n_identical = apply_identical_rule(psnr_frames(pred, ref), self.identical, self.cap_db)
        self._counts["n_identical"] = self._counts.get("n_identical", 0) + n_identical
        return vals

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "identical": self.identical, "cap_db": self.cap_db}


class SSIM(_FrameMeanMetric):
    """Structural similarity, per frame, averaged (see module doc for the two windows)."""

    name = "ssim"
    outputs = (Output("", "ssim", "SSIM", "higher", 3),)
    protocol_args = {"window": "ssim_window", "win_size": "ssim_win_size", "sample_covariance": "ssim_sample_covariance"}
    VERSIONS: ClassVar[dict[str, str]] = {"gaussian": "rgb-gauss1.5-255/1", "uniform": "rgb-uniform7-sample-255/1"}
    version = VERSIONS["gaussian"]

    def __init__(self, device: str | None = None, window: str = "gaussian", win_size: int | None = None,
                 sample_covariance: bool | None = None) -> None:
        ssim_taps(window, win_size)  # validates the window now, not at the first clip
        self.window, self.win_size, self.sample_covariance = window, win_size, sample_covariance
        default = (window == "gaussian" and win_size in (None, 11) and not sample_covariance) or \
                  (window == "uniform" and win_size in (None, 7) and sample_covariance in (None, True))
        k = len(ssim_taps(window, win_size))
        cov = "sample" if (window == "uniform" if sample_covariance is None else sample_covariance) else "population"
        # the instance's version names exactly what changes the number
        self.version = self.VERSIONS[window] if default else f"rgb-{window}{k}-{cov}-255/1"  # type: ignore[misc]
        super().__init__(device=device)

    def _frames(self, pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return ssim_frames(pred, ref, device=self.device, window=self.window, win_size=self.win_size,
                           sample_covariance=self.sample_covariance)


# --- LPIPS ------------------------------------------------------------------------------------


def load_lpips(net: str = "alex", device: str | None = None, backbone_path: str | Path | None = None) -> Any:
    """An ``lpips.LPIPS`` model with its backbone loaded from ``lesbench.weights`` (no download).

    Raises :class:`MetricUnavailable` when the ``lpips`` package cannot be imported or the
    backbone file (``lpips-alex`` / ``lpips-vgg``) cannot be resolved.
    """
    import torch


    if net not in ("alex", "vgg"):
        raise ValueError(f"LPIPS backbone must be 'alex' or 'vgg', got {net!r}")
    try:
        import lpips  # imports torchvision
    except Exception as e:  # ImportError, or torchvision failing to load against this torch
        raise MetricUnavailable("lpips", f"the 'lpips' package cannot be imported ({type(e).__name__}: {e}); "
                                "it needs torchvision built for the installed torch: pip install lpips") from e
    try:
        path = weights.resolve(f"lpips-{net}", backbone_path)
    except LesbenchError as e:
        raise MetricUnavailable("lpips", f"backbone weights 'lpips-{net}' not found: {e}") from e
    # pnet_rand=True: build the backbone without torchvision downloading ImageNet weights; the
    # linear layers (pretrained=True) come from the lpips package itself.
    try:  # the v0.1 linear layers: lesbench's copy if registered/present, else the package's own
        lin_path: str | None = str(weights.resolve(f"lpips-{net}-lin"))
    except LesbenchError:
        lin_path = None
    kwargs = {"model_path": lin_path} if lin_path else {}
    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False, **kwargs)
    backbone = torch.load(str(path), map_location="cpu", weights_only=True)
    model.net.load_state_dict(_lpips_backbone_state(model.net, backbone), strict=True)
    return model.eval().to(device or "cpu")


def _lpips_backbone_state(net: Any, torchvision_state: dict[str, Any]) -> dict[str, Any]:
    """Map torchvision ``features.{i}.{p}`` keys onto lpips' ``slice{k}.{i}.{p}`` keys."""
    out = {}
    for key in net.state_dict():
        _slice, idx, param = key.split(".", 2)
        src = f"features.{idx}.{param}"
        if src not in torchvision_state:
            raise MetricUnavailable("lpips", f"backbone file lacks {src!r} (expected torchvision's state dict)")
        out[key] = torchvision_state[src]
    return out


class LPIPS(_FrameMeanMetric):
    """Learned perceptual image patch similarity, per frame, averaged (see module doc)."""

    name = "lpips"
    version = "lpips-0.1-alex/1"
    outputs = (Output("", "lpips", "LPIPS", "lower", 3),)
    weights = ("lpips-alex",)

    def __init__(self, device: str | None = None, net: str = "alex", backbone_path: str | Path | None = None,
                 batch: int = 16, load: bool = True) -> None:
        """``load``: load now, so that a missing package/backbone raises MetricUnavailable here."""
        self.net, self.backbone_path, self.batch = net, backbone_path, batch
        self._model: Any = None
        super().__init__(device=device)
        if load:
            _ = self.model

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_lpips(self.net, self.device, self.backbone_path)
        return self._model

    def _frames(self, pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return lpips_frames(pred, ref, self.model, self.batch)


def lpips_frames(pred: np.ndarray, ref: np.ndarray, model: Any, batch: int = 16) -> np.ndarray:
    """Per-frame LPIPS ``(T,)`` with a model from :func:`load_lpips`."""
    import torch

    pred, ref = _pair(pred, ref)
    dev = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, len(pred), batch):
            x = torch.from_numpy(np.ascontiguousarray(pred[s : s + batch])).to(dev).permute(0, 3, 1, 2).float()
            y = torch.from_numpy(np.ascontiguousarray(ref[s : s + batch])).to(dev).permute(0, 3, 1, 2).float()
            d = model(x / 127.5 - 1.0, y / 127.5 - 1.0)
            out.append(d.reshape(len(x)).double().cpu().numpy())
    return np.concatenate(out)


def lpips(pred: np.ndarray, ref: np.ndarray, net: str = "alex", device: str | None = None) -> float:
    """Functional twin of :class:`LPIPS`: mean per-frame LPIPS of a clip."""
    return float(lpips_frames(pred, ref, load_lpips(net, device)).mean())


__all__ = ["PSNR", "SSIM", "LPIPS", "psnr", "ssim", "lpips", "psnr_frames", "ssim_frames", "ssim_taps",
           "apply_identical_rule", "load_lpips"]
