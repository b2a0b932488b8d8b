"""Landmark-guided image warping, shared by the demo generator and LES-Talker's renderer.

:func:`warp_face` moves an image so that its landmarks ``src_pts`` land on ``dst_pts``: a
piecewise-affine warp over a Delaunay triangulation of the source landmarks plus a frame of
fixed points on the image border (so the background stays put and every pixel is covered),
evaluated as one dense backward map and applied with :func:`cv2.remap`.

For many frames of the same source image use :class:`PiecewiseAffineWarp`, which triangulates
once and then warps a 256x256 frame in about 2-3 ms on one core.

:func:`paint_mouth_interior` fills the opening between the inner lips of a warped face (a
closed-mouth photo has no pixels for the inside of the mouth) with a dark cavity and a hint
of teeth, on MediaPipe's 478-point topology.

Coordinates are pixels, ``x`` right and ``y`` down, with pixel centres at integer positions
(OpenCV's convention).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "PiecewiseAffineWarp",
    "warp_face",
    "border_points",
    "paint_mouth_interior",
    "INNER_LIP_UPPER",
    "INNER_LIP_LOWER",
]

#: MediaPipe face-mesh inner lip contour, mouth corner to mouth corner (image left to right
#: for a frontal face): upper lip edge, then lower lip edge. 78 and 308 are the inner corners.
INNER_LIP_UPPER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
_EYE_OUTER_CORNERS = (33, 263)

_SUBPIXEL_SHIFT = 4  # fillConvexPoly fixed-point bits: 1/16 px vertex precision


def border_points(width: int, height: int, per_side: int = 5) -> np.ndarray:
    """Fixed points on the image border: ``per_side`` per edge, corners included.

    Returns:
        ``(4 * (per_side - 1), 2)`` float64 pixel coordinates (empty for ``per_side < 2``).
    """
    if per_side < 2:
        return np.zeros((0, 2), np.float64)
    xs = np.linspace(0.0, width - 1.0, per_side)
    ys = np.linspace(0.0, height - 1.0, per_side)
    top = np.stack([xs, np.zeros_like(xs)], 1)
    bottom = np.stack([xs, np.full_like(xs, height - 1.0)], 1)
    left = np.stack([np.zeros_like(ys[1:-1]), ys[1:-1]], 1)
    right = np.stack([np.full_like(ys[1:-1], width - 1.0), ys[1:-1]], 1)
    return np.concatenate([top, bottom, left, right]).astype(np.float64)


def _as_points(pts: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(pts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{name} must be an (N, 2) or (N, 3) array of pixel coordinates, got shape {arr.shape}")
    arr = arr[:, :2]
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return arr


class PiecewiseAffineWarp:
    """Piecewise-affine warp of images whose landmarks are ``src_pts``, triangulated once.

    Args:
        src_pts: ``(N, 2)`` (or ``(N, 3)``, z ignored) source landmarks, pixels.
        size: ``(width, height)`` of the images that will be warped (output has the same size).
        border_per_side: fixed points per image edge added to the landmarks (0 disables; then
            pixels outside the landmarks' convex hull keep their source pixel).
        triangles: optional ``(M, 3)`` vertex indices into ``[src_pts; border points]``;
            default: Delaunay triangulation of those points.
    """

    def __init__(
        self,
        src_pts: np.ndarray,
        size: tuple[int, int],
        *,
        border_per_side: int = 5,
        triangles: np.ndarray | None = None,
    ) -> None:
        width, height = int(size[0]), int(size[1])
        if width < 2 or height < 2:
            raise ValueError(f"image size must be at least 2x2, got {size}")
        self.size = (width, height)
        src = _as_points(src_pts, "src_pts")
        self.n_points = len(src)
        self.border = border_points(width, height, border_per_side)
        self.src = np.concatenate([src, self.border])
        if triangles is None:
            from scipy.spatial import Delaunay

            triangles = Delaunay(self.src).simplices
        self.triangles = np.ascontiguousarray(triangles, dtype=np.int64)
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            raise ValueError(f"triangles must be (M, 3), got {self.triangles.shape}")
        if self.triangles.size and (self.triangles.min() < 0 or self.triangles.max() >= len(self.src)):
            raise ValueError("triangles index points that do not exist")
        self._src_tri = self.src[self.triangles]  # (M, 3, 2)
        self._grid_x, self._grid_y = np.meshgrid(
            np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        )
        self._labels = np.empty((height, width), np.int32)

    def affines(self, dst_pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-triangle affine maps from destination to source coordinates.

        Returns:
            ``(M + 1, 3, 2)`` float64 matrices ``A`` with ``[x_src, y_src] = [x, y, 1] @ A``
            (the last one is the identity, used for uncovered pixels), and a ``(M,)`` bool
            mask of triangles that are non-degenerate in the destination.
        """
        dst = self._full_dst(dst_pts)
        d = dst[self.triangles]  # (M, 3, 2)
        s = self._src_tri
        # closed form: with e1 = d1 - d0, e2 = d2 - d0 (columns of E), src = s0 + [s1-s0, s2-s0] E^-1 (x - d0)
        e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        ok = np.abs(det) > 1e-6
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        # rows of E^-1
        i00, i01 = e2[:, 1] * inv_det, -e2[:, 0] * inv_det
        i10, i11 = -e1[:, 1] * inv_det, e1[:, 0] * inv_det
        f1, f2 = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]  # (M, 2)
        # linear part L (2x2, src = L @ x + t): L = [f1 f2] @ E^-1
        l00 = f1[:, 0] * i00 + f2[:, 0] * i10
        l01 = f1[:, 0] * i01 + f2[:, 0] * i11
        l10 = f1[:, 1] * i00 + f2[:, 1] * i10
        l11 = f1[:, 1] * i01 + f2[:, 1] * i11
        t0 = s[:, 0, 0] - (l00 * d[:, 0, 0] + l01 * d[:, 0, 1])
        t1 = s[:, 0, 1] - (l10 * d[:, 0, 0] + l11 * d[:, 0, 1])
        a = np.zeros((len(d) + 1, 3, 2))
        a[:-1, 0, 0], a[:-1, 1, 0], a[:-1, 2, 0] = l00, l01, t0
        a[:-1, 0, 1], a[:-1, 1, 1], a[:-1, 2, 1] = l10, l11, t1
        # degenerate destination triangles cover (almost) no pixel: map them to their source centroid
        a[:-1][~ok] = 0.0
        a[:-1][~ok, 2, :] = s[~ok].mean(axis=1)
        a[-1] = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
        return a, ok

    def maps(self, dst_pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense backward maps for :func:`cv2.remap`: ``(H, W)`` float32 source x and y."""
        import cv2

        dst = self._full_dst(dst_pts)
        a, ok = self.affines(dst)
        labels = self._labels
        labels.fill(len(self.triangles))  # sentinel: identity
        verts = np.round(np.clip(dst, -1e5, 1e5) * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)[self.triangles]
        fill = cv2.fillConvexPoly
        for i in np.flatnonzero(ok).tolist():
            fill(labels, verts[i], i, cv2.LINE_8, _SUBPIXEL_SHIFT)
        a32 = a.astype(np.float32)
        x, y = self._grid_x, self._grid_y
        map_x = np.take(a32[:, 0, 0], labels) * x + np.take(a32[:, 1, 0], labels) * y + np.take(a32[:, 2, 0], labels)
        map_y = np.take(a32[:, 0, 1], labels) * x + np.take(a32[:, 1, 1], labels) * y + np.take(a32[:, 2, 1], labels)
        return map_x, map_y

    def warp(self, image: np.ndarray, dst_pts: np.ndarray, *, interpolation: int | None = None) -> np.ndarray:
        """Warp ``image`` (``(H, W)`` or ``(H, W, C)``, any dtype OpenCV remaps) so that the
        source landmarks move to ``dst_pts`` (``(N, 2)`` pixels). Same shape and dtype out."""
        import cv2

        image = np.asarray(image)
        if image.shape[1] != self.size[0] or image.shape[0] != self.size[1]:
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, this warp was built for {self.size[0]}x{self.size[1]}")
        map_x, map_y = self.maps(dst_pts)
        return cv2.remap(
            image,
            map_x,
            map_y,
            cv2.INTER_LINEAR if interpolation is None else interpolation,
            borderMode=cv2.BORDER_REFLECT101,
        )

    def _full_dst(self, dst_pts: np.ndarray) -> np.ndarray:
        dst = _as_points(dst_pts, "dst_pts")
        if len(dst) == len(self.src):  # already includes the border frame
            return dst
        if len(dst) != self.n_points:
            raise ValueError(f"dst_pts has {len(dst)} points, src_pts has {self.n_points}")
        return np.concatenate([dst, self.border])


def warp_face(
    image: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    *,
    border_per_side: int = 5,
    triangles: np.ndarray | None = None,
) -> np.ndarray:
    """Warp ``image`` so that landmarks at ``src_pts`` move to ``dst_pts``.

    Args:
        image: ``(H, W, 3)`` (or ``(H, W)``) image, typically uint8 RGB.
        src_pts: ``(N, 2)`` or ``(N, 3)`` landmark positions in ``image``, pixels (z ignored).
        dst_pts: ``(N, 2)`` or ``(N, 3)`` where those landmarks should be in the output, pixels.
        border_per_side: fixed points per image edge (keeps the background in place).
        triangles: optional fixed triangulation (see :class:`PiecewiseAffineWarp`).

    Returns:
        The warped image, same shape and dtype. ``src_pts == dst_pts`` returns ``image``
        unchanged. For many frames of one image, build a :class:`PiecewiseAffineWarp` once.
    """
    image = np.asarray(image)
    warp = PiecewiseAffineWarp(
        src_pts, (image.shape[1], image.shape[0]), border_per_side=border_per_side, triangles=triangles
    )
    return warp.warp(image, dst_pts)


def paint_mouth_interior(
    image: np.ndarray,
    landmarks: np.ndarray,
    *,
    min_gap_px: float = 0.75,
    cavity_rgb: Sequence[int] = (48, 14, 18),
    teeth_rgb: Sequence[int] = (206, 199, 184),
    teeth: bool = True,
) -> np.ndarray:
    """Fill the opening between the inner lips of a (warped) face, in place, and return it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        landmarks: ``(478, 2+)`` MediaPipe face-mesh landmarks of ``image``, pixels.
        min_gap_px: below this largest inner-lip gap the mouth counts as closed (no change).
        cavity_rgb / teeth_rgb: colours of the mouth's inside and of the teeth hint.
        teeth: draw upper (and a little lower) teeth along the lips.

    The cavity is the polygon of the inner lip contour, anti-aliased and darker toward its
    centre; the teeth are bands hanging from the upper inner lip (and rising from the lower
    one) over the middle of the mouth, their height a fraction of the local gap.
    """
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 2:
        raise ValueError(f"paint_mouth_interior needs MediaPipe's (478, 2+) landmarks, got shape {lm.shape}")
    lm = lm[:, :2]
    upper = lm[list(INNER_LIP_UPPER)]
    lower = lm[list(INNER_LIP_LOWER)]
    gap = np.linalg.norm(lower - upper, axis=1)
    if gap.max() < min_gap_px:
        return image
    height, width = image.shape[:2]
    x0, y0 = np.floor(np.minimum(upper.min(0), lower.min(0))).astype(int) - 2
    x1, y1 = np.ceil(np.maximum(upper.max(0), lower.max(0))).astype(int) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return image
    shift = _SUBPIXEL_SHIFT
    scale = float(1 << shift)
    origin = np.array([x0, y0], np.float64)

    def poly(points: np.ndarray) -> np.ndarray:
        return np.round((points - origin) * scale).astype(np.int32)

    roi = image[y0:y1, x0:x1].astype(np.float32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cavity = np.concatenate([upper, lower[::-1][1:-1]])
    cv2.fillPoly(mask, [poly(cavity)], 255, cv2.LINE_AA, shift)
    alpha = mask.astype(np.float32)[..., None] / 255.0
    # darker toward the middle of the opening (depth cue), lighter at the lips
    centre = (upper + lower) / 2.0
    depth8 = np.zeros_like(mask)
    inner = np.concatenate([upper + (centre - upper) * 0.45, (lower + (centre - lower) * 0.45)[::-1][1:-1]])
    cv2.fillPoly(depth8, [poly(inner)], 255, cv2.LINE_AA, shift)
    depth = cv2.GaussianBlur(depth8.astype(np.float32) / 255.0, (0, 0), max(gap.max() * 0.25, 0.5))
    colour = np.asarray(cavity_rgb, np.float32) * (1.0 - 0.55 * depth[..., None])
    if teeth:
        tooth = np.zeros_like(mask)
        eye_dist = float(np.linalg.norm(lm[_EYE_OUTER_CORNERS[0]] - lm[_EYE_OUTER_CORNERS[1]]))
        n = len(upper)
        mid = np.abs(np.linspace(-1.0, 1.0, n)) < 0.8  # teeth show over the middle of the mouth
        down = (lower - upper) / np.maximum(gap[:, None], 1e-6)
        up_h = np.minimum(0.3 * gap, 0.07 * eye_dist) * mid
        lo_h = np.minimum(0.14 * gap, 0.035 * eye_dist) * mid
        upper_band = np.concatenate([upper, (upper + down * up_h[:, None])[::-1]])
        lower_band = np.concatenate([lower, (lower - down * lo_h[:, None])[::-1]])
        cv2.fillPoly(tooth, [poly(upper_band)], 255, cv2.LINE_AA, shift)
        tooth_lo = np.zeros_like(mask)
        cv2.fillPoly(tooth_lo, [poly(lower_band)], 255, cv2.LINE_AA, shift)
        # teeth fade in as the mouth opens: a slit shows only the dark gap
        show = float(np.clip((gap.max() / max(eye_dist, 1e-6) - 0.025) / 0.05, 0.0, 1.0))
        t_up = tooth.astype(np.float32)[..., None] / 255.0 * show
        t_lo = tooth_lo.astype(np.float32)[..., None] / 255.0 * 0.8 * show
        teeth_col = np.asarray(teeth_rgb, np.float32)
        colour = colour * (1 - t_up) + teeth_col * t_up
        colour = colour * (1 - t_lo) + teeth_col * 0.85 * t_lo
    out = roi * (1.0 - alpha) + colour * alpha
    image[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return image
