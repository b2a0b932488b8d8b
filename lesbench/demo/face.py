"""Hand-designed facial animation on MediaPipe's 478-landmark topology (the demo's face rig).

A :class:`FaceRig` is built once per identity from the landmarks detected on its neutral photo.
It holds one displacement field per action unit (FACS AU) and per speech articulator, each a
``(478, 2)`` array of landmark offsets at intensity 1, in a face-aligned frame whose unit is
the distance between the eye centres (IOD). A frame's landmarks are the neutral landmarks plus
a *linear* combination of fields (so the per-frame ground truth is exactly the intensities
used), then two small non-linear guards (lips and eyelids never pass through each other), then
a 3-D head rotation and translation.

Conventions: face frame ``u`` points from the image-left eye to the image-right eye, ``v``
points down the face, origin between the eye centres. Sides: ``"l"`` is image-left
(``u < 0``, the subject's right for an unmirrored photo), ``"r"`` image-right. Head pose, in
degrees, as :mod:`lesbench.extract.face` reports it: ``yaw > 0`` turns the face toward the
image's right side, ``pitch > 0`` tips it up, ``roll > 0`` tilts it counter-clockwise as seen
in the image; ``tx, ty`` are pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lesbench.render import INNER_LIP_LOWER, INNER_LIP_UPPER
from lesbench.schema import AU_NAMES

# --- MediaPipe face-mesh index groups (from its published topology) ---------------------------
#: upper / lower eyelid contours, outer corner side first; image-left eye then image-right eye
UPPER_LID = {"l": (246, 161, 160, 159, 158, 157, 173), "r": (466, 388, 387, 386, 385, 384, 398)}
LOWER_LID = {"l": (7, 163, 144, 145, 153, 154, 155), "r": (249, 390, 373, 374, 380, 381, 382)}
EYE_CORNERS = {"l": (33, 133), "r": (263, 362)}
IRIS = (tuple(range(468, 473)), tuple(range(473, 478)))
BROW_INNER = {"l": (107, 55, 66, 65), "r": (336, 285, 296, 295)}
BROW_MID = {"l": (105, 52), "r": (334, 282)}
BROW_OUTER = {"l": (70, 46, 63, 53), "r": (300, 276, 293, 283)}
OUTER_LIP_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIP_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNERS = {"l": (61, 78), "r": (291, 308)}
NOSE_ALAE = {"l": (98, 64, 129, 48, 115), "r": (327, 294, 358, 278, 344)}
CHIN = (152, 175, 199, 200, 18, 148, 377)
CHEEK = {"l": (50, 101, 118, 36, 205), "r": (280, 330, 347, 266, 425)}
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

#: Expression prototypes (docs/action_units.md, FACS): channel intensities at level 3. Contempt is
#: unilateral (image-right half only), so its bilateral-mean AU12/AU14 are half of these.
EXPRESSION_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"AU06": 0.8, "AU12": 1.0},
    "surprised": {"AU01": 0.9, "AU02": 0.9, "AU05": 0.8, "AU26": 0.55},
    "angry": {"AU04": 1.0, "AU05": 0.55, "AU07": 0.8, "AU23": 0.85},
    "sad": {"AU01": 0.8, "AU04": 0.6, "AU15": 0.9},
    "disgusted": {"AU09": 0.9, "AU10": 0.9},
    "fear": {"AU01": 0.8, "AU02": 0.6, "AU04": 0.5, "AU05": 0.9, "AU20": 0.9},
    "contempt": {"AU12_r": 0.9, "AU14_r": 0.8},
}
#: Fraction of the level-3 prototype shown at each MEAD level.
LEVEL_SCALE: dict[int, float] = {1: 0.35, 2: 0.65, 3: 1.0}

#: Articulators driven by the synthetic speech (not AUs): lip rounding.
EXTRA_FIELDS: tuple[str, ...] = ("round",)
#: AUs whose fields are split by side (contempt is unilateral AU12 + AU14).
SIDED_AUS: tuple[str, ...] = ("AU12", "AU14")
N_LM = 478


@dataclass(frozen=True)
class FaceFrame:
    """Face-aligned 2-D frame: origin between the eyes, unit = inter-ocular distance (IOD)."""

    origin: np.ndarray  # (2,) px
    ex: np.ndarray  # (2,) unit vector, image-left eye -> image-right eye
    ey: np.ndarray  # (2,) unit vector, down the face
    iod: float  # px

    @classmethod
    def from_landmarks(cls, lm: np.ndarray) -> "FaceFrame":
        lm = np.asarray(lm, np.float64)
        left = lm[list(UPPER_LID["l"] + LOWER_LID["l"])].mean(0)[:2]
        right = lm[list(UPPER_LID["r"] + LOWER_LID["r"])].mean(0)[:2]
        axis = right - left
        iod = float(np.linalg.norm(axis))
        if iod < 1e-3:
            raise ValueError("degenerate landmarks: the two eyes coincide")
        ex = axis / iod
        ey = np.array([-ex[1], ex[0]])
        return cls(origin=(left + right) / 2, ex=ex, ey=ey, iod=iod)

    def to_local(self, pts: np.ndarray) -> np.ndarray:
        d = np.asarray(pts, np.float64)[..., :2] - self.origin
        return np.stack([d @ self.ex, d @ self.ey], axis=-1) / self.iod

    def vec_to_px(self, duv: np.ndarray) -> np.ndarray:
        duv = np.asarray(duv, np.float64)
        return (duv[..., :1] * self.ex + duv[..., 1:2] * self.ey) * self.iod


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class FaceRig:
    """Displacement fields for one identity's neutral landmarks.

    Args:
        landmarks: ``(478, 3)`` neutral landmarks of the identity image, pixels (z in the
            same pixel scale, smaller = nearer the camera, as MediaPipe gives it).

    ``fields[name]`` is a ``(478, 2)`` float64 offset in IOD units at intensity 1, for every
    name in :meth:`channel_names` (AU names, ``AU12_l``/``AU12_r``-style sided halves, and
    :data:`EXTRA_FIELDS`).
    """

    def __init__(self, landmarks: np.ndarray) -> None:
        lm = np.asarray(landmarks, np.float64)
        if lm.shape[0] < N_LM or lm.shape[1] < 2:
            raise ValueError(f"need (478, 2+) landmarks, got {lm.shape}")
        self.neutral = lm[:N_LM, :3] if lm.shape[1] >= 3 else np.concatenate([lm[:N_LM], np.zeros((N_LM, 1))], 1)
        self.frame = FaceFrame.from_landmarks(self.neutral)
        self.q = self.frame.to_local(self.neutral)  # (478, 2) local coords
        self._build_geometry()
        self.fields: dict[str, np.ndarray] = {}
        self._build_fields()

    # --- geometry helpers ---------------------------------------------------------------------
    def _build_geometry(self) -> None:
        q = self.q
        iu = list(INNER_LIP_UPPER)
        il = list(INNER_LIP_LOWER)
        line = (q[iu] + q[il]) / 2  # the mouth line (closed mouth: both lips on it)
        order = np.argsort(line[:, 0])
        self._mouth_line_u = line[order, 0]
        self._mouth_line_v = line[order, 1]
        self.mouth_half_width = float((line[:, 0].max() - line[:, 0].min()) / 2)
        self.mouth_centre = line.mean(0)
        # soft "below the mouth line" weight for every landmark; explicit for the lips themselves
        dv = q[:, 1] - np.interp(q[:, 0], self._mouth_line_u, self._mouth_line_v)
        lower = _smoothstep(dv / 0.06 + 0.5)
        lower[iu] = 0.0
        lower[il] = 1.0
        lower[list(OUTER_LIP_UPPER)] = 0.0
        lower[list(OUTER_LIP_LOWER)] = 1.0
        for idx in (78, 308, 61, 291):  # corners belong to both lips
            lower[idx] = 0.5
        self.lower = lower
        chin_v = float(q[152, 1])
        self.chin_v = chin_v
        # side partition of unity: image-left half vs image-right half
        self.side_r = 1.0 / (1.0 + np.exp(-(q[:, 0] / 0.06)))
        self.side_l = 1.0 - self.side_r
        # eye interior interpolation (iris rides between the lids so lids never cross it)
        self._iris_interp = []
        for iris in IRIS:
            centre = q[list(iris)].mean(0)
            side = "r" if centre[0] > 0 else "l"
            up, lo = list(UPPER_LID[side]), list(LOWER_LID[side])
            for i in iris:
                ju = up[int(np.argmin(np.abs(q[up, 0] - q[i, 0])))]
                jl = lo[int(np.argmin(np.abs(q[lo, 0] - q[i, 0])))]
                f = (q[i, 1] - q[ju, 1]) / max(q[jl, 1] - q[ju, 1], 1e-6)
                self._iris_interp.append((i, ju, jl, float(np.clip(f, 0.0, 1.0))))

    def _gauss(self, centres: np.ndarray, disps: np.ndarray, sigma: float, mask: np.ndarray | None = None) -> np.ndarray:
        """Smooth field: each handle drags nearby landmarks (Gaussian falloff, local units)."""
        c = np.atleast_2d(np.asarray(centres, np.float64))
        d = np.atleast_2d(np.asarray(disps, np.float64))
        r2 = ((self.q[:, None, :] - c[None]) ** 2).sum(-1)
        w = np.exp(-r2 / (2 * sigma * sigma))  # (478, K)
        norm = np.maximum(w.sum(1, keepdims=True), 1.0)
        field = (w @ d) / norm
        if mask is not None:
            field *= mask[:, None]
        return field

    def _handles(self, idx, disp, sigma, mask=None) -> np.ndarray:
        idx = list(idx)
        disp = np.broadcast_to(np.asarray(disp, np.float64), (len(idx), 2))
        return self._gauss(self.q[idx], disp, sigma, mask)

    def _finish_eyes(self, field: np.ndarray) -> np.ndarray:
        for i, ju, jl, f in self._iris_interp:
            field[i] = (1 - f) * field[ju] + f * field[jl]
        return field

    # --- the fields ------------------------------------------------------------------------------
    def _build_fields(self) -> None:
        q = self.q
        above_eyes = _smoothstep((-0.02 - q[:, 1]) / 0.12)  # brows/forehead, not the eyes
        upper_face = _smoothstep((0.35 - q[:, 1]) / 0.2)
        lower = self.lower
        upper_mouth = (1.0 - lower) * _smoothstep((q[:, 1] - 0.3) / 0.25)  # between nose and mouth line
        near_mouth = np.exp(-(((q[:, 0] - self.mouth_centre[0]) / (self.mouth_half_width + 0.25)) ** 2))
        f: dict[str, np.ndarray] = {}

        def sides(fn):
            return fn("l", -1.0) + fn("r", 1.0)

        # AU01 inner brow raiser
        f["AU01"] = sides(lambda s, sg: self._handles(BROW_INNER[s], (-0.01 * sg, -0.12), 0.12, above_eyes)) \
            + sides(lambda s, sg: self._handles(UPPER_LID[s][3:], (0, -0.012), 0.05))
        # AU02 outer brow raiser
        f["AU02"] = sides(lambda s, sg: self._handles(BROW_OUTER[s], (0.005 * sg, -0.10), 0.14, above_eyes)) \
            + sides(lambda s, sg: self._handles(BROW_MID[s], (0, -0.05), 0.12, above_eyes))
        # AU04 brow lowerer: brows down and together, lids pressed a little
        f["AU04"] = sides(lambda s, sg: self._handles(BROW_INNER[s], (-0.05 * sg, 0.08), 0.11, upper_face)) \
            + sides(lambda s, sg: self._handles(BROW_MID[s] + BROW_OUTER[s], (-0.015 * sg, 0.045), 0.12, upper_face)) \
            + sides(lambda s, sg: self._handles(UPPER_LID[s], (0, 0.012), 0.04))
        # AU05 upper lid raiser (most at the lid's middle)
        lid_w = np.array([0.45, 0.75, 0.95, 1.0, 0.95, 0.75, 0.45])
        f["AU05"] = sides(lambda s, sg: self._gauss(q[list(UPPER_LID[s])], np.stack([np.zeros(7), -0.06 * lid_w], 1), 0.035))
        # AU06 cheek raiser: cheeks up, lower lids pushed up (crow's feet squint)
        f["AU06"] = sides(lambda s, sg: self._handles(CHEEK[s], (0, -0.06), 0.16, 1 - above_eyes)) \
            + sides(lambda s, sg: self._handles(LOWER_LID[s], (0, -0.03), 0.035))
        # AU07 lid tightener: lower lids up, upper lids slightly down
        f["AU07"] = sides(lambda s, sg: self._handles(LOWER_LID[s], (0, -0.035), 0.04)) \
            + sides(lambda s, sg: self._handles(UPPER_LID[s], (0, 0.012), 0.03))
        # AU09 nose wrinkler: alae and upper lip up, inner brows down
        f["AU09"] = sides(lambda s, sg: self._handles(NOSE_ALAE[s], (-0.012 * sg, -0.07), 0.09)) \
            + sides(lambda s, sg: self._handles(BROW_INNER[s], (0, 0.03), 0.08, upper_face)) \
            + self._handles(OUTER_LIP_UPPER[2:-2], (0, -0.025), 0.1, upper_mouth)
        # AU10 upper lip raiser: upper lip up, more to the sides (squared upper lip)
        cen = np.array([[u, float(np.interp(u, self._mouth_line_u, self._mouth_line_v))] for u in (-0.18, 0.18)])
        f["AU10"] = self._gauss(cen, np.array([[0, -0.075], [0, -0.075]]), 0.13, upper_mouth * near_mouth) \
            + sides(lambda s, sg: self._handles(NOSE_ALAE[s], (0, -0.02), 0.07))
        # AU12 lip corner puller (sided): corners out and up, cheek follows
        for s, sg in (("l", -1.0), ("r", 1.0)):
            side_w = self.side_r if s == "r" else self.side_l
            f[f"AU12_{s}"] = (self._handles(MOUTH_CORNERS[s], (0.10 * sg, -0.075), 0.14)
                              + self._handles(CHEEK[s], (0.01 * sg, -0.025), 0.15)) * side_w[:, None]
            # AU14 dimpler (sided): corners tightened inward and slightly up
            f[f"AU14_{s}"] = (self._handles(MOUTH_CORNERS[s], (-0.035 * sg, -0.02), 0.08)
                              + self._gauss(q[list(MOUTH_CORNERS[s])].mean(0) + [0.12 * sg, 0.0],
                                            [[-0.03 * sg, 0.0]], 0.08)) * side_w[:, None]
        f["AU12"] = f["AU12_l"] + f["AU12_r"]
        f["AU14"] = f["AU14_l"] + f["AU14_r"]
        # AU15 lip corner depressor
        f["AU15"] = sides(lambda s, sg: self._handles(MOUTH_CORNERS[s], (0.015 * sg, 0.09), 0.13))
        # AU17 chin raiser: chin up, lower lip pushed up
        f["AU17"] = self._handles(CHIN, (0, -0.05), 0.16, lower) \
            + self._handles(OUTER_LIP_LOWER[3:-3], (0, -0.02), 0.08, lower)
        # AU20 lip stretcher: corners sideways, slightly down
        f["AU20"] = sides(lambda s, sg: self._handles(MOUTH_CORNERS[s], (0.09 * sg, 0.015), 0.13))
        # AU23 lip tightener: the red of the lips narrows, corners in
        f["AU23"] = self._handles(OUTER_LIP_UPPER[1:-1], (0, 0.028), 0.035, upper_mouth) \
            + self._handles(OUTER_LIP_LOWER[1:-1], (0, -0.03), 0.035, lower * near_mouth) \
            + sides(lambda s, sg: self._handles(MOUTH_CORNERS[s], (-0.03 * sg, 0), 0.06))
        # AU25 lips part: upper inner lip up a little, lower lip down
        f["AU25"] = self._handles(INNER_LIP_UPPER[1:-1], (0, -0.025), 0.05, (1 - lower) * near_mouth) \
            + self._gauss(np.array([[self.mouth_centre[0], self.mouth_centre[1] + 0.05]]), [[0, 0.06]], 0.16,
                          lower * near_mouth)
        # AU26 jaw drop: the lower face rotates down about the jaw joints
        ramp = np.clip((q[:, 1] - 0.3) / max(self.chin_v - 0.3, 0.3), 0.0, 1.2)
        width = np.exp(-((q[:, 0] / 0.85) ** 4))
        jaw = np.zeros((N_LM, 2))
        jaw[:, 1] = 0.34 * ramp * lower * width
        jaw[:, 0] = -0.04 * q[:, 0] * lower * width * ramp  # the jaw narrows a little as it opens
        f["AU26"] = jaw
        # AU45 blink: upper lids close onto the lower lids, whatever this eye's opening is
        blink = np.zeros((N_LM, 2))
        for s in ("l", "r"):
            up, lo = list(UPPER_LID[s]), list(LOWER_LID[s])
            gap = q[lo] - q[up]
            handles = self._gauss(q[up], gap * 0.9, 0.03, 1 - above_eyes * 0.5)
            blink += handles
            blink[up] = gap * 0.9
            blink[lo] = -gap * 0.1
        f["AU45"] = blink
        # speech articulator: lip rounding (corners toward the middle, lips pushed out)
        f["round"] = sides(lambda s, sg: self._handles(MOUTH_CORNERS[s], (-0.10 * sg, 0.0), 0.1)) \
            + self._handles(OUTER_LIP_UPPER[3:-3], (0, -0.012), 0.05, upper_mouth) \
            + self._handles(OUTER_LIP_LOWER[3:-3], (0, 0.012), 0.05, lower)
        for name, field in f.items():
            self.fields[name] = self._finish_eyes(field)

    def morph(self, face_length: float = 0.0, jaw_width: float = 0.0, eye_spacing: float = 0.0,
              nose_length: float = 0.0, mouth_width: float = 0.0) -> np.ndarray:
        """Face-shape change for deriving a new identity: ``(478, 2)`` offsets, IOD units.

        ``face_length``: the lower face stretches down (chin moves by this much);
        ``jaw_width``: the lower face widens (relative); ``eye_spacing``: each eye (with its
        brow) moves outward by half of this; ``nose_length``: the nose tip and alae move down;
        ``mouth_width``: each corner moves outward by half of this.
        """
        q = self.q
        out = np.zeros((N_LM, 2))
        below_eyes = _smoothstep((q[:, 1] - 0.15) / 0.6)
        span = max(self.chin_v - 0.15, 0.3)
        out[:, 1] += face_length * np.clip((q[:, 1] - 0.15) / span, 0.0, 1.2) * below_eyes
        out[:, 0] += jaw_width * q[:, 0] * _smoothstep((q[:, 1] - 0.35) / 0.8)
        for s, sg in (("l", -1.0), ("r", 1.0)):
            eye = list(UPPER_LID[s] + LOWER_LID[s])
            out += self._gauss(q[eye].mean(0, keepdims=True), [[eye_spacing / 2 * sg, 0.0]], 0.22)
            out += self._handles(MOUTH_CORNERS[s], (mouth_width / 2 * sg, 0.0), 0.12)
        nose_tip = q[[1, 2, 98, 327]].mean(0, keepdims=True)
        out += self._gauss(nose_tip, [[0.0, nose_length]], 0.12, 1.0 - self.lower)
        return self._finish_eyes(out)

    # --- animation ---------------------------------------------------------------------------------
    @staticmethod
    def channel_names() -> tuple[str, ...]:
        """Intensity channels :meth:`deform` takes, in order: the 17 AUs (AU12/AU14 as their
        left+right halves), then :data:`EXTRA_FIELDS`."""
        names: list[str] = []
        for au in AU_NAMES:
            if au in SIDED_AUS:
                names += [f"{au}_l", f"{au}_r"]
            else:
                names.append(au)
        return tuple(names) + EXTRA_FIELDS

    def basis(self) -> np.ndarray:
        """All fields as one ``(C, 478, 2)`` array in :meth:`channel_names` order (IOD units)."""
        return np.stack([self.fields[n] for n in self.channel_names()])

    def deform(self, weights: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
        """Expression landmarks for one frame or a batch.

        Args:
            weights: ``(C,)`` or ``(T, C)`` intensities in :meth:`channel_names` order.
        Returns:
            ``(478, 2)`` or ``(T, 478, 2)`` landmark positions in pixels (before head pose).
        """
        basis = self.basis() if basis is None else basis
        w = np.asarray(weights, np.float64)
        single = w.ndim == 1
        w = np.atleast_2d(w)
        duv = np.einsum("tc,cnk->tnk", w, basis)
        q = self.q[None] + duv
        q = self._guard(q)
        pts = self.frame.origin + (q[..., :1] * self.frame.ex + q[..., 1:2] * self.frame.ey) * self.frame.iod
        return pts[0] if single else pts

    @staticmethod
    def _guard(q: np.ndarray) -> np.ndarray:
        """Lips and lids never pass through each other (``q``: ``(T, 478, 2)``, local units)."""
        for up, lo in ((INNER_LIP_UPPER[1:-1], INNER_LIP_LOWER[1:-1]),
                       (UPPER_LID["l"], LOWER_LID["l"]), (UPPER_LID["r"], LOWER_LID["r"])):
            up, lo = list(up), list(lo)
            vu, vl = q[:, up, 1], q[:, lo, 1]
            crossed = vl < vu
            if crossed.any():
                mid = (vu + vl) / 2
                q[:, up, 1] = np.where(crossed, mid, vu)
                q[:, lo, 1] = np.where(crossed, mid, vl)
        return q

    def pose(self, pts: np.ndarray, yaw: float, pitch: float, roll: float, tx: float, ty: float,
             z: np.ndarray | None = None) -> np.ndarray:
        """Rotate ``pts`` (``(N, 2)`` px) in 3-D about a pivot behind the face, project
        orthographically, translate. ``z`` defaults to the neutral depth of the 478 landmarks."""
        pts = np.asarray(pts, np.float64)
        z = self.neutral[: len(pts), 2] if z is None else np.asarray(z, np.float64)
        iod = self.frame.iod
        pivot = np.array([*self.neutral[:, :2].mean(0), self.neutral[:, 2].mean() + 0.9 * iod])
        p = np.concatenate([pts, z[:, None]], 1) - pivot
        r = rotation_matrix(yaw, pitch, roll)
        out = p @ r.T + pivot
        return out[:, :2] + np.array([tx, ty])

    def lip_gap(self, pts: np.ndarray) -> np.ndarray:
        """Inner-lip gap (landmarks 13-14) in IOD units for ``(..., 478, 2)`` landmarks."""
        pts = np.asarray(pts)
        return np.linalg.norm(pts[..., 14, :] - pts[..., 13, :], axis=-1) / self.frame.iod


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation for the module's pose convention (degrees; image axes x right, y down,
    z away from the camera): yaw > 0 moves the nose toward +x, pitch > 0 moves it up (-y),
    roll > 0 turns the face counter-clockwise on screen."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    # yaw about the image's vertical axis: the nose (z < 0) moves to +x for yaw > 0
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    # pitch about the horizontal axis: the nose moves to -y (up) for pitch > 0
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    # roll in the image plane: with y down, counter-clockwise on screen for roll > 0
    rz = np.array([[np.cos(r), np.sin(r), 0], [-np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx
