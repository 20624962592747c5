#!/usr/bin/env python3
"""Where the time of one `anisoap-candle --trace T.json compute ...` run goes.

Prints `read_s prepare_s loop_s search_s chunk_s stage_s` (seconds, space-separated):
  read_s    from the end of the calculator set-up (basis constants, NVRTC) to the start of
            `prepare`: reading and parsing the XYZ input (since session 15 the set-up runs
            beside the input scan, so this is the part of reading not hidden behind it);
  prepare_s the `prepare` span (System::new: per-particle data, the neighbour counting pass);
  loop_s    from the end of `prepare` to the end of the last `chunk` span: the chunk loop
            (neighbour searches, uploads, device work, downloads);
  search_s  sum of the `neighbor_list` spans (per-chunk host neighbour searches; only recorded
            on the one-device path, where they are serial with the device);
  chunk_s   sum of the `chunk` spans over all threads (uploads, kernels, power spectrum and
            the download that waits for the device);
  stage_s   sum of the `stage` spans (per-chunk staging on the producer thread: the copy of
            host pairs, or the CUDA neighbour search's launch).
Usage: trace_split.py TRACE.json
"""
import json
import sys


def main(path):
    events = json.load(open(path))
    begin = {}
    spans = []  # (name, tid, start, end)
    for e in events:
        ph = e.get("ph")
        if ph == "B":
            begin.setdefault((e["tid"], e["name"]), []).append(e["ts"])
        elif ph == "E":
            start = begin[(e["tid"], e["name"])].pop()
            spans.append((e["name"], e["tid"], start, e["ts"]))

    def ends(name):
        return [s for s in spans if s[0] == name]

    setup_end = max(s[3] for s in spans if s[0] in ("basis_constants", "nvrtc_compile"))
    prepare = ends("prepare")
    prep_start = min(s[2] for s in prepare)
    prep_end = max(s[3] for s in prepare)
    prepare_s = sum(s[3] - s[2] for s in prepare)
    chunks = ends("chunk")
    loop_end = max(s[3] for s in chunks) if chunks else prep_end
    search = sum(s[3] - s[2] for s in ends("neighbor_list"))
    chunk = sum(s[3] - s[2] for s in chunks)
    stage = sum(s[3] - s[2] for s in ends("stage"))
    us = 1e-6
    print(
        f"{(prep_start - setup_end) * us:.3f} {prepare_s * us:.3f} "
        f"{(loop_end - prep_end) * us:.3f} {search * us:.3f} {chunk * us:.3f} {stage * us:.3f}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
