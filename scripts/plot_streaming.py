#!/usr/bin/env python3
"""Figure of peak RSS against trajectory length from scripts/measure_streaming.sh's CSV.

    python scripts/plot_streaming.py results/tables/streaming_rss.csv results/figures/streaming_rss.png

Needs matplotlib. Two panels: 2-particle frames (1e3..1e6 frames) and 10^4-particle frames
(10..1000 frames); one line per output kind and binary (streaming vs the in-memory version).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(table, figure):
    rows = list(csv.DictReader(open(table)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, particles, title in [
        (axes[0], "2", "2-particle frames"),
        (axes[1], "10000", "10⁴-particle frames"),
    ]:
        series = {}
        for r in rows:
            if r["particles_per_frame"] != particles:
                continue
            key = (r["binary"], r["output"])
            series.setdefault(key, []).append((int(r["frames"]), float(r["peak_rss_mb"])))
        for (binary, output), points in sorted(series.items()):
            points.sort()
            style = "-o" if binary == "streaming" else "--s"
            ax.plot(*zip(*points), style, label=f"{binary}, {output}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("frames in the input")
        ax.set_ylabel("peak RSS (MB)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("compute, GTO lmax 4, cutoff 3: peak RSS vs trajectory length (2-core VM)")
    fig.savefig(figure, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
