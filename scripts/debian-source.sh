#!/usr/bin/env bash
# Downloads Debian bookworm's source package PKG into DIR through a private deb-src list (the
# machine's own apt sources stay untouched) and prints the path of its orig tarball.
#   scripts/debian-source.sh PKG DIR
set -euo pipefail
PKG=$1
W=$2
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
mkdir -p "$W/lists/partial"
echo "deb-src $MIRROR bookworm main" > "$W/src.list"
APTOPT=(-o Dir::Etc::SourceList="$W/src.list" -o Dir::Etc::SourceParts=/nonexistent
        -o Dir::State::Lists="$W/lists")
apt-get "${APTOPT[@]}" update -qq >&2
(cd "$W" && apt-get "${APTOPT[@]}" source --download-only -qq "$PKG") >&2
find "$W" -maxdepth 1 -name "${PKG}_*.orig.tar.*" -print -quit
