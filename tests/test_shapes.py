import json
import math
import warnings

import numpy as np
import pytest
import torch
import trimesh

from nteach.bench.targets import tail_quality
from nteach.cli import main
from nteach.errors import UserError
from nteach.inr import Budget, Fit, Siren, grid
from nteach.inr.experiment import FitConfig, build_fit, guess_signal, load_signal, run_fit
from nteach.inr.metrics import chamfer, iou
from nteach.inr.shapes import ShapeSignal, load_mesh
from nteach.teaching import Teacher

SMALL = {"resolution": 16, "surface_points": 500}


@pytest.fixture
def sphere(tmp_path):
    """An icosphere of radius 2 centred at (5, 5, 5): normalised, it has radius 0.9 around the origin."""
    path = tmp_path / "ball.off"
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=2.0)
    mesh.apply_translation((5.0, 5.0, 5.0))
    mesh.export(path)
    return path


def test_grid_then_near_surface_points(sphere):
    signal = load_mesh(sphere, "occupancy", **SMALL)
    assert len(signal) == 16**3 + 500 and signal.coords.shape == (4596, 3)
    assert torch.equal(signal.coords[:16**3], grid((16, 16, 16)))
    radii = signal.coords[16**3:].norm(dim=1)
    assert (radii - 0.9).abs().mean() < 0.03  # surface samples plus noise of sigma 0.02
    assert signal.coords.abs().max() <= 1.0 and signal.targets.shape == (4596, 1)


def test_occupancy_and_sdf_of_a_sphere_at_known_points(sphere):
    occupancy = load_mesh(sphere, "occupancy", **SMALL)
    radii = occupancy.coords.norm(dim=1)
    values = occupancy.targets[:, 0]
    assert set(values.unique().tolist()) == {0.0, 1.0}
    assert torch.all(values[radii < 0.85] == 1) and torch.all(values[radii > 0.92] == 0)
    sdf = load_mesh(sphere, "sdf", **SMALL)
    assert torch.allclose(sdf.targets[:, 0], radii - 0.9, atol=0.01)


def test_round_trip_is_perfect(sphere):
    occupancy = load_mesh(sphere, "occupancy", **SMALL)
    assert occupancy.evaluate(occupancy.targets) == {"iou": 1.0, "psnr": math.inf}
    sdf = load_mesh(sphere, "sdf", **SMALL)
    assert sdf.evaluate(sdf.targets) == {"iou": 1.0, "psnr": math.inf, "chamfer": 0.0}
    grown = sdf.evaluate(sdf.targets - 0.05)  # a sphere of radius 0.95
    assert 0.7 < grown["iou"] < 1 and grown["chamfer"] == pytest.approx(0.05, abs=0.01)


def test_iou_and_chamfer_exact_values():
    assert iou(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(1 / 3)
    assert iou(np.zeros(3), np.zeros(3)) == 1.0
    assert chamfer(np.zeros((1, 3)), np.array([[0, 0, 1.0], [0, 0, 2.0]])) == pytest.approx((1 + 1.5) / 2)
    assert chamfer(np.zeros((0, 3)), np.zeros((1, 3))) == math.inf


def test_open_mesh_warns_for_sdf_and_still_loads(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=3)
    mesh.update_faces(np.arange(len(mesh.faces)) >= 8)  # a small hole
    path = tmp_path / "holed.obj"
    mesh.export(path)
    with pytest.warns(UserWarning, match="not watertight: SDF signs are unreliable"):
        load_mesh(path, "sdf", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        occupancy = load_mesh(path, "occupancy", **SMALL)
    radii = occupancy.coords.norm(dim=1)
    values = occupancy.targets[:, 0]
    assert torch.all(values[radii < 0.5] == 1) and torch.all(values[radii > 0.95] == 0)


def test_bad_meshes(tmp_path, sphere):
    (tmp_path / "junk.off").write_text("garbage here")
    (tmp_path / "empty.obj").write_text("")
    plane = tmp_path / "plane.stl"
    trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]).export(plane)
    cases = [(tmp_path / "missing.off", {}, "no such mesh file"), (tmp_path / "junk.off", {}, "cannot read"),
             (tmp_path / "empty.obj", {}, "has no triangles"), (plane, {}, "lies inside"),
             (sphere, {"kind": "volume"}, "unknown shape field"), (sphere, {"resolution": 4}, "at least 8")]
    for path, options, message in cases:
        with pytest.raises(UserError, match=message):
            load_mesh(path, **{"resolution": 16, "surface_points": 100, **options})


def test_scores_follow_the_distance_to_the_surface(sphere):
    signal = load_mesh(sphere, "sdf", **SMALL)
    distance = torch.from_numpy(np.abs(signal.distance))
    edges = signal.score("edges", lambda: signal.targets)
    assert torch.equal(edges.bool(), distance < 2 / 15)
    anchors = signal.score("expansive_edges:0.1", lambda: signal.targets).bool()
    assert anchors.sum() == math.ceil(0.1 * len(signal))
    assert distance[anchors].max() <= distance[~anchors].min()
    magnitude = signal.score("edge_magnitude", lambda: signal.targets)
    assert 0 < magnitude.min() and magnitude.max() <= 1 and magnitude[distance.argmin()] == magnitude.max()
    assert signal.score("laplacian_error", lambda: signal.targets).abs().max() == 0
    assert signal.score("laplacian_error", lambda: torch.zeros_like(signal.targets)).max() > 0
    with pytest.raises(UserError, match="no score named"):
        signal.score("corners", lambda: signal.targets)


def test_laplacian_loss_is_differentiable_and_zero_on_subsets(sphere):
    signal = load_mesh(sphere, "occupancy", **SMALL)
    predictions = torch.zeros_like(signal.targets, requires_grad=True)
    loss = signal.extra_loss("laplacian", predictions, None)
    loss.backward()
    assert loss.item() > 0 and predictions.grad.abs().sum() > 0
    assert signal.extra_loss("laplacian", signal.targets.clone(), None).item() == 0
    assert signal.extra_loss("laplacian", predictions, torch.arange(5)).item() == 0


def test_export_in_the_mesh_units_and_pictures(sphere, tmp_path):
    signal = load_mesh(sphere, "occupancy", **SMALL)
    signal.export(signal.targets, tmp_path)
    assert (tmp_path / "preview.png").stat().st_size > 1000
    mesh = trimesh.load(tmp_path / "reconstruction.obj", force="mesh")
    assert len(mesh.faces) > 100 and np.allclose(mesh.bounds, [[3, 3, 3], [7, 7, 7]], atol=0.2)
    picture = signal.preview(torch.zeros_like(signal.targets))  # no surface: a blank render
    assert picture.ndim == 3 and picture.shape[2] == 3 and 0 <= picture.min() and picture.max() <= 1
    assert signal.selection_picture(torch.ones(len(signal))).shape == (16, 33)


def test_short_fit_improves_the_occupancy_iou(tmp_path):
    path = tmp_path / "small.stl"
    trimesh.creation.icosphere(subdivisions=2, radius=0.3).export(path)
    signal = load_mesh(path, "occupancy", **SMALL)
    torch.manual_seed(0)
    fit = Fit(signal, Siren(3, 1, width=32, depth=2), Teacher("uniform", len(signal), seed=0),
              Budget(steps=80), lr=1e-3, eval_every=80)
    fit.run(show_progress=False)
    assert fit.history[-1]["iou"] > fit.history[0]["iou"] + 0.3


def test_meshes_are_guessed_and_cli_compare_runs(sphere, tmp_path, capsys):
    assert guess_signal("bunny.OFF") == "occupancy" and guess_signal("x.stl") == "occupancy"
    assert isinstance(load_signal(FitConfig(image=str(sphere), signal="sdf", **SMALL)), ShapeSignal)
    out = tmp_path / "cmp"
    code = main(["compare", str(sphere), "--signal", "occupancy", "--teachers", "full,uniform",
                 "--steps", "80", "--lr", "0.003", "--resolution", "16", "--surface-points", "500", "--width",
                 "16", "--depth", "2", "--out", str(out), "--quiet"])
    assert code == 0 and (out / "reconstructions.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    uniform = results["results"]["uniform"]
    q_end = tail_quality(uniform["history"], "iou")  # targets from uniform's end: it, 0.03 and 0.01 below
    targets = [float(t) for t in uniform["time_to_target"]]
    assert results["signal"]["metric"] == "iou" and q_end > uniform["history"][0]["iou"] + 0.1
    assert targets == pytest.approx([q_end - 0.03, q_end - 0.01, q_end], abs=1e-3)
    assert "IOU at budget" in capsys.readouterr().out


def test_sdf_fit_summary_keeps_the_smallest_chamfer(sphere, tmp_path):
    config = FitConfig(image=str(sphere), signal="sdf", width=16, depth=2, steps=6, eval_every=2,
                       teacher="uniform", out=str(tmp_path / "run"), **SMALL)
    fit, folder = run_fit(config, show_progress=False)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best_chamfer"] == min(r["chamfer"] for r in fit.history)
    for name in ("reconstruction.obj", "preview.png", "selection_heatmap.png"):
        assert (folder / name).stat().st_size > 0


def test_soft_mining_teaches_a_grid_only_shape_and_refuses_off_grid_points(sphere, tmp_path, capsys):
    small = {"width": 16, "depth": 2, "steps": 3, "teacher": "soft_mining", "resolution": 8}
    fit, _ = run_fit(FitConfig(image=str(sphere), surface_points=0, out=str(tmp_path / "grid"), **small),
                     show_progress=False)
    assert fit.step == 3 and fit.counts.sum() > 0
    code = main(["fit", str(sphere), "--teacher", "soft_mining", "--steps", "3", "--resolution", "8",
                 "--surface-points", "50", "--out", str(tmp_path / "mixed"), "--quiet"])
    assert code == 2 and "--surface-points 0" in capsys.readouterr().err
    assert not (tmp_path / "mixed").exists()  # refused before the run folder was made


def test_paced_sweep_anchors_most_of_each_step_on_the_surface_of_a_shape_only(sphere, tmp_path):
    small = {"width": 16, "depth": 2, "steps": 4, "resolution": 8, "surface_points": 0, "ratio": 0.25}
    fit, _ = run_fit(FitConfig(image=str(sphere), signal="sdf", out=str(tmp_path / "sdf"), **small),
                     show_progress=False)
    signal = fit.signal
    anchors = fit.teacher.state["anchors"]
    assert fit.teacher.strategy.anchor_share == 0.7 and len(anchors) == round(0.7 * 0.25 * 512) == 90
    nearest = torch.from_numpy(np.abs(signal.distance)).argsort(stable=True)[:90]
    assert anchors.tolist() == sorted(nearest.tolist())  # the 90 grid points nearest the surface
    assert sorted(fit.teacher.state["paced"].tolist() + anchors.tolist()) == list(range(512))
    assert fit.counts[anchors].tolist() == [4.0] * 90  # each trained at every step
    assert fit.counts.sum() == 4 * round(0.25 * 512)
    photo = run_fit(FitConfig(image="camera", size=16, width=16, depth=2, steps=2, out=str(tmp_path / "p")),
                    show_progress=False)[0]
    assert photo.teacher.strategy.anchor_share == 0.0 and "anchors" not in photo.teacher.state
    config = FitConfig(image=str(sphere), signal="sdf", **small)
    assert build_fit(config, "paced_sweep", {"anchor_share": 0.0}, signal).teacher.strategy.anchor_share == 0
