"""3-D shapes from a mesh file: a signed-distance or occupancy field at R^3 grid points plus points near
the surface.

The mesh is scaled into [-0.9, 0.9]^3. The first R^3 coordinates are the grid (row-major over x, y, z,
as ``grid``), the rest are surface samples moved by Gaussian noise. Signed distances (negative inside)
come from point-cloud-utils, whose signs follow the generalized winding number; occupancy is 1 where
the distance is negative. Both fields are fitted with MSE, occupancy on its 0/1 values as INT/NINT do.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import point_cloud_utils as pcu
import torch
import trimesh
from skimage import io, util

from nteach.errors import UserError
from nteach.inr import meshes
from nteach.inr.metrics import chamfer, iou, psnr
from nteach.inr.signals import LAPLACIAN_ERROR_SCALE, fraction_in_name, grid
from nteach.runs import atomic_write

SHAPE_KINDS = ("sdf", "occupancy")
EXTENT = 0.9  # the mesh's longest side spans [-EXTENT, EXTENT]
NEAR_SURFACE_SIGMA = 0.02  # standard deviation of the noise added to surface samples
CHAMFER_POINTS = 4096  # points sampled on each marching-cubes surface for the Chamfer distance


@dataclass
class ShapeSignal:
    """A signed-distance ("sdf") or occupancy field of a mesh at N = R^3 + M points."""

    name: str
    kind: str  # "sdf" or "occupancy"
    points: np.ndarray  # N x 3 in [-1, 1], the R^3 grid first
    distance: np.ndarray  # N signed distances to the surface, negative inside
    resolution: int  # R
    centre: np.ndarray = field(default_factory=lambda: np.zeros(3))  # mesh units = points / scale + centre
    scale: float = 1.0
    metric = "iou"

    def __post_init__(self) -> None:
        self.coords = torch.from_numpy(np.ascontiguousarray(self.points, dtype=np.float32))
        values = self.distance if self.kind == "sdf" else (self.distance < 0)
        self.targets = torch.from_numpy(np.asarray(values, dtype=np.float32)[:, None])
        self.level = 0.0 if self.kind == "sdf" else 0.5
        self.voxel = 2.0 / (self.resolution - 1)
        r = self.resolution  # the target's surface from its distances: smoother than from 0/1 occupancy
        self.target_surface = meshes.marching_cubes(self.distance[:r**3].reshape(r, r, r), 0.0)
        self.target_points = self._surface_points(*self.target_surface)
        self.target_render: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.coords)

    def volume(self, values: torch.Tensor) -> np.ndarray:
        """The grid part of (N, 1) values as an R x R x R array indexed [x, y, z]."""
        r = self.resolution
        return values.detach()[:r**3, 0].cpu().numpy().reshape(r, r, r)

    def inside(self, volume: np.ndarray) -> np.ndarray:
        return volume < 0 if self.kind == "sdf" else volume > 0.5

    def _surface_points(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return meshes.sample_surface(vertices, faces, CHAMFER_POINTS, np.random.default_rng(0))

    def evaluate(self, predictions: torch.Tensor) -> dict[str, float]:
        """IoU of the occupancy on the grid, PSNR of the field values (what the loss sees; occupancy
        clipped to [0, 1], SDF over the target's range) and, for SDF, the Chamfer distance between the
        marching-cubes surfaces of prediction and target (in the [-1, 1] frame)."""
        predicted = self.volume(predictions)
        values = predictions.detach().cpu()
        data_range = 1.0 if self.kind == "occupancy" else float(self.targets.max() - self.targets.min())
        quality = {"iou": iou(self.inside(predicted), self.inside(self.volume(self.targets))),
                   "psnr": psnr(values.clamp(0, 1) if self.kind == "occupancy" else values, self.targets,
                                data_range=data_range)}
        if self.kind == "sdf":
            surface = meshes.marching_cubes(predicted, self.level)
            quality["chamfer"] = chamfer(self._surface_points(*surface), self.target_points)
        return quality

    def export(self, predictions: torch.Tensor, folder: Path) -> None:
        """reconstruction.obj (marching cubes of the fitted grid, in the mesh's own units) and preview.png
        (target left, fit right)."""
        folder = Path(folder)
        vertices, faces = meshes.marching_cubes(self.volume(predictions), self.level)
        if len(faces) == 0:
            warnings.warn(f"the fitted field never crosses {self.level}: reconstruction.obj is empty",
                          stacklevel=2)
        mesh = trimesh.Trimesh(vertices / self.scale + self.centre, faces, process=False)
        atomic_write(folder / "reconstruction.obj", lambda tmp: tmp.write_text(
            mesh.export(file_type="obj") if len(faces) else "# empty: the field has no surface\n"))
        pixels = util.img_as_ubyte(np.concatenate([self.preview(self.targets), self.preview(predictions)], 1))
        atomic_write(folder / "preview.png", lambda tmp: io.imsave(tmp, pixels, check_contrast=False))

    def preview(self, predictions: torch.Tensor) -> np.ndarray:
        """A shaded render of the marching-cubes surface of the grid part (H x W x 3 in [0, 1])."""
        if predictions is self.targets:
            if self.target_render is None:
                self.target_render = meshes.render(*self.target_surface)
            return self.target_render
        return meshes.render(*meshes.marching_cubes(self.volume(predictions), self.level))

    def selection_picture(self, frequency: torch.Tensor) -> np.ndarray:
        """Seen along z, y up: the grid part averaged over z (left), and the near-surface points averaged
        in the same x-y cells (right; 0 where none fall), with one column of 0 between."""
        r = self.resolution
        values = frequency.detach().cpu().numpy().reshape(-1)
        on_grid = values[:r**3].reshape(r, r, r).mean(axis=2)
        cells = np.clip(np.rint((self.points[r**3:, :2] + 1) / self.voxel), 0, r - 1).astype(int)
        total, count = np.zeros((r, r)), np.zeros((r, r))
        np.add.at(total, (cells[:, 0], cells[:, 1]), values[r**3:])
        np.add.at(count, (cells[:, 0], cells[:, 1]), 1)
        near = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        return np.concatenate([np.flipud(on_grid.T), np.zeros((r, 1)), np.flipud(near.T)], axis=1)

    def _nearest_node(self, volume: np.ndarray) -> np.ndarray:
        """Per point (N,): the grid points' own values, then the near-surface points' nearest grid node's."""
        r = self.resolution
        nodes = np.clip(np.rint((self.points[r**3:] + 1) / self.voxel), 0, r - 1).astype(int)
        return np.concatenate([volume.reshape(-1), volume[nodes[:, 0], nodes[:, 1], nodes[:, 2]]])

    def score(self, name: str, predict: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Per-point scores (N,) float32 on the CPU, the shape analogues of the image scores:

        "edges" (0/1: within one grid spacing h of the surface, |sdf| < h), "expansive_edges:RHO"
        (0/1: the RHO fraction of points closest to the surface), "edge_magnitude" (h / (|sdf| + h):
        1 on the surface, 1/2 one spacing away) and "laplacian_error" (1e-5 (3-D 7-point Laplacian
        of the predicted grid - that of the target)^2, EVOS's term in 3-D; off-grid points take
        their nearest node's value).
        """
        kind, _, argument = name.partition(":")
        distance = np.abs(self.distance)
        if name == "edges":
            values = distance < self.voxel
        elif kind == "expansive_edges" and argument:
            count = math.ceil(fraction_in_name(argument, name) * len(distance))
            values = np.zeros(len(distance), dtype=bool)
            values[np.argsort(distance, kind="stable")[:count]] = True
        elif name == "edge_magnitude":
            values = self.voxel / (distance + self.voxel)
        elif name == "laplacian_error":
            difference = (meshes.laplacian_3d(self.volume(predict()))
                          - meshes.laplacian_3d(self.volume(self.targets)))
            values = self._nearest_node(LAPLACIAN_ERROR_SCALE * difference**2)
        else:
            raise UserError(f"shapes have no score named {name!r}")
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    def extra_loss(self, name: str, predictions: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        """The "laplacian" term: mean squared difference of the 3-D Laplacians of the predicted and target
        grids.

        It needs the whole grid, so it is zero on steps that trained on a subset (``indices``).
        """
        if name != "laplacian":
            raise UserError(f"shapes have no loss term named {name!r}")
        if indices is not None:
            return predictions.new_zeros(())
        r = self.resolution
        predicted = predictions[:r**3, 0].reshape(r, r, r)
        target = self.targets[:r**3, 0].to(predictions.device).reshape(r, r, r)
        return (meshes.torch_laplacian_3d(predicted) - meshes.torch_laplacian_3d(target)).pow(2).mean()


def _read_mesh(path: Path) -> trimesh.Trimesh:
    if not path.is_file():
        raise UserError(f"no such mesh file: {path}")
    try:
        mesh = trimesh.load(str(path), force="mesh")
    except (ValueError, KeyError, IndexError, TypeError, OSError, NotImplementedError) as error:  # trimesh's
        raise UserError(f"cannot read {path} as a mesh: {str(error).splitlines()[0]}") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise UserError(f"{path} has no triangles")
    if mesh.extents.max() <= 0:
        raise UserError(f"{path} is a single point")
    return mesh


def load_mesh(path: str | Path, kind: str = "occupancy", resolution: int = 32, surface_points: int = 10000,
              seed: int = 0) -> ShapeSignal:
    """A shape signal from an .off / .obj / .ply / .stl / ... file (trimesh), on an R^3 grid
    (R = ``resolution``) plus ``surface_points`` near-surface points drawn with ``seed``.

    A mesh that is not watertight still loads: for "sdf" a warning says that the signs are unreliable
    near its holes.
    """
    path = Path(path)
    if kind not in SHAPE_KINDS:
        raise UserError(f"unknown shape field {kind!r}; use one of {', '.join(SHAPE_KINDS)}")
    if resolution < 8:
        raise UserError(f"resolution must be at least 8, got {resolution}")
    if surface_points < 0:
        raise UserError(f"surface points must be >= 0, got {surface_points}")
    mesh = _read_mesh(path)
    if kind == "sdf" and not mesh.is_watertight:
        warnings.warn(f"{path} is not watertight: SDF signs are unreliable near its holes "
                      "(they follow the generalized winding number); fitting anyway", stacklevel=2)
    centre, scale = mesh.bounds.mean(axis=0), 2 * EXTENT / mesh.extents.max()
    vertices = np.ascontiguousarray((mesh.vertices - centre) * scale, dtype=np.float64)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int32)
    generator = np.random.default_rng(seed)
    near = meshes.sample_surface(vertices, faces, surface_points, generator)
    near = np.clip(near + generator.normal(0.0, NEAR_SURFACE_SIGMA, near.shape), -1.0, 1.0)
    points = np.concatenate([grid((resolution,) * 3).double().numpy(), near])
    distance, _, _ = pcu.signed_distance_to_mesh(points, vertices, faces)
    if not (distance[:resolution**3] < 0).any():
        raise UserError(f"no point of the {resolution}^3 grid lies inside {path} (an open or very thin "
                        "surface?); try a larger --resolution")
    return ShapeSignal(name=path.stem, kind=kind, points=points, distance=distance, resolution=resolution,
                       centre=centre, scale=scale)
