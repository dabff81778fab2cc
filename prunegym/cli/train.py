"""``prunegym train`` and ``prunegym train-tdmpc``: retrain the shipped models."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from prunegym.cli.common import check_writable
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


def cmd_train_policy(args: argparse.Namespace) -> int:
    from prunegym.agents.learned_policy import save_policy
    from prunegym.agents.policy_training import RECIPE, train_policy
    from prunegym.agents.tensorboard import check_tensorboard, tensorboard_writer
    from prunegym.envs.prune_env import PruneEnv

    if args.generations < 1 or args.seed < 0:
        raise ValueError(
            f"--generations must be >= 1 and --seed >= 0, got {args.generations} and {args.seed}"
        )
    check_writable(args.out, "--out")
    recipe = {**RECIPE, "generations": args.generations, "seed": args.seed}
    tasks = dict(RECIPE["tasks"])
    if args.tasks:
        names = [name.strip() for name in args.tasks.split(",") if name.strip()]
        tasks = {name: tasks.get(name, 1) for name in names}
    for name in args.without or []:
        if name not in tasks:
            raise ValueError(f"--without {name!r}: not among the training tasks {sorted(tasks)}")
        tasks.pop(name)
    if not tasks:
        raise ValueError("no training task left")
    recipe["tasks"] = tasks
    if args.tensorboard is not None:  # before the tasks are built, not after
        check_tensorboard(args.tensorboard)
    envs = {}
    for name in tasks:
        _say(f"building {name}...")
        envs[name] = PruneEnv(
            name, granularity="channel", observation="features", device=args.device
        )
    writer = tensorboard_writer(args.tensorboard, "train-policy")
    bar = tqdm(total=args.generations, desc="policy", unit="gen", file=sys.stderr)

    def progress(generation: int, row: dict) -> None:
        bar.update(1)
        bar.set_postfix({n: f"{row[n]['reward']:.2f}" for n in tasks}, refresh=False)

    options = {k: recipe[k] for k in ("generations", "pairs", "sigma", "learning_rate", "seed")}
    try:
        policy, history = train_policy(
            envs, targets_per_task=tasks, target_range=tuple(recipe["target_range"]),
            hidden=recipe["hidden"], writer=writer, progress=progress, **options,
        )  # fmt: skip
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    recipe["seconds"] = round(history[-1]["seconds"], 1)
    save_policy(policy, args.out, recipe)
    print(f"trained on {', '.join(tasks)} in {recipe['seconds']:.0f} s; wrote {args.out}")
    print(f"use it with: prunegym solve TASK --solver learned-policy --option policy={args.out}")
    return 0


def add_train_parsers(commands) -> None:
    """``prunegym train``, ``prunegym train-tdmpc`` and ``prunegym train-policy``."""
    from prunegym.agents.policy_training import RECIPE as POLICY_RECIPE

    policy = commands.add_parser(
        "train-policy",
        help="train a pruning policy that serves any network (learned-policy)",
        description="Train the set policy of --solver learned-policy with evolution strategies "
        "on several tasks at once (the shipped recipe; about 9 minutes on 2 CPU cores).",
    )
    policy.add_argument("--out", required=True, help="policy file to write (.pt)")
    policy.add_argument(
        "--generations", type=int, default=POLICY_RECIPE["generations"],
        help=f"evolution-strategy updates (default: {POLICY_RECIPE['generations']})",
    )  # fmt: skip
    policy.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    policy.add_argument(
        "--tasks", default=None,
        help=f"comma-separated tasks (default: {','.join(POLICY_RECIPE['tasks'])})",
    )  # fmt: skip
    policy.add_argument(
        "--without", action="append", metavar="TASK", help="leave a task out (repeatable)"
    )
    policy.add_argument(
        "--tensorboard", default=None, metavar="DIR",
        help="log reward, metric and sparsity error per task and generation to TensorBoard",
    )  # fmt: skip
    policy.add_argument(
        "--device", default="cpu", help="where the tasks evaluate: cpu, cuda, cuda:N or auto"
    )
    policy.set_defaults(run=cmd_train_policy)

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
