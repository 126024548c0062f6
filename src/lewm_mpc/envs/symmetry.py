"""Symmetries of top-down planar scenes: the eight rotations and reflections of a square.

Some environments look the same, and move the same, after the whole scene is turned by a
multiple of 90 degrees or mirrored: PushT's square arena, its round agent and its mirror-symmetric
T, with frictionless contacts and an isotropic controller. A trajectory transformed by one of
these maps is then another valid trajectory, with its frames transformed alike and every xy
action mapped by the same 2 x 2 matrix. Training on transformed windows (``TrainConfig.augment``)
shows the world model eight times the situations at no collection cost.

A :class:`PlanarSymmetry` is an orthogonal integer matrix ``M`` acting on offsets from the
scene's centre in the env's own coordinates, x to the right and y down (image row = y):
``p -> c + M (p - c)``. Frames (rows = y, columns = x) are transformed about the centre of the
pixel grid; actions ``(..., 2k)`` are read as ``k`` consecutive xy pairs (an action block of
``k`` env actions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class PlanarSymmetry:
    """One of the eight symmetries of a square (the dihedral group D4).

    Attributes:
        matrix: ``((m00, m01), (m10, m11))``, an orthogonal matrix of entries in {-1, 0, 1}
            mapping xy offsets from the centre.
    """

    matrix: tuple[tuple[int, int], tuple[int, int]]

    def __post_init__(self) -> None:
        array = np.asarray(self.matrix)
        valid = (
            array.shape == (2, 2)
            and np.all(np.isin(array, (-1, 0, 1)))
            and np.array_equal(array @ array.T, np.eye(2))
        )
        if not valid:
            raise ValueError(
                f"a planar symmetry needs an orthogonal 2 x 2 matrix of -1, 0, 1, got "
                f"{self.matrix!r}"
            )
        object.__setattr__(self, "matrix", tuple(tuple(int(v) for v in row) for row in array))

    @cached_property
    def array(self) -> np.ndarray:
        """The matrix as float64 (2, 2), read-only."""
        array = np.asarray(self.matrix, np.float64)
        array.setflags(write=False)
        return array

    @property
    def is_rotation(self) -> bool:
        """Determinant +1 (a rotation); False for a reflection."""
        return bool(round(np.linalg.det(self.array)) == 1)

    @property
    def angle(self) -> float:
        """For a rotation, its angle; for a reflection ``M``, the angle of ``M F`` where
        ``F = diag(-1, 1)`` mirrors x (so that ``M = R(angle) F``). Radians, in the env's
        coordinates."""
        m = self.array if self.is_rotation else self.array @ np.diag([-1.0, 1.0])
        return math.atan2(m[1, 0], m[0, 0])

    @property
    def name(self) -> str:
        """e.g. ``"rotate 90"`` or ``"mirror 0"`` (the mirror of ``angle`` 0 flips x)."""
        degrees = round(math.degrees(self.angle)) % 360
        return f"{'rotate' if self.is_rotation else 'mirror'} {degrees}"

    def points(self, xy: np.ndarray, center: float | np.ndarray) -> np.ndarray:
        """(..., 2) positions -> the same, mapped about ``center`` (a scalar or (2,) point)."""
        xy = np.asarray(xy, np.float64)
        return center + (xy - center) @ self.array.T

    def vectors(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) velocities or offsets -> the same, mapped (no centre)."""
        return np.asarray(xy, np.float64) @ self.array.T

    def actions(self, actions: np.ndarray) -> np.ndarray:
        """(..., 2k) actions read as ``k`` xy pairs -> the same shape and dtype, mapped.

        Raises:
            ValueError: The last axis is not a whole number of xy pairs.
        """
        actions = np.asarray(actions)
        if actions.ndim == 0 or actions.shape[-1] % 2:
            raise ValueError(
                f"actions must end in a whole number of xy pairs (..., 2k), got {actions.shape}"
            )
        pairs = actions.reshape(*actions.shape[:-1], -1, 2)  # (..., k, 2)
        mapped = pairs @ self.array.T.astype(actions.dtype)  # (..., k, 2)
        return mapped.reshape(actions.shape)

    def images(self, frames: np.ndarray) -> np.ndarray:
        """(..., H, W, C) square frames -> the same, mapped about the grid's centre.

        Raises:
            ValueError: Frames are not square (a turn by 90 degrees would change their shape).
        """
        frames = np.asarray(frames)
        if frames.ndim < 3 or frames.shape[-3] != frames.shape[-2]:
            raise ValueError(f"frames must be (..., S, S, C) squares, got {frames.shape}")
        (m00, m01), (m10, m11) = self.matrix
        out = frames
        if m00 == 0:  # x and y swap: transpose the grid first
            out = np.swapaxes(out, -3, -2)
            column, row = m01, m10  # after the swap: new x = m01 * old y, new y = m10 * old x
        else:
            column, row = m00, m11
        if column < 0:
            out = out[..., :, ::-1, :]
        if row < 0:
            out = out[..., ::-1, :, :]
        return np.ascontiguousarray(out)

    def inverse(self) -> PlanarSymmetry:
        """The symmetry that undoes this one."""
        return PlanarSymmetry(tuple(tuple(int(v) for v in row) for row in self.array.T))


def square_symmetries() -> tuple[PlanarSymmetry, ...]:
    """The eight symmetries of a square, identity first: four rotations, then four mirrors."""
    rotations = (((1, 0), (0, 1)), ((0, -1), (1, 0)), ((-1, 0), (0, -1)), ((0, 1), (-1, 0)))
    mirror = np.diag([-1, 1])
    elements = [PlanarSymmetry(m) for m in rotations]
    elements += [PlanarSymmetry(tuple(map(tuple, np.asarray(m) @ mirror))) for m in rotations]
    return tuple(elements)


@dataclass(frozen=True)
class SceneSymmetries:
    """The symmetries of an env's scene (``EnvDefinition.symmetries``) and how they act on its
    states.

    Attributes:
        elements: the symmetries, identity first (e.g. :func:`square_symmetries`).
        transform_state: ``(states (..., Ds), symmetry) -> states`` of the transformed scene.
    """

    elements: tuple[PlanarSymmetry, ...]
    transform_state: Callable[[np.ndarray, PlanarSymmetry], np.ndarray]

    def __post_init__(self) -> None:
        elements = tuple(self.elements)
        if not elements or elements[0].matrix != ((1, 0), (0, 1)):
            raise ValueError("SceneSymmetries.elements must start with the identity")
        object.__setattr__(self, "elements", elements)

    def states_per_window(self, states: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """(B, ..., Ds) states, window ``b`` transformed by ``elements[choice[b]]``: float64."""
        out = np.array(states, dtype=np.float64)
        for index in np.unique(choice):
            windows = choice == index
            out[windows] = self.transform_state(out[windows], self.elements[int(index)])
        return out
