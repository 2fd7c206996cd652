#!/bin/sh
# Make the clones folder bench/scan_quality.py reads: one clone per project of projects.toml,
# named as its `folder` says, holding the pinned commit.
#
#   bench/scan_quality/fetch.sh DIR                  # clone from GitHub (needs the network)
#   bench/scan_quality/fetch.sh DIR --from MIRRORS   # clone from local mirrors: MIRRORS/FOLDER/repo
#                                                    # or MIRRORS/FOLDER (bare or not)
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [--from MIRRORS]" >&2; exit 2; }
dir=$1
mirrors=""
if [ $# -ge 3 ] && [ "$2" = "--from" ]; then mirrors=$3; fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
# name, folder and pinned commit of each project, one line each
python3 - "$here/projects.toml" <<'PY' | while read -r name folder pinned; do
import sys, tomllib
for p in tomllib.load(open(sys.argv[1], "rb"))["project"]:
    print(p["name"], p["folder"], p["pinned"])
PY
    dest="$dir/$folder"
    if [ -d "$dest" ] && git -C "$dest" cat-file -e "$pinned^{commit}" 2>/dev/null; then
        echo "$name: $dest has $pinned"
        continue
    fi
    if [ -n "$mirrors" ]; then
        src="$mirrors/$folder/repo"
        [ -d "$src" ] || src="$mirrors/$folder"
    else
        src="https://github.com/$name.git"
    fi
    if [ -d "$dest" ]; then
        git -C "$dest" fetch -q "$src"
    else
        git clone -q "$src" "$dest"
    fi
    git -C "$dest" cat-file -e "$pinned^{commit}" || { echo "$name: $src lacks $pinned" >&2; exit 1; }
    echo "$name: $dest has $pinned"
done
