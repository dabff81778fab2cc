"""Pieces every ``prunegym`` command shares: messages, argument checks, building the env."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
from pathlib import Path

from prunegym.agents.specs import parse_setting, split_solver_spec
from prunegym.envs.prune_env import PruneEnv
from prunegym.pruning import COMPENSATIONS, CRITERIA
from prunegym.pruning.weight.importance import WEIGHT_CRITERIA
from prunegym.tasks import make_task, task_names
from prunegym.tasks.devices import PRECISIONS


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (``prunegym: error: ...``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"prunegym: error: {message} (see: {self.prog} --help)\n")


def say(message: str) -> None:
    """A progress message on stderr (stdout is kept for results)."""
    print(message, file=sys.stderr, flush=True)


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as JSON when possible (numbers, lists, true/false)."""
    if "=" not in text:
        raise ValueError(f"--option must look like key=value, got {text!r}")
    return parse_setting(text)


def add_option(options: dict, key: str, value: object) -> None:
    """``options[key] = value``; a one-line ``ValueError`` if ``--option`` set ``key`` before."""
    if key in options:
        raise ValueError(f"--option {key} is given twice")
    options[key] = value


def check_solver_settings(
    spec: str, options: dict, seed_flag: str = "--seed", solver_flag: str = "--solver"
) -> None:
    """One-line ``ValueError`` where solver ``spec``'s settings or the ``--option`` values
    ``options`` set what the command line sets itself (``seed``, ``progress``), or where both
    set the same key."""
    settings = split_solver_spec(spec)[1]
    flags = {"seed": seed_flag, "progress": "--no-progress"}
    for key in (*settings, *options):
        if key in flags:
            raise ValueError(f"{key} is set by {flags[key]}, not as a solver setting ({spec!r})")
    both = sorted(set(settings) & set(options))
    if both:
        raise ValueError(f"{both[0]!r} is set both by {solver_flag} {spec!r} and by --option")


def check_writable(path: str | Path, flag: str, folder: bool = False) -> None:
    """One-line ``ValueError`` unless ``path`` can be written, checked before any work: a file
    (``folder=False``) or a folder (``folder=True``); missing parent folders are created later,
    so the nearest existing one must take new files."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    if not folder and path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    existing = path if folder else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        if not folder and path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
    except OSError as error:
        raise ValueError(f"{flag} {path} cannot be written: {error.strerror}") from None


def check_window(target: float, tolerance: float) -> None:
    """Raise a one-line ``ValueError`` unless 0 < target < 0.95 and 0 < tolerance < 1."""
    if not 0.0 < target < 0.95:
        raise ValueError(f"--target must lie in (0, 0.95), got {target}")
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"--tolerance must lie in (0, 1), got {tolerance}")


def task_options(args: argparse.Namespace) -> dict:
    """The task keyword arguments given on the command line (``--data-root``,
    ``--checkpoint`` and every ``--task-option key=value``)."""
    options = {
        key: getattr(args, key)
        for key in ("data_root", "checkpoint")
        if getattr(args, key, None) is not None
    }
    options.update(parse_option(text) for text in getattr(args, "task_option", None) or [])
    return options


def make_env(args: argparse.Namespace):
    """Build the PruneEnv that ``args`` describe, saying how long it took."""

    say(f"building {args.task} ({args.granularity} granularity)...")
    started = time.perf_counter()
    env = PruneEnv(
        make_task(args.task, device=args.device, **task_options(args)),
        target=getattr(args, "target", 0.2),
        tolerance=getattr(args, "tolerance", 0.01),
        criterion=args.criterion,
        compensation=args.compensation,
        granularity=args.granularity,
        precision=args.precision,
        bn_recalibration=args.bn_recalibration,
        lsq_ridge=args.lsq_ridge,
    )
    say(
        f"ready in {time.perf_counter() - started:.1f} s: {len(env.groups)} groups on "
        f"{env.device} ({env.device_name})"
    )
    return env


def add_env_arguments(parser: argparse.ArgumentParser, task: bool = True) -> None:
    """The task, ranking, compensation and data arguments."""
    if task:
        parser.add_argument(
            "task", metavar="TASK",
            help=f"a task ({', '.join(task_names())}), a registered or installed one, or "
            "module:attribute naming your own Task class",
        )  # fmt: skip
    parser.add_argument(
        "--granularity", default="channel", choices=["channel", "weight"],
        help="prune channel groups (default) or single weights of Linear layers",
    )  # fmt: skip
    parser.add_argument(
        "--criterion", default=None, choices=list(dict.fromkeys([*CRITERIA, *WEIGHT_CRITERIA])),
        help="ranking (default: compensated for channels, elimination-compensation for weights)",
    )  # fmt: skip
    parser.add_argument(
        "--compensation", default=None, choices=COMPENSATIONS,
        help="bias compensation (default: mean for channels, optimal for weights)",
    )  # fmt: skip
    parser.add_argument(
        "--bn-recalibration", type=int, default=0, metavar="B",
        help="re-estimate BatchNorm statistics of each masked model on B calibration batches "
        "(adaptive BN; default 0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--lsq-ridge", type=float, default=1e-2, metavar="LAMBDA",
        help="ridge of --compensation lsq and --criterion lsq, times the mean input variance "
        "(default 0.01)",
    )  # fmt: skip
    parser.add_argument("--data-root", default=None, help="full MNIST in torchvision's layout")
    parser.add_argument("--checkpoint", default=None, help="checkpoint to load instead")
    parser.add_argument(
        "--task-option", action="append", default=[], metavar="KEY=VALUE",
        help="a task option (e.g. --task-option model=resnet18 --task-option data=fake)",
    )  # fmt: skip
    add_device_arguments(parser)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision`` of every command that evaluates."""
    parser.add_argument(
        "--device", default="cpu", metavar="DEVICE",
        help="where to evaluate: cpu (default), cuda, cuda:N or auto (CUDA when present)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS,
        help="evaluation precision: fp32 (default), tf32 (CUDA) or bf16 (autocast)",
    )  # fmt: skip
