"""Helpers shared by the scripts that run the original AniSOAP (make_fixtures.py,
bench_upstream.py): package versions and reading our XYZ files with ASE."""

from importlib import metadata

PACKAGES = ["anisoap", "featomic", "metatensor", "metatensor-core",
            "metatensor-operations", "numpy", "scipy", "ase", "wigners"]


def package_versions():
    """Installed version of each package the original depends on (None if absent)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_frames(path):
    """All frames of an extended XYZ file, with the `c_diameter[k]` columns under their real
    names (ASE renames unescaped `c_diameter[1]` to `c_diameter1`) and `c_q` required."""
    import ase.io

    frames = ase.io.read(path, index=":")
    for index, frame in enumerate(frames):
        for k in (1, 2, 3):
            good, mangled = f"c_diameter[{k}]", f"c_diameter{k}"
            if good not in frame.arrays and mangled in frame.arrays:
                frame.arrays[good] = frame.arrays.pop(mangled)
            if good not in frame.arrays:
                raise SystemExit(f"{path}: frame {index} has no column {good}")
        if "c_q" not in frame.arrays:
            raise SystemExit(f"{path}: frame {index} has no column c_q")
    return frames
