"""How long ``prunegym solve TASK --solver learned-policy`` takes to answer, and where it goes.

    python benchmarks/learned_policy_latency.py [--task mnist-ae] [--target 0.35] [--repeats 5]
        [--solver learned-policy]

Each repeat runs four fresh processes in turn (so disk caches and CPU load are shared
alike): ``python -c "import torch"``, ``python -c "import prunegym.cli.main"`` (every import
the command makes before it starts working), the whole command, and the whole command with
``screen=false`` (the screen's price, where the task screens by default). It prints the median
wall seconds of each, the command's seconds after its imports (whole − imports) and the share of the
whole that ``import torch`` alone takes. Wall seconds from process start to exit, measured
with ``time.perf_counter`` around ``subprocess.run``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall_seconds(argv: list[str]) -> float:
    """Seconds for one process to start, run ``argv`` and exit; raises if it fails."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-ae")
    parser.add_argument("--target", type=float, default=0.35)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--solver", default="learned-policy", help="with its options, if any")
    args = parser.parse_args()
    command = [sys.executable, "-m", "prunegym.cli.main", "solve", args.task]
    unscreened = args.solver + ("," if ":" in args.solver else ":") + "screen=false"
    unscreened = [*command, "--solver", unscreened, "--target", str(args.target)]
    command += ["--solver", args.solver, "--target", str(args.target)]
    runs = {
        "import torch": [sys.executable, "-c", "import torch"],
        "imports of the command": [sys.executable, "-c", "import prunegym.cli.main"],
        "whole command": command,
        "with screen=false": unscreened,
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, argv in runs.items():
            seconds[name].append(wall_seconds(argv))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{' '.join(command[1:])}: median of {args.repeats} runs, wall seconds")
    for name, value in median.items():
        spread = f"{min(seconds[name]):.2f} to {max(seconds[name]):.2f}"
        print(f"  {name:<24} {value:6.2f} s  ({spread})")
    after = median["whole command"] - median["imports of the command"]
    print(f"  {'after the imports':<24} {after:6.2f} s")
    share = median["import torch"] / median["whole command"]
    print(f"  import torch / whole command: {share:.2f}")


if __name__ == "__main__":
    main()
