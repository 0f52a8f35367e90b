#!/usr/bin/env bash
# Scores every detector on the 41 labelled Numenta Anomaly Benchmark series in tests/data/nab (MIT; see SOURCE.md
# there) with NAB's own scoring rules, ported in crates/analytics-core/src/anomaly/nab.rs (a unit test checks that
# the port reproduces NAB's expected_scores.json from NAB's shipped results). Each detector runs with one
# configuration over every file and feeds NAB the anomaly_score column of analytics.detect_anomalies (the same Rust
# code); NAB optimises one threshold per profile over the corpus. Prints the three profile scores, the standard
# score on two halves of the categories (A: artificial + AWS CloudWatch, B: ad exchange + traffic), NAB's published
# standard score on the same files, the cost per million points, and every detector's alerts per 1,000 points of
# white noise. Run by scripts/bench.sh (its database argument is not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p analytics-core --example nab
