#!/usr/bin/env python3
"""Runs the original AniSOAP's own unit tests of EllipsoidalDensityProjection
(tests/unit-tests/test_ellipsoidal_density_projection.py at upstream commit 6b288697) against
anisoap_candle by import substitution, and against the original itself, and writes a table.

    python scripts/python_upstream_tests.py --tests FILE --candle-python PY \
        [--original-python PY] --output results/python/upstream_unit_tests.md

Substitution: a temporary package `anisoap` whose `anisoap.representations` exports
`anisoap_candle.EllipsoidalDensityProjection` comes first on sys.path; the test file is run
unchanged with pytest. The original column runs the same file with the original installed.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

# Why a test fails (or passes for a different reason) with anisoap_candle.
REASONS = {
    "test_no_rotations": (
        "deliberate: a frame without the rotation_key array is an error naming the frame and "
        "the array (ValueError); the original only warns and computes with all-zero rotation "
        "matrices, i.e. meaningless numbers (maths notes §1.5)"
    ),
}
NOTES = {
    "test_hypers": "the test's message check sits after the raise and never runs; types match",
    "test_frames_normalization_condition": (
        "transform(normalize=False) runs the float64 reference path; radial_basis."
        "orthonormalize_basis reproduces the original's"
    ),
}

SHIM = '''"""Import substitution: `anisoap.representations` is anisoap_candle."""
'''
SHIM_REPR = '''from anisoap_candle import EllipsoidalDensityProjection  # noqa: F401
'''


def run(python, test_file, workdir, extra_path, label):
    junit = workdir / f"{label}.xml"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(p) for p in extra_path] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
    cmd = [python, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "-W", "ignore::DeprecationWarning"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    print(f"--- {label}: {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname').split('.')[-1]}::{case.get('name')}"
        outcome, message = "pass", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "fail" if child.tag == "failure" else "error"
                message = (child.get("message") or "").splitlines()[0][:160]
            elif child.tag == "skipped":
                outcome, message = "skip", (child.get("message") or "")[:160]
        results[name] = (outcome, message)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", required=True, type=pathlib.Path)
    parser.add_argument("--candle-python", default=sys.executable)
    parser.add_argument("--candle-path", type=pathlib.Path, action="append", default=[],
                        help="extra sys.path entries where anisoap_candle is found")
    parser.add_argument("--original-python")
    parser.add_argument("--output", required=True, type=pathlib.Path)
    parser.add_argument("--source", default="upstream commit 6b288697")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        shim = tmp / "shim"
        (shim / "anisoap" / "representations").mkdir(parents=True)
        (shim / "anisoap" / "__init__.py").write_text(SHIM)
        (shim / "anisoap" / "representations" / "__init__.py").write_text(SHIM_REPR)
        work = tmp / "work"
        work.mkdir()
        test_file = work / args.tests.name
        shutil.copy(args.tests, test_file)
        # The shim must win over any installed `anisoap`.
        check = subprocess.run(
            [args.candle_python, "-c",
             "import anisoap.representations as r, anisoap_candle; "
             "assert r.EllipsoidalDensityProjection is anisoap_candle.EllipsoidalDensityProjection"],
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, [shim, *args.candle_path]))),
            capture_output=True, text=True)
        if check.returncode:
            raise SystemExit(f"import substitution failed:\n{check.stderr}")
        candle = run(args.candle_python, test_file, work, [shim, *args.candle_path], "candle")
        original = None
        if args.original_python:
            original = run(args.original_python, test_file, work, [], "original")

    names = sorted(set(candle) | set(original or {}), key=lambda n: (n.split("[")[0], n))
    lines = [
        "# The original AniSOAP's unit tests, run against anisoap_candle",
        "",
        f"`tests/unit-tests/test_ellipsoidal_density_projection.py` of {args.source}, run",
        "unchanged with pytest; `anisoap.representations.EllipsoidalDensityProjection` is",
        "replaced by `anisoap_candle.EllipsoidalDensityProjection` (a shim package first on",
        "`sys.path`). Reproduce: `bash scripts/python_compare.sh` "
        "(`scripts/python_upstream_tests.py`).",
        "",
        "| test | original | anisoap_candle | why / note |",
        "|---|---|---|---|",
    ]
    counts = {}
    for name in names:
        ours, message = candle.get(name, ("absent", ""))
        theirs = original.get(name, ("absent", ""))[0] if original else "not run"
        counts[ours] = counts.get(ours, 0) + 1
        base = name.split("::")[-1].split("[")[0]
        why = REASONS.get(base, "") if ours != "pass" else NOTES.get(base, "")
        if ours != "pass" and not why:
            why = message
        lines.append(f"| `{name}` | {theirs} | {ours} | {why} |")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    lines += ["", f"anisoap_candle: {summary} (of {len(names)})."]
    if original:
        oc = {}
        for outcome, _ in original.values():
            oc[outcome] = oc.get(outcome, 0) + 1
        lines.append("The original: " + ", ".join(f"{v} {k}" for k, v in sorted(oc.items())) + ".")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
