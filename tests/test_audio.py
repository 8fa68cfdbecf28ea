import json
import math
import warnings

import numpy as np
import pytest
import soundfile
import torch

from nteach.cli import main
from nteach.errors import UserError
from nteach.inr import Budget, Fit, Siren
from nteach.inr.audio import AudioSignal, first_difference, load_audio
from nteach.inr.experiment import (
    AUDIO_FIRST_OMEGA_0,
    FitConfig,
    build_fit,
    guess_signal,
    load_signal,
    run_fit,
)
from nteach.inr.metrics import si_snr
from nteach.teaching import Teacher


def two_tones(rate: int = 8000, seconds: float = 0.05) -> np.ndarray:
    """Stereo: a 60 Hz tone left, a 100 Hz tone right; quick to fit, not trivial."""
    t = np.arange(round(rate * seconds)) / rate
    return np.stack([0.6 * np.sin(2 * np.pi * 60 * t), 0.4 * np.sin(2 * np.pi * 100 * t)], axis=1)


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "tones.wav"
    soundfile.write(path, two_tones(), 8000, subtype="FLOAT")
    return path


def test_coordinates_targets_and_round_trip(wav):
    signal = load_audio(wav)
    assert signal.coords.shape == (400, 1) and signal.targets.shape == (400, 2)
    assert signal.coords[0].item() == -1.0 and signal.coords[-1].item() == 1.0
    assert torch.all(torch.diff(signal.coords[:, 0]) > 0)
    assert signal.sample_rate == 8000 and signal.name == "tones" and len(signal) == 400
    assert signal.targets.abs().max() <= 1.0
    assert signal.evaluate(signal.targets) == {"psnr": math.inf, "si_snr": math.inf}


def test_psnr_uses_the_range_of_minus_one_to_one(wav):
    signal = load_audio(wav)
    shifted = signal.targets + 0.1  # mse 0.01 on a range of 2: 10 log10(4 / 0.01)
    assert signal.evaluate(shifted)["psnr"] == pytest.approx(10 * math.log10(400), abs=1e-3)


def test_resampling_clipping_and_mono(tmp_path):
    path = tmp_path / "long.flac"
    soundfile.write(path, two_tones(16000, 1.0), 16000)
    short = load_audio(path, sample_rate=8000, seconds=0.25)
    assert short.sample_rate == 8000 and short.targets.shape == (2000, 2)
    up = load_audio(path, sample_rate=22050)
    assert up.sample_rate == 22050 and len(up) == 22050
    mono = load_audio(path, seconds=0.1, mono=True)
    stereo = load_audio(path, seconds=0.1)
    assert mono.targets.shape == (1600, 1)
    assert torch.allclose(mono.targets[:, 0], stereo.targets.mean(dim=1), atol=1e-6)
    with pytest.warns(UserWarning, match="only 1.00 s long"):
        assert len(load_audio(path, seconds=3.0)) == 16000


def test_ogg_stereo_channels(tmp_path):
    path = tmp_path / "tones.ogg"
    soundfile.write(path, two_tones(), 8000)
    signal = load_audio(path)
    assert signal.targets.shape[1] == 2
    assert signal.targets[:, 0].abs().max() > signal.targets[:, 1].abs().max()  # 0.6 left, 0.4 right


def test_si_snr_matches_a_hand_computed_value():
    target = torch.tensor([1.0, -1.0, 1.0, -1.0])
    prediction = torch.tensor([1.5, -0.5, 1.0, -1.0])
    # zero-mean p = (1.25, -0.75, 0.75, -1.25); <p, t> / |t|^2 = 1, so s = t, e = (.25, .25, -.25, -.25)
    expected = 10 * math.log10(4 / 0.25)
    assert si_snr(prediction, target) == pytest.approx(expected)
    assert si_snr(3 * prediction, target) == pytest.approx(expected)  # scale invariant
    both = si_snr(torch.stack([prediction, target], 1), torch.stack([target, target], 1))
    assert both == math.inf  # mean over channels, one of them exact
    assert si_snr(torch.zeros(4), target) == -math.inf
    assert math.isnan(si_snr(target, torch.zeros(4)))


def test_silent_empty_and_unreadable_audio(tmp_path):
    soundfile.write(tmp_path / "silent.wav", np.zeros((100, 1)), 8000)
    with pytest.warns(UserWarning, match="silent"):
        silent = load_audio(tmp_path / "silent.wav")
    quality = silent.evaluate(silent.targets + 0.1)
    assert math.isnan(quality["si_snr"]) and math.isfinite(quality["psnr"])
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 2)), 8000)
    (tmp_path / "text.wav").write_text("not audio")
    cases = [(tmp_path / "empty.wav", {}, "has no samples"), (tmp_path / "text.wav", {}, "cannot read"),
             (tmp_path / "missing.wav", {}, "no such audio file"),
             (tmp_path / "silent.wav", {"seconds": 0}, "clip length"),
             (tmp_path / "silent.wav", {"sample_rate": -1}, "sample rate")]
    for path, options, message in cases:
        with pytest.raises(UserError, match=message):
            load_audio(path, **options)


def test_scores_are_one_dimensional_analogues():
    wave = np.zeros((100, 1), np.float32)
    wave[50:] = 0.5  # one step: the largest |first difference| is at sample 49
    signal = AudioSignal(name="step", waveform=wave, sample_rate=100)
    edges = signal.score("edges", lambda: signal.targets)
    assert edges.shape == (100,) and edges.sum() == 10 and edges[49] == 1
    anchors = signal.score("expansive_edges:0.01", lambda: signal.targets)
    assert anchors.nonzero().flatten().tolist() == [48, 49, 50]  # one sample, dilated by one each side
    magnitude = signal.score("edge_magnitude", lambda: signal.targets)
    assert magnitude[49] == pytest.approx(0.5) and magnitude.sum() == pytest.approx(0.5)
    assert first_difference(np.array([0.0, 1.0, 3.0])).tolist() == [1.0, 2.0, 2.0]
    assert signal.score("laplacian_error", lambda: signal.targets).abs().max() == 0
    error = signal.score("laplacian_error", lambda: torch.zeros(100, 1))
    assert error[49] == pytest.approx(1e-5 * 0.25) and error[50] == pytest.approx(1e-5 * 0.25)
    for bad in ("corners", "expansive_edges:2"):
        with pytest.raises(UserError):
            signal.score(bad, lambda: signal.targets)


def test_laplacian_loss_is_differentiable_and_zero_on_subsets(wav):
    signal = load_audio(wav)
    predictions = torch.zeros_like(signal.targets, requires_grad=True)
    loss = signal.extra_loss("laplacian", predictions, None)
    loss.backward()
    assert loss.item() > 0 and predictions.grad.abs().sum() > 0
    assert signal.extra_loss("laplacian", predictions, torch.arange(10)).item() == 0
    with pytest.raises(UserError, match="no loss term"):
        signal.extra_loss("tv", predictions, None)


def test_export_preview_and_selection_picture(wav, tmp_path):
    signal = load_audio(wav)
    signal.export(0.5 * signal.targets, tmp_path)
    written, rate = soundfile.read(tmp_path / "reconstruction.wav", always_2d=True)
    assert rate == 8000 and written.shape == (400, 2)
    assert np.allclose(written, 0.5 * signal.targets.numpy(), atol=1e-4)
    assert (tmp_path / "waveform_spectrogram.png").stat().st_size > 1000
    picture = signal.preview(0.5 * signal.targets)
    assert picture.ndim == 3 and picture.shape[2] == 3 and 0 <= picture.min() and picture.max() <= 1
    selection = signal.selection_picture(torch.arange(400.0))
    assert selection.shape == (20, 20) and selection[0, 1] == 1 and selection[-1, -1] == 399
    assert signal.selection_picture(torch.ones(10)).shape == (3, 4)  # two 0s of padding


def test_short_fit_improves_psnr(wav):
    signal = load_audio(wav)
    torch.manual_seed(0)
    fit = Fit(signal, Siren(1, 2, width=32, depth=2), Teacher("uniform", len(signal), seed=0),
              Budget(steps=80), lr=1e-3, eval_every=80)
    fit.run(show_progress=False)
    first, last = fit.history[0], fit.history[-1]
    assert last["psnr"] > first["psnr"] + 3 and last["si_snr"] > first["si_snr"]


def test_signal_kind_guessed_from_the_file(wav):
    assert guess_signal("a.WAV") == "audio" and guess_signal("a.flac") == "audio"
    assert guess_signal("a.png") == "image" and guess_signal("astronaut") == "image"
    assert isinstance(load_signal(FitConfig(image=str(wav))), AudioSignal)
    with pytest.raises(UserError, match="unknown signal 'video'"):
        load_signal(FitConfig(image=str(wav), signal="video"))


def test_fit_and_compare_write_audio_outputs(wav, tmp_path, capsys):
    small = {"width": 16, "depth": 2, "steps": 5, "teacher": "uniform", "overwrite": True}
    fit, folder = run_fit(FitConfig(image=str(wav), out=str(tmp_path / "fit"), **small), show_progress=False)
    for name in ("reconstruction.wav", "waveform_spectrogram.png", "selection_heatmap.png", "summary.json"):
        assert (folder / name).stat().st_size > 0
    assert "final_si_snr" in json.loads((folder / "summary.json").read_text())
    out = tmp_path / "cmp"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["compare", str(wav), "--teachers", "full,uniform", "--steps", "40", "--width", "16",
                     "--depth", "2", "--lr", "0.001", "--out", str(out), "--quiet"])
    assert code == 0 and (out / "reconstructions.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    assert results["signal"]["metric"] == "si_snr"
    targets = [float(t) for t in results["results"]["uniform"]["time_to_target"]]
    start = max(r["history"][0]["si_snr"] for r in results["results"].values())
    assert len(targets) == 3 and min(targets) > start  # from uniform's end, none met at step 0
    assert f"time to {targets[-1]:g} dB" in capsys.readouterr().out


def test_audio_defaults_fit_a_long_stereo_clip_at_8_khz_for_2_s(tmp_path):
    """A 5 s stereo 44.1 kHz clip: by default its first 2 s at 8 kHz (16,000 samples), and SIREN learns it."""
    path = tmp_path / "long.wav"
    t = np.arange(5 * 44100) / 44100
    melody = np.sin(2 * np.pi * (220 + 110 * (t > 1.0)) * t) * np.exp(-3 * (t % 0.5))
    soundfile.write(path, np.stack([0.5 * melody, 0.4 * melody], axis=1), 44100, subtype="FLOAT")
    config = FitConfig(image=str(path), width=64, depth=2, steps=150, lr=1e-3, teacher="uniform")
    signal = load_signal(config)
    assert signal.sample_rate == 8000 and signal.targets.shape == (16000, 2)
    assert len(load_signal(FitConfig(image=str(path), clip_seconds=0, sample_rate=0))) == 5 * 44100
    fit = build_fit(config, "uniform", {}, signal, eval_every=150)
    fit.run(show_progress=False)
    assert fit.history[-1]["si_snr"] > fit.history[0]["si_snr"] + 10


def test_audio_defaults_to_sirens_first_layer_frequency_and_it_matters(tmp_path):
    """A 1 kHz tone: SIREN with the image setting (omega_0 30 everywhere) barely moves in 150 steps;
    the audio default (3000 on the first layer) fits it."""
    path = tmp_path / "tone.wav"
    t = np.arange(2000) / 8000
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), 8000, subtype="FLOAT")
    gains = {}
    for first in (None, 30.0):
        config = FitConfig(image=str(path), width=32, depth=2, steps=150, lr=1e-3, first_omega_0=first)
        fit = build_fit(config, "full", {}, load_signal(config), eval_every=150)
        assert fit.model.body[0].omega_0 == (first or AUDIO_FIRST_OMEGA_0)
        fit.run(show_progress=False)
        gains[first] = fit.history[-1]["psnr"] - fit.history[0]["psnr"]
    assert gains[None] > 10 and gains[30.0] < 3, gains
