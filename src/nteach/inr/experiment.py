"""One signal fit from a config: build it, run it, write its run folder, resume it."""

from __future__ import annotations

import importlib
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from nteach.compiling import resolve_compile, step_work
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.inr.fit import Budget, Fit, quality
from nteach.inr.models import LEARNING_RATES, make_model
from nteach.inr.signals import Signal, load_image
from nteach.launch import process_group_from_env
from nteach.options import option
from nteach.runs import (
    CHECKPOINT,
    save_checkpoint,
    save_figure,
    start_or_resume,
    write_json,
    write_jsonl,
)
from nteach.seeding import seeded
from nteach.teaching import Teacher, options_from_text

SIGNAL_KINDS = ("image", "audio", "sdf", "occupancy")
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac", ".aiff", ".aif", ".au", ".mp3", ".w64", ".caf")
MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl", ".glb", ".gltf")
LOWER_IS_BETTER = ("chamfer",)  # quality measures whose best value is the smallest
AUDIO_SAMPLE_RATE, AUDIO_CLIP_SECONDS = 8000, 2.0  # audio's defaults, sized for a CPU like 128 px images


@dataclass
class SignalModelConfig:
    """What to fit and with which network: shared by `nteach fit` and `nteach compare`."""

    image: str = field(default="astronaut", metadata=option(
        "signal file: an image (PNG, JPEG, TIFF, ...) or a bundled scikit-image name, an audio file "
        "(WAV, OGG, FLAC, ...) or a mesh (OFF, OBJ, PLY, STL)", positional=True))
    signal: str | None = field(default=None, metadata=option(
        "what to fit: image, audio, sdf or occupancy (default: from the file's extension; "
        "meshes give occupancy)"))
    size: int | None = field(default=128, metadata=option(
        "image: resize so the longer side has this many pixels (0 keeps the original size)"))
    gray: bool = field(default=False, metadata=option("image: fit the gray version of the image"))
    sample_rate: int | None = field(default=None, metadata=option(
        "audio: resample to this many samples per second (default 8000, which with 2 s fits on a CPU as "
        "128 px does for images; 0 keeps the file's rate)"))
    clip_seconds: float | None = field(default=None, metadata=option(
        "audio: fit only the first this many seconds (default 2; 0: all of it)"))
    mono: bool = field(default=False, metadata=option("audio: average the channels into one"))
    resolution: int = field(default=32, metadata=option(
        "sdf/occupancy: points per side of the [-1, 1]^3 grid (32^3 + 10k surface points fit on a CPU; "
        "use 64-128 on a GPU)"))
    surface_points: int = field(default=10000, metadata=option(
        "sdf/occupancy: extra points sampled near the surface (surface samples + Gaussian noise)"))
    model: str = field(default="siren", metadata=option(
        "INR architecture: siren, ffn, pe, finer, gauss, wire or hashgrid (instant-NGP's hash encoding)"))
    width: int = field(default=128, metadata=option("units per hidden layer"))
    depth: int = field(default=3, metadata=option("number of hidden (sine) layers"))
    omega_0: float = field(default=30.0, metadata=option("SIREN/FINER frequency factor"))
    table_log2: int = field(default=15, metadata=option(
        "hashgrid: log2 of each level's table size (instant-NGP: 14 to 24)"))
    first_omega_0: float | None = field(default=None, metadata=option(
        "SIREN/FINER first layer's frequency factor (default: 3000 for audio, as SIREN's audio fits, "
        "else omega_0)"))
    lr: float | None = field(default=None, metadata=option(
        "Adam learning rate (default: the model's usual one)"))
    lr_schedule: str = field(default="constant", metadata=option(
        "learning-rate schedule over the budget (steps or seconds): constant, cosine (to 0) or "
        "exponential (to 1 %)"))
    ratio: float = field(default=0.2, metadata=option(
        "fraction of coordinates trained on per step, in (0, 1]"))
    schedule: str | None = field(default=None, metadata=option(
        "ratio schedule: constant, linear, step, cosine, reverse-cosine (default: the teacher's own)"))
    interval: str | None = field(default=None, metadata=option(
        "re-selection interval: dense, dense2, incremental, reverse-incremental, void "
        "(default: the teacher's)"))
    steps: int | None = field(default=None, metadata=option("training steps (or give --seconds)"))
    seconds: float | None = field(default=None, metadata=option("training seconds, scoring included"))
    seed: int = field(default=0, metadata=option("seed for the network and the teacher"))
    chunk: int = field(default=65536, metadata=option("coordinates per chunk in full passes (bounds memory)"))
    device: str = field(default="auto", metadata=option("cpu, cuda, cuda:N or auto"))
    compile: str = field(default="auto", metadata=option(
        "torch.compile the model: on, off, graphs (CUDA graphs, for a GPU) or auto (on where the CPU "
        "benchmarks measured it to pay: SIREN and FINER, for steps of enough points); compiling runs "
        "before the clock starts"))


@dataclass
class FitConfig(SignalModelConfig):
    """`nteach fit`: one teacher, one run folder."""

    teacher: str = field(default="paced_sweep", metadata=option("teaching strategy"))
    options: str = field(default="", metadata=option(
        "teacher hyperparameters over its defaults, e.g. temperature=0,mix=0.5 for paced_sweep"))
    out: str | None = field(default=None, metadata=option("run folder (default runs/TEACHER-IMAGE)"))
    overwrite: bool = field(default=False, metadata=option("replace an existing run folder"))
    eval_every: float | None = field(default=None, metadata=option(
        "evaluate every this many steps (or seconds, for --seconds); default: 50 evaluations"))
    checkpoint_every: int = field(default=500, metadata=option(
        "steps between checkpoints (0: only at the end)"))


def guess_signal(path: str) -> str:
    """The signal kind a file's extension suggests: audio, occupancy (meshes) or image (all else)."""
    suffix = Path(path).suffix.lower()
    return "audio" if suffix in AUDIO_SUFFIXES else "occupancy" if suffix in MESH_SUFFIXES else "image"


def _signal_module(kind: str, extra: str):
    """The module of an optional signal kind; a missing extra is a user error, not a traceback."""
    try:
        return importlib.import_module(f"nteach.inr.{extra}")
    except ImportError as error:
        raise UserError(f"{kind} signals need the {extra} extra: pip install 'nteach[{extra}]' "
                        f"({error})") from None


def load_signal(config: SignalModelConfig) -> Signal:
    """The signal ``config`` asks for: ``config.signal`` or, when None, the kind guessed from the file."""
    kind = config.signal or guess_signal(config.image)
    if kind == "image":
        return load_image(config.image, size=config.size or None, gray=config.gray)
    if kind == "audio":
        audio = _signal_module(kind, "audio")
        rate = AUDIO_SAMPLE_RATE if config.sample_rate is None else config.sample_rate
        seconds = (audio.clip_length(config.image, AUDIO_CLIP_SECONDS) if config.clip_seconds is None
                   else config.clip_seconds)
        return audio.load_audio(config.image, sample_rate=rate or None, seconds=seconds or None,
                                mono=config.mono)
    if kind in ("sdf", "occupancy"):
        return _signal_module(kind, "shapes").load_mesh(
            config.image, kind, resolution=config.resolution, surface_points=config.surface_points)
    raise UserError(f"unknown signal {kind!r}; use one of {', '.join(SIGNAL_KINDS)}")


AUDIO_FIRST_OMEGA_0 = 3000.0  # SIREN's audio fits: with 30, a clip's samples look like one slow wave


def first_omega_0(config: SignalModelConfig) -> float | None:
    """The first layer's frequency factor: the user's, else SIREN's audio setting for audio."""
    if config.first_omega_0 is not None:
        return config.first_omega_0
    kind = config.signal or guess_signal(config.image)
    return AUDIO_FIRST_OMEGA_0 if kind == "audio" else None


# paced_sweep on shapes: 0.7 of every step on the points nearest the surface, where IoU is decided and
# the grid's MSE is not (on photos and audio the same anchors, on their edges, cost quality, so they stay
# off there). Dev meshes, per iteration, against a half share: 0.94x the steps to Q_ref (geometric mean
# of six; 0.80x-0.90x on three, 1.15x on the occupancy bunny); 0.3 took 1.03x (benchmarks/lab/)
SHAPE_ANCHOR_SHARE = 0.7
# paced_sweep's rounds on every signal: 4 passes over the coordinates at one pace (dev suite, per iteration:
# 0.71x-0.93x the steps to the target of one-pass rounds on seven cases of nine, 1.03x on the occupancy
# bunny, 1.15x on the hash grid bunny; 8 passes about as good on photos, worse on audio and the hash grid)
PACED_PASSES = 4
# and half of each copy's place in its stretch of a round drawn afresh, so that the passes of a round do not
# repeat one order (dev, per iteration, against no jitter: 0.86x the steps on a Fourier-feature photo,
# 0.77x-0.96x on four more cases, 1.00x-1.02x on three; a fresh shuffle per pass, jitter 1, lost 0-8 %)
PACED_JITTER = 0.5


def teacher_options(config: SignalModelConfig, teacher_name: str, options: dict) -> dict:
    """The teacher's hyperparameters: the user's, over paced_sweep's INR settings (its rounds' passes and
    jitter, and its anchors on shapes)."""
    if teacher_name != "paced_sweep":
        return options
    kind = config.signal or guess_signal(config.image)
    anchors = {"anchor_share": SHAPE_ANCHOR_SHARE} if kind in ("sdf", "occupancy") else {}
    return {"passes": PACED_PASSES, "jitter": PACED_JITTER, **anchors, **options}


def build_fit(config: SignalModelConfig, teacher_name: str, options: dict, signal: Signal,
              eval_every: float | None = None, device: torch.device | None = None) -> Fit:
    """Model, teacher (with hyperparameters ``options``) and budget from ``config``, all seeded from
    ``config.seed`` (the same on every rank); ``device`` overrides ``config.device``."""
    budget = Budget(steps=config.steps, seconds=config.seconds)
    if config.chunk <= 0:
        raise UserError(f"chunk must be > 0, got {config.chunk}")
    with seeded(config.seed):
        model = make_model(config.model, signal.coords.shape[1], signal.targets.shape[1],
                           width=config.width, depth=config.depth, omega_0=config.omega_0,
                           first_omega_0=first_omega_0(config), table_log2=config.table_log2)
    teacher = Teacher(teacher_name, len(signal), ratio=config.ratio, schedule=config.schedule,
                      interval=config.interval, seed=config.seed,
                      **teacher_options(config, teacher_name, options))
    lr = config.lr if config.lr is not None else LEARNING_RATES[config.model]
    if lr <= 0:
        raise UserError(f"learning rate must be > 0, got {lr}")
    device = device or resolve_device(config.device)
    step, scoring = (resolve_compile(config.compile, config.model, device, step_work(points, config.width))
                     for points in (teacher.step_size(), len(signal)))  # a small step may run eagerly
    return Fit(signal, model, teacher, budget, lr=lr, eval_every=eval_every, chunk=config.chunk,
               device=device, lr_schedule=config.lr_schedule, compile=step, compile_scoring=scoring)


def communication(fit: Fit) -> dict:
    """What teaching exchanged between the ranks, in bytes received per rank (gradients not counted)."""
    teaching = fit.global_teacher
    events = teaching.event_bytes
    return {"selection_events": len(events), "score_bytes": sum(events),
            "score_bytes_largest_event": max(events, default=0),
            "feedback_bytes_per_step": teaching.feedback_bytes / max(teaching.observations, 1)}


def summarize(fit: Fit, config: dict) -> dict:
    """Final and best quality, steps and training seconds of a run, with the config that made it."""
    metric, history = fit.signal.metric, fit.history
    measures = list(quality(history[-1]))
    summary = {
        "finished": fit.done(), "steps": fit.step, "train_seconds": fit.clock.seconds,
        "compile_seconds": fit.compile_seconds, "metric": metric,
        **{f"final_{name}": history[-1][name] for name in measures},
        **{f"best_{name}": (min if name in LOWER_IS_BETTER else max)(r[name] for r in history)
           for name in measures},
        "world_size": fit.ranks.size,
        "config": config,
    }
    if fit.ranks.size > 1:
        summary["communication"] = communication(fit)
    return summary


def write_outputs(fit: Fit, folder: Path, config: dict) -> None:
    """Reconstruction, plots, history and summary: everything a person looks at after a run."""
    from nteach.viz import quality_vs_time, selection_heatmap

    folder, signal = Path(folder), fit.signal
    signal.export(fit.predictions(), folder)
    teacher = config.get("teacher", "")
    save_figure(folder / "quality_vs_time.png", quality_vs_time(
        {teacher: fit.history}, metric=signal.metric, title=f"{signal.name}: {teacher}"))
    frequency = signal.selection_picture(fit.counts.float() / max(fit.step, 1))
    save_figure(folder / "selection_heatmap.png",
                selection_heatmap(frequency, title=f"{teacher}: how often each example was trained on"))
    write_jsonl(folder / "history.jsonl", fit.history)
    write_json(folder / "summary.json", summarize(fit, config))


def default_budget(config: SignalModelConfig, steps: int | None = None, seconds: float | None = None) -> None:
    """Fill in a budget when the user gave neither --steps nor --seconds."""
    if config.steps is None and config.seconds is None:
        config.steps, config.seconds = steps, seconds


def run_fit(config: FitConfig, resume_folder: Path | None = None, show_progress: bool = True,
            stop: threading.Event | None = None) -> tuple[Fit, Path]:
    """Fit into a new run folder, or resume the one given; checkpoints go to folder/checkpoint.pt.

    Everything a user can get wrong is checked before the folder is created. Under torchrun
    (WORLD_SIZE > 1) every rank fits under DDP and rank 0 alone reads and writes the folder.
    """
    signal = load_signal(config)
    with process_group_from_env(resolve_device(config.device)) as (ranks, device):
        options = options_from_text(config.teacher, config.options)
        fit = build_fit(config, config.teacher, options, signal, eval_every=config.eval_every, device=device)
        folder = Path(resume_folder or config.out or f"runs/{config.teacher}-{signal.name}")
        state = start_or_resume(folder, asdict(config), config.overwrite, resume_folder is not None, ranks)
        if state is not None:
            fit.load_state_dict(state)

        def checkpoint() -> None:
            if ranks.is_main:
                save_checkpoint(folder / CHECKPOINT, fit.state_dict())

        fit.run(show_progress=show_progress and ranks.is_main, stop=stop, checkpoint=checkpoint,
                checkpoint_every=config.checkpoint_every)
        if ranks.is_main:
            write_outputs(fit, folder, asdict(config))
    return fit, folder
