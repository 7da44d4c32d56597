#!/usr/bin/env bash
# Benchmark of `krbd-forge follow` and of a compiler cache, side by side in one run, on the
# two newest 6.12 ABIs that apt offers with source (A1 older, A2 newer):
#   (f-cold) a release appearing in a local APT mirror (127.0.0.1, signed) until its proven
#            set is published: `follow run` with a fresh state and an empty cache (packages
#            fetched from the mirror, headers and sources extracted, compiled, checked,
#            boot-tested with a cluster, packaged, published into a signed APT repository)
#   (f-warm) the same with the packages already in the cache (nothing extracted or built)
#   (b-plain A1, A2) `krbd-forge build` of A1, then of A2 with the same cache (as `follow`
#            builds the next ABI of a line), the cache holding only the packages before A1
#   (b-ccache A1, A2) the same with ccache in front of the kernel's compiler (Debian's
#            masquerade folder /usr/lib/ccache first in PATH, so kbuild's CC stays the
#            kernel's compiler name; CCACHE_BASEDIR at the work folder and CCACHE_NOHASHDIR,
#            since every build compiles in a folder of its own), empty before A1
# ROUNDS=N (default 1) repeats everything, each round in the order b-plain A1, b-ccache A1,
# b-plain A2, b-ccache A2, f-cold, f-warm, so that a loaded machine's noise hits all alike;
# prints each time, the medians and the ratios. PARTS="build follow" (default) or either. DEB_CACHE: a krbd-forge cache whose debs/
# already holds the packages (default: the usual cache); missing ones are downloaded.
# Needs: scripts/install-deps.sh bench, and the test packages for the boot test (ceph, qemu).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench >&2
cargo build --release -q -p krbd-forge
forge=$PWD/target/release/krbd-forge
rounds=${ROUNDS:-1}
deb_cache=${DEB_CACHE:-${KRBD_FORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/krbd-forge}}
work=$(mktemp -d /var/tmp/krbd-bench-follow.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    GNUPGHOME=$work/gnupg gpgconf --kill gpg-agent 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
log() { echo "[bench-follow] $*" >&2; }

# The two newest 6.12 ABIs with source, and each one's five packages (path per line).
mapfile -t abis < <(KRBD_FORGE_CACHE=$deb_cache "$forge" targets --json | python3 -c '
import json, sys
rows = [t["release"] for t in json.load(sys.stdin) if t.get("source_available") and t["release"].startswith("6.12.")]
print(rows[1]); print(rows[0])')
a1=${abis[0]} a2=${abis[1]}
[ -n "$a1" ] && [ -n "$a2" ] && [ "$a1" != "$a2" ]
mkdir -p "$work/debs"
debs_of() {
    KRBD_FORGE_CACHE=$deb_cache "$forge" targets "$1" --json | python3 -c '
import json, sys
t = json.load(sys.stdin)
for role in ["headers", "headers_common", "kbuild", "image", "source"]:
    p = t[role]; print(p["sha256"], p["name"], p["version"])' | while read -r sha name version; do
        if [ ! -f "$work/debs/$sha.deb" ]; then
            if [ -f "$deb_cache/debs/$sha.deb" ]; then
                ln "$deb_cache/debs/$sha.deb" "$work/debs/$sha.deb" 2>/dev/null || cp "$deb_cache/debs/$sha.deb" "$work/debs/"
            else
                (cd "$work" && apt-get download -q "$name=$version" >&2 && mv "${name}_"*.deb "debs/$sha.deb")
            fi
        fi
        echo "$work/debs/$sha.deb"
    done
}
mapfile -t a1_debs < <(debs_of "$a1")
mapfile -t a2_debs < <(debs_of "$a2")
log "A1 $a1, A2 $a2; work folder $work"

# A package cache holding only `$@` (hard links), as a cache that fetched them and did nothing else.
package_cache() {
    local dir=$1; shift
    mkdir -p "$dir/debs"
    for d in "$@"; do ln "$d" "$dir/debs/$(basename "$d")"; done
}

# The signed mirror offering A2 (what appears), served from 127.0.0.1.
gnupg=$work/gnupg; mkdir -m 700 "$gnupg"
for uid in "bench archive <archive@localhost>" "bench repository <repo@localhost>"; do
    GNUPGHOME=$gnupg gpg -q --batch --passphrase '' --quick-gen-key "$uid" ed25519 sign never 2>/dev/null
done
GNUPGHOME=$gnupg gpg -q --armor --export archive@localhost > "$work/archive.asc"
GNUPGHOME=$gnupg gpg -q --armor --export-secret-keys repo@localhost > "$work/repo-secret.asc"
mirror=$work/mirror; mkdir -p "$mirror/pool/main" "$mirror/dists/bookworm/main/binary-amd64"
for d in "${a2_debs[@]}"; do ln "$d" "$mirror/pool/main/"; done
(cd "$mirror" && apt-ftparchive packages pool > dists/bookworm/main/binary-amd64/Packages)
(cd "$mirror" && apt-ftparchive -o APT::FTPArchive::Release::Codename=bookworm \
    -o APT::FTPArchive::Release::Suite=bookworm -o APT::FTPArchive::Release::Components=main \
    -o APT::FTPArchive::Release::Architectures=amd64 release dists/bookworm > "$work/Release")
mv "$work/Release" "$mirror/dists/bookworm/Release"
(cd "$mirror/dists/bookworm" && GNUPGHOME=$gnupg gpg -q --batch -u archive@localhost --clearsign -o InRelease Release \
    && GNUPGHOME=$gnupg gpg -q --batch -u archive@localhost --detach-sign -o Release.gpg Release)
python3 -c '
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
print(s.server_address[1], flush=True)
s.serve_forever()' "$mirror" > "$work/port" 2>/dev/null &
server_pid=$!
while [ ! -s "$work/port" ]; do sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")/"

# One `follow run` with a fresh state and repository over the cache `$2`; prints seconds.
follow_once() {
    local dir=$work/follow-$1; mkdir -p "$dir"
    cat > "$dir/follow.toml" <<EOF
state_dir = "state"
cache_dir = "$2"
[proofs]
boot_test_cluster = true
[publish]
apt_dir = "repo/apt"
signing_key = "$work/repo-secret.asc"
[[debian]]
mirror = "$url"
suites = ["bookworm"]
archive_key = "$work/archive.asc"
series = ["6.12"]
EOF
    local t0 t1; t0=$(now)
    "$forge" follow run --config "$dir/follow.toml" --json > "$dir/run.json" 2> "$dir/run.log"
    t1=$(now)
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert [p["release"] for p in r["published"]]==[sys.argv[2]], r' \
        "$dir/run.json" "$a2"
    rm -rf "$dir" "$2"
    python3 -c "print(f'{$t1 - $t0:.1f}')"
}

# One `krbd-forge build --kernel $2` over the cache `$1`, through ccache when `$3` names
# its folder. Prints seconds.
build_once() {
    local cache=$1 release=$2 ccache_dir=${3:-}
    local t0 t1; t0=$(now)
    if [ -n "$ccache_dir" ]; then
        PATH=/usr/lib/ccache:$PATH CCACHE_DIR=$ccache_dir CCACHE_BASEDIR=$work CCACHE_NOHASHDIR=true \
            "$forge" build --kernel "$release" --cache-dir "$cache" --out "$cache.out" --quiet --json > "$cache.json"
    else
        "$forge" build --kernel "$release" --cache-dir "$cache" --out "$cache.out" --quiet --json > "$cache.json"
    fi
    t1=$(now)
    rm -rf "$cache.out"
    # The compile stages alone (the build report's), beside the wall time.
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print(sum(s["seconds"] for s in r["stages"] if s["name"].startswith("compile")))' "$cache.json" > "$cache.compile"
    python3 -c "print(f'{$t1 - $t0:.1f}')"
}

results=$work/results; : > "$results"
# measure KEY COMMAND...: runs COMMAND (which prints seconds) and records KEY's time.
measure() {
    local key=$1 t; shift
    log "round $round: $key"
    t=$("$@")
    echo "$key $t" >> "$results"
    if [[ $key == b-* ]]; then echo "$key-compile $(cat "$2.compile")" >> "$results"; fi
}
parts=${PARTS:-build follow}
for round in $(seq 1 "$rounds"); do
    if [[ $parts == *build* ]]; then
        plain=$work/cache-plain-$round cc=$work/cache-ccache-$round
        package_cache "$plain" "${a1_debs[@]}" "${a2_debs[@]}"
        package_cache "$cc" "${a1_debs[@]}" "${a2_debs[@]}"
        measure b-plain-A1 build_once "$plain" "$a1"
        measure b-ccache-A1 build_once "$cc" "$a1" "$cc.ccache"
        CCACHE_DIR=$cc.ccache ccache -z > /dev/null
        measure b-plain-A2 build_once "$plain" "$a2"
        measure b-ccache-A2 build_once "$cc" "$a2" "$cc.ccache"
        CCACHE_DIR=$cc.ccache ccache --print-stats | awk '$1=="direct_cache_hit"||$1=="preprocessed_cache_hit"{h+=$2}
            $1=="cache_miss"{m=$2} END{print "ccache-A2-hits", h+0; print "ccache-A2-misses", m+0}' >> "$results"
        rm -rf "$plain" "$cc" "$cc.ccache"
    fi
    if [[ $parts == *follow* ]]; then
        measure f-cold follow_once "cold-$round" "$work/cache-fcold-$round"
        package_cache "$work/cache-fwarm-$round" "${a2_debs[@]}"
        measure f-warm follow_once "warm-$round" "$work/cache-fwarm-$round"
    fi
    sed 's/^/  /' "$results" >&2
done

python3 - "$results" "$a1" "$a2" "$rounds" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
path, a1, a2, rounds, cpus, load = sys.argv[1:]
rows = {}
for line in open(path):
    k, v = line.split()
    rows.setdefault(k, []).append(float(v))
med = {k: statistics.median(v) for k, v in rows.items()}
print(f"A1 {a1}, A2 {a2}; {rounds} round(s), {cpus} CPUs, load average at the end {load}")
for k in ["f-cold", "f-warm"] + [f"b-{v}-{a}{c}" for v in ["plain", "ccache"] for a in ["A1", "A2"] for c in ["", "-compile"]]:
    if k in rows:
        print(f"{k:<12} median {med[k]:7.1f} s   runs {' '.join(f'{x:.1f}' for x in rows[k])}")
def ratio(a, b):
    return statistics.median(x / y for x, y in zip(rows[a], rows[b]))
if "f-cold" in rows:
    print(f"f-warm / f-cold            {ratio('f-warm', 'f-cold'):.2f}")
if "b-plain-A1" in rows:
    print(f"ccache on A2: {med['ccache-A2-hits']:.0f} hits, {med['ccache-A2-misses']:.0f} misses (median per round)")
    print(f"b-ccache-A1 / b-plain-A1   {ratio('b-ccache-A1', 'b-plain-A1'):.2f}  (a cold compiler cache's cost)")
    print(f"b-ccache-A2 / b-plain-A2   {ratio('b-ccache-A2', 'b-plain-A2'):.2f}  (the next ABI with the cache A1 filled)")
    print(f"  compile stages only: A1 {ratio('b-ccache-A1-compile', 'b-plain-A1-compile'):.2f}, "
          f"A2 {ratio('b-ccache-A2-compile', 'b-plain-A2-compile'):.2f}")
PY
