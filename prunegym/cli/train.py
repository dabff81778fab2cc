"""``prunegym train`` and ``prunegym train-tdmpc``: retrain the shipped models."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from prunegym.cli.common import say as _say
from prunegym.training.autoencoder import RECIPE, train_autoencoder
from prunegym.training.tdmpc import Trainer


def cmd_train(args: argparse.Namespace) -> int:
    if args.task != "mnist-ae":
        raise SystemExit(
            f"prunegym train: only 'mnist-ae' has a training recipe, not {args.task!r}"
        )

    overrides = {
        k: v for k, v in {"epochs": args.epochs, "seed": args.seed}.items() if v is not None
    }
    bar = tqdm(total=overrides.get("epochs", RECIPE["epochs"]), desc="training", unit="epoch")

    def progress(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(train_mse=f"{loss:.5f}")

    metrics = train_autoencoder(args.out, data_root=args.data_root, progress=progress, **overrides)
    bar.close()
    print(
        f"saved {args.out}: test psnr {metrics['psnr']:.2f} dB, mse {metrics['mse']:.6f}, "
        f"{metrics['train_seconds']:.0f} s"
    )
    print(
        f"use it with: prunegym solve mnist-ae --checkpoint {args.out}  (or checkpoint= in Python)"
    )
    return 0


def cmd_train_tdmpc(args: argparse.Namespace) -> int:

    bar = tqdm(total=args.steps, desc="TD-MPC", unit="step", file=sys.stderr, mininterval=2)

    def progress(env_step: int, row: dict) -> None:
        bar.update(env_step - bar.n)
        shown = {"return": f"{row['return']:.0f}"}
        if "eval_return" in row:
            progress.last_eval = row["eval_return"]
        if progress.last_eval is not None:
            shown["eval"] = f"{progress.last_eval:.0f}"
        bar.set_postfix(shown, refresh=False)

    progress.last_eval = None
    trainer = Trainer(
        args.out,
        args.steps,
        seed=args.seed,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        progress=progress,
    )
    if args.resume:
        trainer.load_checkpoint()
        bar.update(trainer.env_step)
        _say(f"resumed {args.out} at step {trainer.env_step} (episode {trainer.episode})")
    elif trainer.checkpoint_path.exists():
        raise ValueError(
            f"{trainer.checkpoint_path} exists: pass --resume to continue it, or another --out"
        )
    rows = trainer.run()
    bar.close()
    final = rows[-1].get("eval_return", float("nan"))
    print(
        f"trained {trainer.env_step} steps in {trainer.wall:.0f} s; evaluation return "
        f"{final:.1f}; wrote {args.out}/agent.pt, log.csv, curve.png"
    )
    return 0


def add_train_parsers(commands) -> None:
    """``prunegym train`` and ``prunegym train-tdmpc``."""
    train = commands.add_parser("train", help="retrain a task's checkpoint from scratch")
    train.add_argument("task", choices=["mnist-ae"])
    train.add_argument("--out", required=True, help="checkpoint path to write")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--data-root", default=None)
    train.set_defaults(run=cmd_train)

    tdmpc = commands.add_parser("train-tdmpc", help="train the TD-MPC pixel-pendulum agent")
    tdmpc.add_argument("--steps", type=int, default=30_000, help="environment steps")
    tdmpc.add_argument("--seed", type=int, default=0)
    tdmpc.add_argument("--out", default="runs/tdmpc", help="run directory")
    tdmpc.add_argument("--resume", action="store_true", help="continue the run in --out")
    tdmpc.add_argument("--eval-every", type=int, default=2000, help="steps between evaluations")
    tdmpc.add_argument(
        "--checkpoint-every", type=int, default=1000, help="steps between resumable checkpoints"
    )
    tdmpc.set_defaults(run=cmd_train_tdmpc)
