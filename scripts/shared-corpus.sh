#!/usr/bin/env bash
# Lays out the shared test fixture `ceph-object-corpus/` (real encoded OSDMaps, incrementals and
# CRUSH maps) from the public ceph/ceph-object-corpus repository, for the placement tests
# (`krbd_testsupport::shared_fixture("ceph-object-corpus")`). CI provides `shared/` beside the
# checkout already; this is for a machine that has none.
#
#   scripts/shared-corpus.sh                 clone the repository, write ../shared/ceph-object-corpus
#   scripts/shared-corpus.sh --from CLONE    use an existing clone (or a bare git directory)
#   scripts/shared-corpus.sh --dest DIR      write DIR instead
#
# The repository keeps `archive/<version>/objects/<Type>/<hash>`; the tests read
# `<version>/{OSDMap,OSDMap-Incremental,CrushWrapper}/<hash>` of the versions below, byte for
# byte the repository's files (`OSDMap::Incremental` is named `OSDMap-Incremental`).
# Written beside the destination and renamed into place: an interrupted run leaves nothing.
# Needs git (and, without --from, access to github.com).
set -euo pipefail

versions=(0.46-add-osd-uuid 0.52 0.61.4-60-g24c59be 0.66-500-g93b3e63 0.80-rc1-35-g4812150
          0.94.2-207-g88e7ee7 15.0.0-539-g191ab33faf 15.2.1-40-ga838bb1aae 16.2.0-90-g50f1821b4c)
url=https://github.com/ceph/ceph-object-corpus

checkout=$(cd "$(dirname "$0")/.." && pwd)
dest="$checkout/../shared/ceph-object-corpus"
from=""
while [ $# -gt 0 ]; do
    case "$1" in
        --from) from="$2"; shift 2 ;;
        --dest) dest="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -e "$dest" ]; then
    echo "$dest exists already; remove it first to lay it out again" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$from" ]; then
    git clone --quiet --bare "$url" "$work/clone.git"
    from="$work/clone.git"
fi
# A work tree or a bare git directory: read the files from HEAD either way.
git_dir=$(git -C "$from" rev-parse --git-dir)
case "$git_dir" in /*) ;; *) git_dir="$from/$git_dir" ;; esac

mkdir -p "$(dirname "$dest")"
stage=$(mktemp -d "$(dirname "$dest")/.ceph-object-corpus.XXXXXX")
trap 'rm -rf "$work" "$stage"' EXIT
for v in "${versions[@]}"; do
    for type in OSDMap OSDMap::Incremental CrushWrapper; do
        src="archive/$v/objects/$type"
        names=$(git --git-dir "$git_dir" ls-tree --name-only HEAD "$src/") || exit 1
        [ -n "$names" ] || continue
        out="$stage/$v/${type//::/-}"
        mkdir -p "$out"
        for path in $names; do
            git --git-dir "$git_dir" show "HEAD:$path" >"$out/${path##*/}"
        done
    done
    [ -d "$stage/$v" ] || { echo "the clone has no archive/$v: is it $url?" >&2; exit 1; }
done
chmod 755 "$stage"
mv -T "$stage" "$dest"
echo "wrote $dest ($(find "$dest" -type f | wc -l) files)"
