#!/usr/bin/env bash
# Captures the user guide's screenshots (docs/images/*.png) from the real editor under Xvfb.
# Needs: xvfb, imagemagick, and a built `petri` (default: target/release/petri).
#   bash app/gui/scripts/screenshots.sh [path/to/petri]
set -euo pipefail
cd "$(dirname "$0")/../../.."
PETRI=${1:-${CARGO_TARGET_DIR:-target}/release/petri}
OUT=docs/images
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'kill $XVFB 2>/dev/null || true; rm -rf "$WORK"' EXIT
DISP=:97
Xvfb $DISP -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
sleep 2

# shot NAME ENV... : start petri on the bundled example with the given scripted session,
# wait for it to lay out (and finish its run), screenshot, quit.
shot() {
    local name=$1
    shift
    rm -f "$WORK/layout.json"
    env -u WAYLAND_DISPLAY DISPLAY=$DISP PETRI_CACHE_DIR="$WORK/cache" PETRI_CONFIG_DIR="$WORK/config" \
        PETRI_GUI_LAYOUT="$WORK/layout.json" PETRI_GUI_EXIT_AFTER=120 "$@" "$PETRI" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 240); do
        [ -f "$WORK/layout.json" ] && break
        sleep 0.5
    done
    sleep 2
    import -display $DISP -window root "$WORK/$name.png"
    kill $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    # Small files: 1000 px wide, 128 colours.
    convert "$WORK/$name.png" -resize 1000x -colors 128 "$OUT/$name.png"
    echo "wrote $OUT/$name.png ($(stat -c %s "$OUT/$name.png") bytes)"
}

shot editor-run PETRI_GUI_RUN=1 PETRI_GUI_SELECT=label
shot editor-overlay PETRI_GUI_RUN=1 PETRI_GUI_SELECT=threshold PETRI_GUI_VIEW=overlay
shot finder PETRI_GUI_FINDER="watershed"
shot log PETRI_GUI_RUN=1 PETRI_GUI_SELECT=measure PETRI_GUI_PANEL=log
