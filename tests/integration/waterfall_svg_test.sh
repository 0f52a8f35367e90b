#!/usr/bin/env bash
# analytics.trace_waterfall_svg renders: the SVG is well-formed XML with one bar per span, and headless Chromium
# paints it with the red error bars, the blue chat bar and the dark critical-path outline where they belong.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$CLUSTER_DIR/waterfall"
mkdir -p "$out"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database waterfall_svg'
psql -X -q -v ON_ERROR_STOP=1 -d waterfall_svg -c 'create extension analytics_ext'
psql -X -q -v ON_ERROR_STOP=1 -d waterfall_svg -v otlp_request="$(cat tests/fixtures/otlp_agent_run.json)" -f demo/sample_data.sql >/dev/null
psql -X -At -v ON_ERROR_STOP=1 -d waterfall_svg -c "select analytics.trace_waterfall_svg('trace-rag-002', user_id => 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')" > "$out/w.svg"

python3 - "$out/w.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
bars = [r for r in root.iter(ns + "rect") if r.find(ns + "title") is not None]
assert len(bars) == 5, f"expected 5 bars, got {len(bars)}"
assert sum(1 for b in bars if b.get("fill") == "#d62828") == 2, "two failed spans are red"
print("svg: well-formed, 5 bars, 2 red")
PY

chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
    echo "chromium is not installed (scripts/setup.sh installs it)"; exit 1
fi
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$out/profile" --hide-scrollbars \
    --window-size=1200,260 --screenshot="$out/w.png" "file://$out/w.svg" >/dev/null 2>&1
counts=$(python3 tests/integration/png_colors.py "$out/w.png" d62828 4f7cff 101828)
echo "$counts"
red=$(echo "$counts" | awk '$1=="d62828"{print $2}')
blue=$(echo "$counts" | awk '$1=="4f7cff"{print $2}')
outline=$(echo "$counts" | awk '$1=="101828"{print $2}')
# two long red bars (23.5 s and 10 s of a 23.5 s axis) cover thousands of pixels, the chat bar about a thousand;
# the 1.5 px critical-path outline is antialiased, so only some dozens of its pixels carry the exact colour
[ "$red" -gt 3000 ] && [ "$blue" -gt 800 ] && [ "$outline" -gt 20 ]
cp "$out/w.png" /tmp/analytics_ext_waterfall.png
echo "screenshot: /tmp/analytics_ext_waterfall.png"
