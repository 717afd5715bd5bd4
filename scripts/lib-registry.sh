# shellcheck shell=bash
# A loopback OCI registry (part of scripts/lib.sh, which sources it): `crane
# registry serve` from go-containerregistry, built from the Go module proxy at a
# pinned version into MICRUN_PEERS_DIR/crane-<version> once per machine. Tests
# push the images they build (micrun_build_busybox_image, micrun__pack_image)
# and let containerd pull them over plain HTTP from 127.0.0.1.
#
# Functions:
#   micrun_registry_start DIR      start a registry on 127.0.0.1:<free port>, blobs
#                                  under DIR, pid in DIR/registry.pid, log in
#                                  DIR/registry.log; exports MICRUN_REGISTRY=127.0.0.1:PORT
#   micrun_registry_push TAR REF   push an OCI image archive to REF
#                                  (e.g. "$MICRUN_REGISTRY/busybox:1.36")
#   micrun_registry_stop DIR       stop the registry started in DIR
#   micrun_crane                   print the path of crane (build it if missing)
#
# The registry keeps manifests in memory: what was pushed is gone once it stops.

MICRUN_CRANE_VERSION="${MICRUN_CRANE_VERSION:-v0.22.1}"

micrun_crane() {
    local dir="$MICRUN_PEERS_DIR/crane-$MICRUN_CRANE_VERSION"
    if [[ ! -x $dir/crane ]]; then
        micrun_log "building crane $MICRUN_CRANE_VERSION from the Go module proxy into $dir (once per machine)"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        if ! GOBIN="$dir.tmp" micrun__go install \
            "github.com/google/go-containerregistry/cmd/crane@$MICRUN_CRANE_VERSION" >&2; then
            rm -rf "$dir.tmp"
            micrun_die "could not build crane $MICRUN_CRANE_VERSION (is the Go module proxy reachable?)"
            return 1
        fi
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir/crane"
}

micrun_registry_start() {
    local dir=${1:?usage: micrun_registry_start DIR} crane
    crane=$(micrun_crane) || return 1
    mkdir -p "$dir/blobs"
    dir="$(cd "$dir" && pwd)"
    micrun_registry_stop "$dir"
    : >"$dir/registry.log"
    # port 0: the kernel picks a free port, the registry logs which one
    "$crane" registry serve --address 127.0.0.1:0 --disk "$dir/blobs" \
        </dev/null >>"$dir/registry.log" 2>&1 &
    local pid=$! i port=""
    echo "$pid" >"$dir/registry.pid"
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/registry.log" >&2
            micrun_die "the registry exited during start-up (log: $dir/registry.log)"
            return 1
        fi
        port=$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p' "$dir/registry.log" | head -n 1)
        if [[ -n $port ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export MICRUN_REGISTRY="127.0.0.1:$port"
            micrun_log "registry ready at $MICRUN_REGISTRY (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/registry.log" >&2
    micrun_die "the registry did not answer within 10 s (log: $dir/registry.log)"
    return 1
}

micrun_registry_push() {
    local tar=${1:?usage: micrun_registry_push TAR REF} ref=${2:?usage: micrun_registry_push TAR REF}
    local crane work rc=0
    crane=$(micrun_crane) || return 1
    work=$(mktemp -d /tmp/micrun-push.XXXXXX)
    # crane pushes an OCI layout directory; the archive is one, tarred
    tar -C "$work" -xf "$tar" || rc=1
    if ((rc == 0)) && ! "$crane" push --insecure "$work" "$ref" >/dev/null 2>"$work.err"; then
        cat "$work.err" >&2
        micrun_die "pushing $tar to $ref failed"
        rc=1
    fi
    rm -rf "$work" "$work.err"
    return "$rc"
}

micrun_registry_stop() {
    local dir=${1:?usage: micrun_registry_stop DIR} pid
    [[ -f $dir/registry.pid ]] || return 0
    dir="$(cd "$dir" && pwd)"
    pid=$(cat "$dir/registry.pid")
    # only ever our own registry, never a recycled pid
    if [[ $pid =~ ^[0-9]+$ && $(micrun__cmdline "$pid") == *"registry serve"*"$dir/blobs"* ]]; then
        micrun_log "stopping the registry (pid $pid)"
        micrun__kill_wait 30 "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/registry.pid"
}
