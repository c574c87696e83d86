#!/usr/bin/env bash
# Measures the avatar pipeline on hostile images (issue 14, finding 1): each
# case in its own process under /usr/bin/time -v, so the peak RSS is that
# image's alone. Prints one line per case: outcome, time, peak RSS.
#
#   bench/image-bombs.sh [DIR]     (DIR defaults to a fresh temp dir)
#
# Progressive and CMYK JPEGs and lossy WebP need jpegtran (libjpeg-turbo-progs),
# python3-pil and cwebp (webp); cases whose tool is missing are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d)}
cargo build --release --example image_bombs >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/image_bombs
"$bin" generate "$dir" >&2
# A jpegtran scan script for $1 components: DC in two passes, then $2 AC bands
# per component, each in two passes: 2 + 2 × $1 × $2 scans.
scans() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
comps, bands = int(sys.argv[1]), int(sys.argv[2])
all_ = ",".join(map(str, range(comps)))
lines = [f"{all_}: 0-0, 0, 1;", f"{all_}: 0-0, 1, 0;"]
step = 63 // bands
edges = [1 + i * step for i in range(bands)] + [64]
for ah, al in ((0, 1), (1, 0)):
    for c in range(comps):
        lines += [f"{c}: {a}-{b - 1}, {ah}, {al};" for a, b in zip(edges, edges[1:])]
print("\n".join(lines))
PY
}
if command -v jpegtran >/dev/null; then
    jpegtran -progressive -outfile "$dir/jpeg-max-progressive.jpg" "$dir/jpeg-max.jpg"
    # 2 + 2 × 3 × 5 = 32 scans, the most accepted; 2 + 2 × 3 × 16 = 98 (zune-jpeg's own limit is 100).
    scans 3 5 >"$dir/scans-32"
    scans 3 16 >"$dir/scans-98"
    jpegtran -scans "$dir/scans-32" -outfile "$dir/jpeg-max-32-scans.jpg" "$dir/jpeg-max.jpg"
    jpegtran -scans "$dir/scans-98" -outfile "$dir/jpeg-max-98-scans.jpg" "$dir/jpeg-max.jpg"
    rm "$dir/scans-32" "$dir/scans-98"
fi
if command -v cwebp >/dev/null; then
    cwebp -quiet -q 80 "$dir/source-max.ppm" -o "$dir/webp-max-lossy.webp"
    # From the JPEG: its noise makes the lossless decoder work hardest.
    cwebp -quiet -lossless -z 9 "$dir/jpeg-max.jpg" -o "$dir/webp-max-lossless-z9.webp"
fi
if /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    # Four components, progressive, no subsampling: the most a JPEG decoder keeps.
    /usr/bin/python3 - "$dir" <<'PY'
import sys
from PIL import Image
d = sys.argv[1]
img = Image.open(f"{d}/source-max.ppm").convert("CMYK")
img.save(f"{d}/jpeg-max-cmyk-progressive.jpg", quality=90, progressive=True, subsampling=0)
PY
    if command -v jpegtran >/dev/null; then
        # 2 + 2 × 4 × 3 = 26 scans over four components.
        scans 4 3 >"$dir/scans-26"
        jpegtran -scans "$dir/scans-26" -outfile "$dir/jpeg-max-cmyk-26-scans.jpg" "$dir/jpeg-max-cmyk-progressive.jpg"
        rm "$dir/scans-26"
    fi
fi
rm -f "$dir/source-max.ppm"
for file in "$dir"/*; do
    report=$( { /usr/bin/time -f '%e %M' "$bin" measure "$file"; } 2>&1 )
    line=$(head -n1 <<<"$report")
    read -r wall rss <<<"$(tail -n1 <<<"$report")"
    printf '%s\t(wall %s s, max RSS %d MiB)\n' "$line" "$wall" "$((rss / 1024))"
done
