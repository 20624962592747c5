#!/usr/bin/env python3
"""Summarises a bench.csv of scripts/cuda_h200/s12_run.sh (binaries side by side in one run).

Prints one CSV row per (binary, lmax, dtype): repetitions, pairs, the range and median of
`prepare + loop` throughput (parsed frames -> features, pairs/s), the median prepare, loop and
whole-command seconds, peak GPU memory, and the speed-up of the median over session 11's binary
("old") in the same run. `profile` rows (device syncs inside the spans) are left out.
Usage: s12_table.py bench.csv > table.csv
"""
import csv
import statistics
import sys


def main(path):
    rows = [r for r in csv.DictReader(open(path)) if r["binary"] != "profile"]
    groups = {}
    for r in rows:
        groups.setdefault((r["binary"], int(r["lmax"]), r["dtype"]), []).append(r)
    med = {k: statistics.median(float(r["prepare_loop_pairs_per_s"]) for r in v)
           for k, v in groups.items()}
    out = csv.writer(sys.stdout)
    out.writerow(["binary", "lmax", "dtype", "reps", "pairs", "min_pairs_per_s",
                  "median_pairs_per_s", "max_pairs_per_s", "median_prepare_s", "median_loop_s",
                  "median_wall_s", "peak_gpu_mib", "speedup_vs_old"])
    order = {"new": 0, "tables": 1, "old": 2}
    for key in sorted(groups, key=lambda k: (k[1], k[2], order.get(k[0], 9))):
        v = groups[key]
        rates = [float(r["prepare_loop_pairs_per_s"]) for r in v]
        m = lambda f: statistics.median(float(r[f]) for r in v)
        old = med.get(("old", key[1], key[2]))
        out.writerow([key[0], key[1], key[2], len(v), v[0]["pairs"], f"{min(rates):.3e}",
                      f"{statistics.median(rates):.3e}", f"{max(rates):.3e}",
                      f"{m('prepare_s'):.3f}", f"{m('loop_s'):.3f}", f"{m('wall_s'):.3f}",
                      max(int(r["peak_gpu_mib"]) for r in v),
                      f"{statistics.median(rates) / old:.2f}" if old else ""])


if __name__ == "__main__":
    main(sys.argv[1])
