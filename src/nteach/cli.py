"""The `nteach` command. Its options are generated from the config dataclasses.

Errors a user can cause print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import warnings
from dataclasses import MISSING, fields
from pathlib import Path

from nteach.attention.recipes import load_recipes
from nteach.bench.attention import run_attention_suite
from nteach.bench.compare import CompareConfig, run_compare
from nteach.bench.compile_speed import run_compile_bench
from nteach.bench.report import RESULTS, write_report
from nteach.bench.results import merge, read_results
from nteach.bench.screen import confirming_teachers
from nteach.bench.suite import run_suite, suite_path
from nteach.errors import UserError
from nteach.inr.experiment import FitConfig, SignalModelConfig, default_budget, run_fit
from nteach.inr.fit import quality
from nteach.inr.models import MODELS
from nteach.launch import exit_code_of_launched, launched_rank
from nteach.runs import CONFIG

TYPES = {"int": int, "float": float, "str": str}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        self.exit(2, f"nteach: error: {message}\n")


def add_config_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One option per dataclass field: its type, default and help come from the field."""
    for f in fields(config_class):
        default = None if f.default is MISSING else f.default
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        kind = TYPES.get(str(f.type).split(" |")[0])
        if f.metadata.get("positional"):
            parser.add_argument(f.name, nargs="?", default=default, help=f"{help_text} (default %(default)s)")
        elif str(f.type) == "bool":
            parser.add_argument("--" + f.name.replace("_", "-"), action="store_true", help=help_text)
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default,
                                help=f"{help_text} (default %(default)s)")


def config_from(args: argparse.Namespace, config_class: type):
    return config_class(**{f.name: getattr(args, f.name) for f in fields(config_class)})


def stop_on_signals() -> threading.Event:
    """First Ctrl-C (or SIGTERM) asks the run to checkpoint and stop after the current step."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        if launched_rank() == 0:  # under torchrun every rank gets the signal
            print("\nnteach: stopping after this step and saving a checkpoint (Ctrl-C again to abort)",
                  file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def command_fit(args: argparse.Namespace) -> int:
    if args.resume:
        folder = Path(args.resume)
        if not (folder / CONFIG).is_file():
            raise UserError(f"{folder} is not a run folder (no {CONFIG})")
        config = FitConfig(**json.loads((folder / CONFIG).read_text()))
    else:
        folder, config = None, config_from(args, FitConfig)
        default_budget(config, steps=1000)
    stop = stop_on_signals()
    fit, folder = run_fit(config, resume_folder=folder, show_progress=not args.quiet, stop=stop)
    finished = fit.done()  # under torchrun a stop on any rank stops them all
    if fit.ranks.is_main and not finished:
        print(f"stopped at step {fit.step}; continue with: nteach fit --resume {folder}", file=sys.stderr)
    elif fit.ranks.is_main:
        measures = ", ".join(f"{name} {value:.3f}" for name, value in quality(fit.history[-1]).items())
        seconds = fit.clock.seconds
        print(f"{config.teacher}: {fit.step} steps, {seconds:.1f} s training, {measures} -> {folder}")
    return exit_code_of_launched(0 if finished else 130)


def command_compare(args: argparse.Namespace) -> int:
    config = config_from(args, CompareConfig)
    default_budget(config, seconds=40.0)
    _, folder = run_compare(config, show_progress=not args.quiet)
    print((folder / "table.md").read_text(), end="")
    print(f"results, table and plots in {folder}")
    return 0


def command_train(args: argparse.Namespace) -> int:
    recipe = load_recipes()[args.recipe]
    folder = Path(args.resume) if args.resume else None
    if folder is not None:
        if not (folder / CONFIG).is_file():
            raise UserError(f"{folder} is not a run folder (no {CONFIG})")
        config = recipe.config(**json.loads((folder / CONFIG).read_text()))
    else:
        config = config_from(args, recipe.config)
    stop = stop_on_signals()
    summary, folder = recipe.run(config, resume_folder=folder, show_progress=not args.quiet, stop=stop)
    finished = summary["finished"]  # under torchrun a stop on any rank stops them all
    if launched_rank() == 0 and not finished:
        print(f"stopped; continue with: nteach train {args.recipe} --resume {folder}", file=sys.stderr)
    elif launched_rank() == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
        print(f"run folder: {folder}")
    return exit_code_of_launched(0 if finished else 130)


BENCH_SUITES = {"inr": run_suite, "attention": run_attention_suite}  # `nteach bench KIND`: its runner


def command_bench(args: argparse.Namespace) -> int:
    kind = args.suite_kind
    path = suite_path(args.suite or ("full" if args.full else "quick"), kind)
    out = Path(args.out or f"runs/bench-{kind}-{path.stem.removeprefix(f'{kind}-')}")
    overrides = {key: getattr(args, key) for key in ("seconds", "compile")
                 if getattr(args, key, None) is not None}  # options some kinds of suite take
    BENCH_SUITES[kind](path, out, overwrite=args.overwrite, show_progress=not args.quiet,
                       seeds=parse_seeds(args.seeds), cases=parse_names(args.cases),
                       teachers=parse_names(args.teachers), **overrides)
    print((out / "results.md").read_text(), end="")
    print(f"results, tables and plots in {out}")
    return 0


def command_bench_compile(args: argparse.Namespace) -> int:
    config = config_from(args, SignalModelConfig)
    out = Path(args.out or "runs/bench-compile")
    run_compile_bench(config, parse_names(args.models) or list(MODELS), args.steps, out, args.overwrite,
                      show_progress=not args.quiet)
    print((out / "results.md").read_text(), end="")
    print(f"results in {out}; copy results.json to benchmarks/results/ and run `nteach bench report`")
    return 0


def command_report(args: argparse.Namespace) -> int:
    write_report(Path(args.results), Path(args.out))
    print(f"wrote {args.out} from the results files in {args.results}")
    return 0


def command_screen(args: argparse.Namespace) -> int:
    merged = merge([read_results(Path(path)) for path in args.results])
    for name, case in merged["cases"].items():
        print(f"{name}: {','.join(confirming_teachers(case))}")
    return 0


def parse_names(text: str | None) -> list[str] | None:
    """'a,b' -> ['a', 'b']; None: all."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def parse_seeds(text: str | None) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]; None keeps the suite's own seeds."""
    if text is None:
        return None
    try:
        seeds = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, got {text!r}") from None
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    return seeds


def add_suite_command(suites, name: str, help: str, quick: str) -> argparse.ArgumentParser:
    """`nteach bench NAME [--quick | --full | --suite FILE] [--out DIR] [--overwrite]`."""
    command = suites.add_parser(name, help=help)
    size = command.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=f"the CPU suite, {quick} (default)")
    size.add_argument("--full", action="store_true", help="the paper-scale suite, meant for a GPU")
    size.add_argument("--suite", help="a suite by name (heldout, dev, ...: src/nteach/bench/suites/) "
                      "or a TOML file")
    command.add_argument("--seeds", help="comma-separated seeds, instead of the suite's own (e.g. 0,1,2)")
    command.add_argument("--cases", help="comma-separated case names: run this part of the suite only")
    command.add_argument("--teachers", help="comma-separated teachers: run these only")
    command.add_argument("--out", help=f"results folder (default runs/bench-{name}-SUITE)")
    command.add_argument("--overwrite", action="store_true", help="replace an existing results folder")
    command.set_defaults(handler=command_bench)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nteach", description="Train neural networks faster by teaching them.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    fit = commands.add_parser("fit", help="fit an INR to an image, audio clip or 3D shape")
    add_config_options(fit, FitConfig)
    fit.add_argument("--resume", metavar="RUN", help="continue the run in this folder (its saved settings)")
    fit.set_defaults(handler=command_fit)
    compare = commands.add_parser("compare", help="several teachers on the same image, side by side")
    add_config_options(compare, CompareConfig)
    compare.set_defaults(handler=command_compare)
    bench = commands.add_parser("bench", help="benchmark suites: every teacher, several seeds")
    suites = bench.add_subparsers(dest="suite_kind", required=True, parser_class=Parser)
    inr = add_suite_command(suites, "inr", "INR suite: signals x models x teachers", "about 15 minutes")
    inr.add_argument("--seconds", type=float, help="every run's training seconds instead of the suite's: "
                     "a smoke test of an installation (its results are marked, not the suite's)")
    inr.add_argument("--compile", help="every case's --compile (on, off, graphs or auto), instead of the "
                     "suite's")
    attention = add_suite_command(suites, "attention", "attention suite: recipes x teachers, timed to full's "
                                  "final validation metric", "about 12 minutes")
    attention.add_argument("--compile", help="every case's --compile (on, off, graphs or auto), instead of "
                           "the case's")
    speed = suites.add_parser("compile", help="steps per second eager against compiled, per architecture")
    add_config_options(speed, SignalModelConfig)
    speed.add_argument("--models", help="comma-separated architectures (default: all)")
    speed.add_argument("--out", help="results folder (default runs/bench-compile)")
    speed.add_argument("--overwrite", action="store_true", help="replace an existing results folder")
    speed.set_defaults(handler=command_bench_compile, steps=500)
    report = suites.add_parser("report", help="write docs/benchmarks.md from the committed results files")
    report.add_argument("--results", default=str(RESULTS),
                        help="folder of results files (default %(default)s)")
    report.add_argument("--out", default=str(RESULTS.parents[1] / "docs" / "benchmarks.md"),
                        help="the page to write (default %(default)s)")
    report.set_defaults(handler=command_report)
    screen = suites.add_parser("screen", help="the teachers worth the remaining seeds, from a suite's first "
                               "seeds (for --teachers)")
    screen.add_argument("results", nargs="+", help="results.json files of the screening part")
    screen.set_defaults(handler=command_screen)
    train = commands.add_parser("train", help="train an attention learner with a teacher")
    recipes = train.add_subparsers(dest="recipe", required=True, parser_class=Parser)
    subcommands = [fit, compare, inr, attention, speed]
    for name, recipe in load_recipes().items():
        sub = recipes.add_parser(name, help=recipe.help)
        add_config_options(sub, recipe.config)
        sub.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
        sub.set_defaults(handler=command_train)
        subcommands.append(sub)
    for sub in subcommands:
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    first = str(message).strip().splitlines()
    print(f"nteach: warning: {first[0] if first else category.__name__}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        for category in (DeprecationWarning, PendingDeprecationWarning):  # for library authors, not users:
            warnings.simplefilter("ignore", category)  # Python hides them outside __main__ too
        try:
            return args.handler(args)
        except UserError as error:
            print(f"nteach: error: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
