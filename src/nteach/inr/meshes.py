"""Mesh geometry for shape signals: surface sampling, marching cubes, a shaded render, 3-D Laplacians."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from scipy import ndimage
from skimage import measure

SURFACE_COLOUR = np.array([0.55, 0.70, 0.92])
LIGHT_OFFSET = (20.0, -25.0)  # the light sits this many degrees above and beside the camera


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int,
                   generator: np.random.Generator) -> np.ndarray:
    """``count`` points uniformly distributed over the triangles' area, (count, 3)."""
    if len(faces) == 0 or count <= 0:
        return np.zeros((0, 3))
    corners = vertices[faces]  # (F, 3, 3)
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    if areas.sum() == 0:
        return np.zeros((0, 3))
    chosen = corners[generator.choice(len(faces), size=count, p=areas / areas.sum())]
    r1, r2 = np.sqrt(generator.random((count, 1))), generator.random((count, 1))
    return (1 - r1) * chosen[:, 0] + r1 * (1 - r2) * chosen[:, 1] + r1 * r2 * chosen[:, 2]


def marching_cubes(volume: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` surface of an R^3 volume sampled on [-1, 1]^3: vertices (V, 3) in [-1, 1], faces (F, 3).

    Both are empty when the volume never crosses ``level``.
    """
    if not volume.min() < level < volume.max():
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    vertices, faces, _, _ = measure.marching_cubes(volume, level=level)
    return vertices * (2.0 / (volume.shape[0] - 1)) - 1.0, faces


def view_direction(elevation: float, azimuth: float) -> np.ndarray:
    """Unit vector towards a matplotlib 3-D camera at ``elevation``, ``azimuth`` (degrees) with y up."""
    elevation, azimuth = np.radians(elevation), np.radians(azimuth)
    flat = np.cos(elevation)
    return np.array([flat * np.sin(azimuth), np.sin(elevation), flat * np.cos(azimuth)])


def render(vertices: np.ndarray, faces: np.ndarray, pixels: int = 320, elevation: float = 20.0,
           azimuth: float = 30.0) -> np.ndarray:
    """A Lambert-shaded view of a mesh in [-1, 1]^3 (y up), as a pixels x pixels x 3 array in [0, 1]."""
    figure = Figure(figsize=(pixels / 100, pixels / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axis = figure.add_axes((0, 0, 1, 1), projection="3d")
    axis.view_init(elev=elevation, azim=azimuth, vertical_axis="y")
    axis.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
    axis.set_box_aspect((1, 1, 1), zoom=1.25)
    axis.set_axis_off()
    if len(faces):
        triangles = vertices[faces]
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        light = view_direction(elevation + LIGHT_OFFSET[0], azimuth + LIGHT_OFFSET[1])
        shade = 0.25 + 0.75 * np.abs(normals @ light)  # two-sided: faces may point either way
        colours = shade[:, None] * SURFACE_COLOUR
        axis.add_collection3d(Poly3DCollection(triangles, facecolors=colours, edgecolors=colours,
                                               linewidths=0.3))  # edges in the face colour hide seams
    else:
        axis.text2D(0.5, 0.5, "no surface", ha="center", va="center", color="0.5", transform=axis.transAxes)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3] / 255.0


def laplacian_3d(volume: np.ndarray) -> np.ndarray:
    """7-point Laplacian of an R^3 volume, borders repeated (the 3-D ``features.laplacian``)."""
    return ndimage.laplace(volume, mode="nearest")


def torch_laplacian_3d(volume: torch.Tensor) -> torch.Tensor:
    """``laplacian_3d`` for an R^3 tensor, differentiable and on the tensor's device."""
    padded = torch.nn.functional.pad(volume[None, None], (1,) * 6, mode="replicate")[0, 0]
    centre = padded[1:-1, 1:-1, 1:-1]
    return (padded[2:, 1:-1, 1:-1] + padded[:-2, 1:-1, 1:-1] + padded[1:-1, 2:, 1:-1]
            + padded[1:-1, :-2, 1:-1] + padded[1:-1, 1:-1, 2:] + padded[1:-1, 1:-1, :-2] - 6 * centre)
