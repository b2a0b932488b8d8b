"""Head pose as yaw, pitch and roll in degrees, from and to a 3x3 rotation (camera x right, y up,
z towards the viewer; the rotation takes MediaPipe's canonical face model to the camera).

Decomposition ``R = Ry(yaw) @ Rx(-pitch) @ Rz(roll)``: ``yaw = atan2(R[0,2], R[2,2])`` > 0 when the
face turns towards the image's right side (the subject's left); ``pitch = asin(R[1,2])`` > 0 when
the face looks up; ``roll = atan2(R[1,0], R[1,1])`` > 0 when the head tilts counter-clockwise as
seen in the image.
"""

from __future__ import annotations

import math

import numpy as np


def euler_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a 3x3 rotation (see the module docstring).

    The matrix is first projected to the nearest rotation (SVD), so a scaled or slightly
    non-orthogonal input is fine.
    """
    u, _, vt = np.linalg.svd(np.asarray(rotation, dtype=np.float64))
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    yaw = math.degrees(math.atan2(r[0, 2], r[2, 2]))
    pitch = math.degrees(math.asin(float(np.clip(r[1, 2], -1.0, 1.0))))
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of :func:`euler_from_rotation`: ``Ry(yaw) @ Rx(-pitch) @ Rz(roll)`` (degrees)."""
    a, b, c = (math.radians(v) for v in (yaw, -pitch, roll))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz
