"""The seconds of one ``env.step``, as the benchmark scripts and examples report them."""

from __future__ import annotations

import time

import numpy as np


def median_step_seconds(env, coefficients: np.ndarray, repeats: int = 20) -> float:
    """Median seconds of ``repeats`` steps of ``env`` with the cache off, alternating
    ``coefficients`` and ``0.9·coefficients`` (two masks: nothing is reused between steps);
    the environment is reset and its cache turned back on afterwards."""
    core = env.unwrapped
    core.use_cache(False)
    times = []
    for repeat in range(repeats):
        started = time.perf_counter()
        env.step(np.asarray(coefficients) * (0.9 if repeat % 2 else 1.0))
        times.append(time.perf_counter() - started)
    core.use_cache(True)
    env.reset()
    return float(np.median(times))
