#!/usr/bin/env bash
# The project's test command (README): format, lint, feature plumbing, then all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The cuda/metal features must at least resolve on Linux (metal pulls nothing off macOS).
cargo check -p anisoap-candle --features metal --quiet
cargo test --workspace --release
# Fuzz targets with overflow checks and debug assertions on (the `fuzz` profile); in the
# release run above they print that they are skipped and why.
cargo test --profile fuzz -p anisoap-candle --test fuzz
# The Python package: build it into target/py-venv, run its pytest suite.
bash scripts/test_python.sh
