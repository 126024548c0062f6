"""World -> pixel maps: where a probed physical quantity appears in an env's observation.

A *view* maps probed quantities ``(..., P)`` (the env's probe target: Two-Room agent xy, Reacher
fingertip xy, PushT agent xy + block xy, Cube cube xyz) to ``(..., K, 2)`` continuous pixel
coordinates ``(column, row)`` in the observation image, one per *track* (PushT has two: agent and
block). Pixel ``k`` covers ``[k, k + 1)``. Each env's definition says which view it has
(``EnvDefinition.view``); :func:`lewm_mpc.envs.view_for_env` builds the view of a live env. The
MuJoCo envs get a pinhole projection through the camera they render with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class View(Protocol):
    """Maps probed quantities to pixel coordinates of the observation image."""

    @property
    def tracks(self) -> int:
        """Number K of points per quantity (e.g. agent and block)."""
        ...

    @property
    def track_dim(self) -> int:
        """Coordinates per track; track ``k`` reads columns ``[k * d, (k + 1) * d)``."""
        ...

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(..., K * track_dim) quantities -> (..., K, 2) pixel coordinates (column, row)."""
        ...


def _tracks_of(points: np.ndarray, tracks: int, dim: int) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] < tracks * dim:
        raise ValueError(
            f"expected (..., >= {tracks * dim}) points ({tracks} track(s) of {dim}), "
            f"got shape {points.shape}"
        )
    return points[..., : tracks * dim].reshape(*points.shape[:-1], tracks, dim)  # (..., K, d)


@dataclass(frozen=True)
class PlanarView:
    """Affine map of planar world coordinates: ``pixel = offset + matrix @ xy`` per track.

    Attributes:
        matrix: (2, 2) world -> pixel linear part.
        offset: (2,) pixel coordinates of the world origin.
        tracks: number of xy pairs per quantity.
    """

    matrix: tuple[tuple[float, float], tuple[float, float]]
    offset: tuple[float, float]
    tracks: int = 1

    @property
    def track_dim(self) -> int:
        """Two coordinates (x, y) per track."""
        return 2

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(..., 2K) world xy -> (..., K, 2) pixel (column, row)."""
        xy = _tracks_of(points, self.tracks, 2)  # (..., K, 2)
        return xy @ np.asarray(self.matrix).T + np.asarray(self.offset)  # (..., K, 2)


@dataclass(frozen=True)
class PinholeView:
    """Perspective projection through a camera looking down its own -z axis (MuJoCo's
    convention: x right, y up in the image).

    Attributes:
        position: (3,) camera position in the world (m).
        rotation: (3, 3) camera-to-world rotation (columns: camera x, y, z axes), row-major.
        fovy: vertical field of view in degrees.
        image_size: side of the square image in px.
        plane_z: height assumed for 2-d (planar) quantities; None: quantities are 3-d.
    """

    position: tuple[float, float, float]
    rotation: tuple[float, ...]
    fovy: float
    image_size: int
    plane_z: float | None = None

    @property
    def tracks(self) -> int:
        """One point per quantity."""
        return 1

    @property
    def track_dim(self) -> int:
        """2 (on the plane ``z = plane_z``) or 3."""
        return 3 if self.plane_z is None else 2

    @property
    def focal(self) -> float:
        """Focal length in px."""
        return 0.5 * self.image_size / np.tan(np.deg2rad(self.fovy) / 2)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(..., 2 or 3) world points -> (..., 1, 2) pixel (column, row)."""
        xyz = _tracks_of(points, 1, self.track_dim)  # (..., 1, d)
        if self.plane_z is not None:
            height = np.full((*xyz.shape[:-1], 1), self.plane_z)
            xyz = np.concatenate([xyz, height], axis=-1)  # (..., 1, 3)
        rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        camera = (xyz - np.asarray(self.position)) @ rotation  # (..., 1, 3) in camera axes
        depth = np.maximum(-camera[..., 2], 1e-9)  # in front of the camera: camera z < 0
        centre = self.image_size / 2
        column = centre + self.focal * camera[..., 0] / depth
        row = centre - self.focal * camera[..., 1] / depth  # image rows grow downwards
        return np.stack([column, row], axis=-1)  # (..., 1, 2)

    @classmethod
    def from_mujoco(
        cls, model: Any, camera: str, image_size: int, plane_z: float | None = None
    ) -> PinholeView:
        """The view of a named camera of a MuJoCo model, posed by forward kinematics at the
        model's reference configuration (exact for cameras fixed to the world)."""
        import mujoco

        camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if camera_id < 0:
            raise ValueError(f"the MuJoCo model has no camera named {camera!r}")
        if np.any(model.cam_sensorsize[camera_id] > 0):
            raise ValueError(f"camera {camera!r} uses sensor intrinsics; only fovy is supported")
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)  # camera poses
        return cls(
            position=tuple(float(v) for v in data.cam_xpos[camera_id]),
            rotation=tuple(float(v) for v in data.cam_xmat[camera_id]),
            fovy=float(model.cam_fovy[camera_id]),
            image_size=int(image_size),
            plane_z=plane_z,
        )


@dataclass(frozen=True)
class ScaledView:
    """A view of the same scene rendered at another image size: ``view``'s pixels times
    ``factor`` (e.g. display size / observation size).

    Exact for the views here: a pixel coordinate is proportional to the image side (planar maps
    scale with it; a pinhole's centre and focal length do too).

    Attributes:
        view: the view at the observation size.
        factor: new image side over the view's image side, > 0.
    """

    view: View
    factor: float

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"factor must be > 0, got {self.factor}")

    @property
    def tracks(self) -> int:
        """The wrapped view's tracks."""
        return self.view.tracks

    @property
    def track_dim(self) -> int:
        """The wrapped view's coordinates per track."""
        return self.view.track_dim

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(..., K * track_dim) quantities -> (..., K, 2) pixels of the rescaled image."""
        return self.view(points) * self.factor
