#!/usr/bin/env bash
# report-screenshot.sh [OUT.png]: render the sample incident report
# (internal/report sample_test.go, no ClickHouse needed) and take a screenshot
# of its HTML in headless Chromium, as a mail client would show it: no
# JavaScript involved. Default OUT: docs/report-screenshot.png.
#
# Needs chromium (apt-get install chromium); runs it with a fresh profile,
# no sandbox (root in containers), no GPU and no background networking.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/docs/report-screenshot.png}
width=${WIDTH:-1100}
height=${HEIGHT:-1500}

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
	echo "report-screenshot: chromium not found (apt-get install chromium)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$here" && SMARTLAYER_REPORT_SAMPLE="$tmp/report.html" go test ./internal/report/ -run '^TestWriteSampleReport$' -count=1 >/dev/null)

mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
	--disable-component-update --disable-sync --no-first-run --hide-scrollbars \
	--user-data-dir="$tmp/profile" --window-size="$width,$height" \
	--screenshot="$tmp/shot.png" "file://$tmp/report.html" >/dev/null 2>&1

# Keep the committed image small: fewer colours when pngquant is around.
if command -v pngquant >/dev/null; then
	pngquant --force --quality=60-85 --output "$out" "$tmp/shot.png"
else
	cp "$tmp/shot.png" "$out"
fi
echo "report-screenshot: wrote $out ($(stat -c %s "$out") bytes)"
