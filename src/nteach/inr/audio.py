"""Audio signals: a waveform of T samples as coordinates t in [-1, 1] (T, 1) and values in [-1, 1] (T, C).

Targets keep audio's own scale, [-1, 1] (what soundfile reads and writes), so PSNR
uses a data range of 2: the same number PSNR gives on the waveform rescaled to [0, 1].
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile
import torch
from matplotlib.figure import Figure
from scipy import ndimage
from scipy import signal as scipy_signal

from nteach.errors import UserError
from nteach.inr.metrics import psnr, si_snr
from nteach.inr.signals import LAPLACIAN_ERROR_SCALE, fraction_in_name, grid
from nteach.runs import atomic_write, save_figure

DATA_RANGE = 2.0  # targets lie in [-1, 1]
EDGE_SHARE = 0.1  # "edges": the top 10% of samples by |first difference|
PREVIEW_SHAPE = (240, 480)  # rows x columns of the waveform picture
TARGET_GREY, FIT_BLUE = (0.78, 0.78, 0.78), (0.12, 0.47, 0.71)


def first_difference(x: np.ndarray) -> np.ndarray:
    """|x[i+1] - x[i]| per sample (N,); the last sample repeats the one before it (0 when N = 1)."""
    if len(x) < 2:
        return np.zeros_like(x)
    steps = np.abs(np.diff(x))
    return np.concatenate([steps, steps[-1:]])


def second_difference(x: np.ndarray) -> np.ndarray:
    """x[i-1] - 2 x[i] + x[i+1], ends padded by repeating the end sample (the 1-D ``features.laplacian``)."""
    return ndimage.laplace(x, mode="nearest")


def torch_second_difference(x: torch.Tensor) -> torch.Tensor:
    """``second_difference`` for an (N,) tensor, differentiable."""
    padded = torch.cat([x[:1], x, x[-1:]])
    return padded[:-2] - 2 * padded[1:-1] + padded[2:]


def top_share(values: np.ndarray, share: float) -> np.ndarray:
    """0/1 mask of the ceil(share N) largest values (ties go to the earlier sample)."""
    mask = np.zeros(len(values), dtype=bool)
    mask[np.argsort(-values, kind="stable")[:math.ceil(share * len(values))]] = True
    return mask


def envelope_rows(mono: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool (rows, columns) picture of the min-max envelope of a [-1, 1] waveform, time along columns."""
    rows, columns = shape
    mono = np.clip(mono, -1, 1)
    starts = np.floor(np.linspace(0, len(mono), columns, endpoint=False)).astype(int)  # repeats when T < W
    top = (1 - np.maximum.reduceat(mono, starts)) / 2 * (rows - 1)
    bottom = (1 - np.minimum.reduceat(mono, starts)) / 2 * (rows - 1)
    index = np.arange(rows)[:, None]
    return (index >= np.floor(top)) & (index <= np.ceil(bottom))


@dataclass
class AudioSignal:
    """A T x C waveform as T coordinate/value pairs."""

    name: str
    waveform: np.ndarray  # T x C float32 in [-1, 1]
    sample_rate: int
    metric = "si_snr"  # PSNR rewards a silent fit (about 30 dB on music): SI-SNR does not

    def __post_init__(self) -> None:
        self.coords = grid((len(self.waveform),))
        self.targets = torch.from_numpy(np.ascontiguousarray(self.waveform, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.coords)

    def mono(self, values: torch.Tensor) -> np.ndarray:
        """The channel mean of (T, C) values, clipped to [-1, 1], as a (T,) array."""
        return values.detach().clamp(-1, 1).mean(dim=1).cpu().numpy()

    def evaluate(self, predictions: torch.Tensor) -> dict[str, float]:
        """PSNR (data range 2) and SI-SNR (dB, mean over channels) after clipping to [-1, 1]."""
        clipped = predictions.detach().clamp(-1, 1).cpu()
        return {"psnr": psnr(clipped, self.targets, data_range=DATA_RANGE),
                "si_snr": si_snr(clipped, self.targets)}

    def export(self, predictions: torch.Tensor, folder: Path) -> None:
        """reconstruction.wav (16-bit PCM) and waveform_spectrogram.png (target against fit)."""
        folder = Path(folder)
        samples = predictions.detach().clamp(-1, 1).cpu().numpy()
        atomic_write(folder / "reconstruction.wav",
                     lambda tmp: soundfile.write(tmp, samples, self.sample_rate, subtype="PCM_16"))
        save_figure(folder / "waveform_spectrogram.png", self.comparison(predictions))

    def comparison(self, predictions: torch.Tensor) -> Figure:
        """Waveforms overlaid, then the target's and the fit's spectrograms on one dB scale."""
        target, fit = self.mono(self.targets), self.mono(predictions)
        seconds = np.arange(len(target)) / self.sample_rate
        figure = Figure(figsize=(10, 7.5), layout="constrained")
        axes = figure.subplots(3, 1, sharex=True)
        axes[0].plot(seconds, target, color="0.6", lw=0.6, label="target")
        axes[0].plot(seconds, fit, color=FIT_BLUE, lw=0.6, alpha=0.8, label="fit")
        axes[0].set(ylim=(-1.05, 1.05), ylabel="amplitude", title=f"{self.name}: waveform (channel mean)")
        axes[0].legend(loc="upper right")
        window = min(512, len(target))
        spectra = [scipy_signal.spectrogram(x, fs=self.sample_rate, nperseg=window) for x in (target, fit)]
        top = max(10 * np.log10(spectra[0][2].max() + 1e-12), -100.0)
        for axis, (frequencies, times, power), label in zip(axes[1:], spectra, ("target", "fit")):
            shown = axis.pcolormesh(times, frequencies, 10 * np.log10(power + 1e-12), shading="auto",
                                    vmin=top - 80, vmax=top, cmap="magma")
            axis.set(ylabel="frequency (Hz)", title=f"{label} spectrogram")
            figure.colorbar(shown, ax=axis, label="dB")
        axes[2].set(xlabel="time (s)", xlim=(0, len(target) / self.sample_rate))
        return figure

    def preview(self, predictions: torch.Tensor) -> np.ndarray:
        """The channel-mean waveform's envelope in blue over the target's in grey (H x W x 3 in [0, 1]),
        both scaled so that the target's peak fills the height."""
        target = self.mono(self.targets)
        peak = max(float(np.abs(target).max()), 1e-6)
        picture = np.ones((*PREVIEW_SHAPE, 3))
        picture[envelope_rows(target / peak, PREVIEW_SHAPE)] = TARGET_GREY
        picture[envelope_rows(self.mono(predictions) / peak, PREVIEW_SHAPE)] = FIT_BLUE
        return picture

    def selection_picture(self, frequency: torch.Tensor) -> np.ndarray:
        """Per-sample values in rows read like text (time runs right, then down); the tail is 0 padding."""
        values = frequency.detach().cpu().numpy().reshape(-1)
        columns = math.ceil(math.sqrt(len(values)))
        rows = math.ceil(len(values) / columns)
        return np.pad(values, (0, rows * columns - len(values))).reshape(rows, columns)

    def score(self, name: str, predict: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Per-sample scores (T,) float32 on the CPU, 1-D analogues of the image scores, on the channel mean:

        "edges" (0/1: the top 10% by |first difference|), "expansive_edges:RHO" (0/1: the top
        RHO fraction by |first difference|, dilated by one sample on each side),
        "edge_magnitude" (|first difference|) and "laplacian_error" (1e-5 (second
        difference of the prediction - that of the target)^2, EVOS's term in 1-D).
        """
        kind, _, argument = name.partition(":")
        target = self.mono(self.targets)
        if name == "edges":
            values = top_share(first_difference(target), EDGE_SHARE)
        elif kind == "expansive_edges" and argument:
            share = fraction_in_name(argument, name)
            values = ndimage.binary_dilation(top_share(first_difference(target), share),
                                             structure=np.ones(3, dtype=bool))
        elif name == "edge_magnitude":
            values = first_difference(target)
        elif name == "laplacian_error":
            difference = second_difference(self.mono(predict())) - second_difference(target)
            values = LAPLACIAN_ERROR_SCALE * difference**2
        else:
            raise UserError(f"audio has no score named {name!r}")
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    def extra_loss(self, name: str, predictions: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
        """The "laplacian" term: mean squared difference of the second differences of the channel means.

        It needs the whole waveform, so it is zero on steps that trained on a subset (``indices``).
        """
        if name != "laplacian":
            raise UserError(f"audio has no loss term named {name!r}")
        if indices is not None:
            return predictions.new_zeros(())
        target = self.targets.to(predictions.device).mean(dim=1)
        difference = torch_second_difference(predictions.mean(dim=1)) - torch_second_difference(target)
        return difference.pow(2).mean()


def _read(path: Path, seconds: float | None) -> tuple[np.ndarray, int]:
    """The first ``seconds`` (all when None) of an audio file as T x C float32, and its sample rate."""
    if not path.is_file():
        raise UserError(f"no such audio file: {path}")
    try:
        rate = soundfile.info(str(path)).samplerate
        frames = -1 if seconds is None else math.ceil(seconds * rate)
        waveform, rate = soundfile.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except soundfile.SoundFileError as error:
        raise UserError(f"cannot read {path} as audio: {str(error).splitlines()[0]}") from None
    if seconds is not None and 0 < len(waveform) < seconds * rate - 1:
        warnings.warn(f"{path} is only {len(waveform) / rate:.2f} s long; fitting all of it", stacklevel=3)
    return waveform, rate


def clip_length(path: str | Path, at_most: float) -> float | None:
    """``at_most`` seconds, or the whole file (None) when it is shorter; None for a file soundfile cannot
    read, which load_audio then reports."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, OSError, RuntimeError):
        return None
    return at_most if info.frames > at_most * info.samplerate else None


def load_audio(path: str | Path, sample_rate: int | None = None, seconds: float | None = None,
               mono: bool = False) -> AudioSignal:
    """A WAV / OGG / FLAC / ... file via soundfile: its first ``seconds``, resampled to ``sample_rate``
    (scipy's polyphase ``resample_poly``), channels averaged when ``mono``."""
    path = Path(path)
    if sample_rate is not None and sample_rate <= 0:
        raise UserError(f"sample rate must be > 0 Hz, got {sample_rate}")
    if seconds is not None and seconds <= 0:
        raise UserError(f"clip length must be > 0 s, got {seconds}")
    waveform, rate = _read(path, seconds)
    if len(waveform) == 0:
        raise UserError(f"{path} has no samples")
    if sample_rate is not None and sample_rate != rate:
        common = math.gcd(sample_rate, rate)
        waveform = scipy_signal.resample_poly(waveform, sample_rate // common, rate // common, axis=0)
        rate = sample_rate
    if seconds is not None:
        waveform = waveform[:max(1, round(seconds * rate))]
    if mono:
        waveform = waveform.mean(axis=1, keepdims=True)
    if np.abs(waveform).max() > 1.001:
        warnings.warn(f"{path}: samples beyond [-1, 1] clipped", stacklevel=2)
    if np.ptp(waveform, axis=0).max() == 0:
        warnings.warn(f"{path} is silent (every sample is {waveform.flat[0]:g}): SI-SNR is undefined "
                      "(reported as NaN) and PSNR measures only the offset", stacklevel=2)
    return AudioSignal(name=path.stem, waveform=np.clip(waveform, -1, 1).astype(np.float32), sample_rate=rate)
