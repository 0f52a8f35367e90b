#!/usr/bin/env bash
# The HTML views in headless Chromium (driven through chromedriver, W3C WebDriver): the trace view's clicks,
# collapse and keyboard; hostile span text rendered as text with no script run; two users each seeing their own
# rows; a 20,000-span trace drawn a window at a time. Screenshots are left in $CLUSTER_DIR/views.
set -euo pipefail
cd "$(dirname "$0")/../.."
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'drop database if exists views_test' -c 'create database views_test'
psql -X -q -v ON_ERROR_STOP=1 -d views_test -c 'create extension analytics_ext'
psql -X -q -v ON_ERROR_STOP=1 -d views_test -f tests/integration/views_seed.sql >/dev/null
python3 tests/integration/views_browser.py views_test "$CLUSTER_DIR/views" "$@"
