"""Dense MNIST-autoencoder forward with and without subnormal weights, timed in turn.

Weight decay can leave weights below 1.2e-38 (subnormal floats). They change no metric but
slow matrix products several-fold on some CPUs. prunegym flushes them to zero when it loads a
checkpoint; this script shows what that is worth on this machine, for any autoencoder
checkpoint (the one before the shipped checkpoint was re-saved clean:
``git show 42817bf:prunegym/assets/mnist_autoencoder.pt > old.pt``)::

    python benchmarks/subnormal_forward.py --checkpoint old.pt

It prints the subnormal count, the PSNR both ways and the median forward time (1,000
evaluation digits) of each, timed alternately so that slow phases of the machine hit both.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from prunegym.tasks.checkpoints import flush_subnormals, safe_load
from prunegym.tasks.mnist_autoencoder import MNISTAutoencoder, MNISTAutoencoderTask


def model_from(state_dict: dict, config: dict) -> MNISTAutoencoder:
    hidden = tuple(config.get("hidden", (512, 256)))
    model = MNISTAutoencoder(hidden=hidden, latent=int(config.get("latent", 128)))
    model.load_state_dict(state_dict)  # as stored: no flushing
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default=None, help="autoencoder checkpoint (default: shipped)"
    )
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    task = MNISTAutoencoderTask(checkpoint=args.checkpoint)
    payload = safe_load(args.checkpoint) if args.checkpoint else None
    if payload is None:
        from importlib import resources

        with resources.as_file(resources.files("prunegym.assets") / "mnist_autoencoder.pt") as p:
            payload = safe_load(p)
    raw = {name: tensor.clone() for name, tensor in payload["state_dict"].items()}
    clean = {name: tensor.clone() for name, tensor in raw.items()}
    count = flush_subnormals(clean)
    models = {
        "as stored": model_from(raw, payload["config"]),
        "flushed": model_from(clean, payload["config"]),
    }
    images = task.eval_images
    times = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(images)  # warm-up
        for _ in range(args.repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(images)
                times[name].append(time.perf_counter() - start)
    print(f"subnormal weights: {count:,}  (torch threads: {torch.get_num_threads()})")
    for name, model in models.items():
        psnr = task.evaluate(model)["psnr"]
        print(
            f"{name:<10} PSNR {psnr:.6f} dB  forward {1e3 * statistics.median(times[name]):.2f} ms"
        )
    ratio = statistics.median(times["as stored"]) / statistics.median(times["flushed"])
    print(f"as stored / flushed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
