#!/usr/bin/env bash
# The project's test command (README): format, lint, feature plumbing, then all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Doc comments: every intra-doc link resolves (public docs may not link private items).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet
# The cuda/metal features must at least resolve on Linux (metal pulls nothing off macOS).
cargo check -p anisoap-candle --features metal --quiet
cargo test --workspace --release
# Fuzz targets with overflow checks and debug assertions on (the `fuzz` profile); in the
# release run above they print that they are skipped and why.
cargo test --profile fuzz -p anisoap-candle --test fuzz
# The Python package: build it into target/py-venv, run its pytest suite.
bash scripts/test_python.sh
# Clusters (scripts/cluster/README.md): a real single-node SLURM on localhost runs the shard
# array + merge job; merged == single run byte for byte (~1 min; installs slurm-wlm + munge).
# The HTCondor test debootstraps Debian trixie (~3 min fresh): only on request.
if [ "${CI:-}" = true ] || [ "${ANISOAP_SLURM_TEST:-}" = 1 ]; then
    ANISOAP_CANDLE_BIN="$PWD/target/release/anisoap-candle" bash scripts/cluster/slurm/local_test.sh
else
    echo "SLURM end-to-end test not run: it needs root and starts daemons; it runs in CI (CI=true) or with ANISOAP_SLURM_TEST=1 (last log: results/cluster/slurm_local_test.log)"
fi
if [ "${ANISOAP_HTCONDOR_TEST:-}" = 1 ]; then
    ANISOAP_CANDLE_BIN="$PWD/target/release/anisoap-candle" bash scripts/cluster/htcondor/local_test.sh
else
    echo "HTCondor end-to-end test not run: it builds a Debian trixie chroot (~3 min fresh); set ANISOAP_HTCONDOR_TEST=1 (last log: results/cluster/htcondor_local_test.log)"
fi
