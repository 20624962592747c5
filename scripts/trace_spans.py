#!/usr/bin/env python3
"""Total seconds and count of every span name in one `anisoap-candle --trace T.json` run.

With ANISOAP_CUDA_PROFILE=1 the CUDA kernels' spans (cuda_search, cuda_pair_coefficients,
cuda_neighbor_sum, power_spectrum, ...) end with a device synchronisation, so their totals are
the serialised device times of each stage.
Usage: trace_spans.py TRACE.json [NAME ...]   (all names when none is given)
"""
import json
import sys


def main(path, names):
    begin = {}
    total = {}
    count = {}
    for e in json.load(open(path)):
        key = (e.get("tid"), e.get("name"))
        if e.get("ph") == "B":
            begin.setdefault(key, []).append(e["ts"])
        elif e.get("ph") == "E":
            start = begin[key].pop()
            total[e["name"]] = total.get(e["name"], 0.0) + (e["ts"] - start) * 1e-6
            count[e["name"]] = count.get(e["name"], 0) + 1
    for name in names or sorted(total, key=lambda n: -total[n]):
        print(f"{name} {total.get(name, 0.0):.4f} {count.get(name, 0)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
