#!/usr/bin/env bash
# Every SQL example of README.md and docs/*.md runs and prints what the page shows (tests/doctest/doctest.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tests/doctest/doctest.py README.md docs/*.md
