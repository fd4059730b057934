#!/usr/bin/env bash
# Installs the Debian packages StreetWatch's tests and demos need, only those missing.
set -euo pipefail
packages=(
  ffmpeg                          # builds test clips, serves RTSP test cameras
  opencv-doc                      # ships examples/data/vtest.avi, real street footage
  python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-tools
  postgresql                      # the production store, tested alongside SQLite
  chromium                        # the console's browser tests (driven by Playwright)
  fonts-wqy-microhei              # Chinese glyphs for the console's screenshots
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
