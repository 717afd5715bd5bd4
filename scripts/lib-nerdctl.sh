# shellcheck shell=bash
# nerdctl 2.x for tests/nerdctl.rs (part of scripts/lib.sh, which sources it;
# uses micrun__go and MICRUN_PEERS_DIR of scripts/lib-peers.sh). Built once per
# machine from the Go module proxy at a pinned version into
# MICRUN_PEERS_DIR/nerdctl-<version>/nerdctl; nothing of it is committed.
#
# Functions:
#   micrun_nerdctl                    build if missing; print the path of nerdctl

# The newest v2 release the Go module proxy serves here and Go 1.26 builds
# (v2.3.1 needs go >= 1.26.3 and is built against containerd v2.3.1's client).
MICRUN_NERDCTL_VERSION="${MICRUN_NERDCTL_VERSION:-v2.3.1}"
MICRUN_NERDCTL_MODULE=github.com/containerd/nerdctl/v2

# Builds nerdctl into $1 (a directory). `go install ...@V` refuses the module:
# its go.mod replaces github.com/containerd/nerdctl/mod/tigron (its test
# framework, a module of its own that is neither in nerdctl's module zip nor
# served by the proxy) with ./mod/tigron. The binary needs none of tigron, but
# one non-test file of cmd/nerdctl/helpers, testing_linux.go (helpers for
# nerdctl's own tests: NewCosignKeyPair, ComposeUp), imports pkg/testutil and
# so tigron. So it is built from a copy of the module without that file and
# without the tigron requirement.
micrun__build_nerdctl() {
    local dir=$1 ver=$MICRUN_NERDCTL_VERSION mod=$MICRUN_NERDCTL_MODULE src tmp start
    src=$(micrun__go_module_dir "$mod" "$ver") || return 1
    [[ -f $src/cmd/nerdctl/helpers/testing_linux.go ]] \
        || { micrun_die "module $mod@$ver: cmd/nerdctl/helpers/testing_linux.go is gone; revisit micrun__build_nerdctl"; return 1; }
    tmp="$dir.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cp -a "$src" "$tmp/src"
    chmod -R u+w "$tmp/src"
    rm "$tmp/src/cmd/nerdctl/helpers/testing_linux.go"
    (cd "$tmp/src" && micrun__go mod edit -dropreplace=github.com/containerd/nerdctl/mod/tigron \
        -droprequire=github.com/containerd/nerdctl/mod/tigron) || return 1
    micrun_log "building nerdctl $ver from the Go module proxy into $dir (a few minutes, once per machine)"
    start=$(date +%s)
    (
        cd "$tmp/src" || exit 1
        # as its Makefile does: static, version stamped
        CGO_ENABLED=0 micrun__go build -mod=mod \
            -ldflags "-s -w -X $mod/pkg/version.Version=$ver" -o "$tmp/nerdctl" ./cmd/nerdctl
    ) || { micrun_die "building nerdctl $ver failed"; return 1; }
    printf 'nerdctl %s built in %s s on %s\n' "$ver" "$(($(date +%s) - start))" "$(date -u +%FT%TZ)" >"$tmp/BUILD"
    rm -rf "$tmp/src"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    micrun_log "$(cat "$dir/BUILD")"
}

micrun_nerdctl() {
    local dir="$MICRUN_PEERS_DIR/nerdctl-$MICRUN_NERDCTL_VERSION"
    [[ -x $dir/nerdctl ]] || micrun__build_nerdctl "$dir" >&2 || return 1
    echo "$dir/nerdctl"
}
