"""The README's support table: every architecture of ``prunegym.bench.support.ARCHITECTURES``
checked (random weights, fake 64-px images, every group pruned by 0.3), as Markdown.

    python benchmarks/support_table.py
"""

from __future__ import annotations

from prunegym.bench.support import ARCHITECTURES, check_architecture


def main() -> None:
    print("| architecture | groups | parameters | after c = 0.3 | export = masked | reset |")
    print("|---|---|---|---|---|---|")
    for name, _ in ARCHITECTURES:
        row = check_architecture(name)
        if "error" in row:
            print(f"| {name} | – | – | – | not supported: {row['error']} | – |")
            continue
        print(
            f"| {name} | {row['groups']} | {row['parameters']:,} | {row['exported']:,} | "
            f"yes ({row['export_error']:.1e}) | {'bit-exact' if row['reset_exact'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
