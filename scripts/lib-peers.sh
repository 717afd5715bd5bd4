# shellcheck shell=bash
# Peers built from Go modules (part of scripts/lib.sh, which sources it):
# containerd 2.3.x and 1.7.x beside Debian's 1.6.20, containerd's client
# integration suite and containerd-stress. Each is built from the Go module
# proxy at a pinned version into MICRUN_PEERS_DIR/<module>-<version>, once per
# machine: a second run finds the binaries and builds nothing. Nothing of these
# modules is committed.
#
# Functions:
#   micrun_containerd_series [S]      normalise 1.6|1.7|2.3 (default: MICRUN_CONTAINERD or 1.6)
#   micrun_containerd_bindir S        build if missing; print the directory holding
#                                     containerd, ctr and containerd-shim-runc-v2 of series S
#   micrun_containerd_version_of S    the version series S stands for (v1.6.20 is Debian's)
#   micrun_containerd_source S        a writable copy of S's module (for its tests)
#   micrun_crictl                     build if missing; print the path of crictl

MICRUN_CONTAINERD_2_3="${MICRUN_CONTAINERD_2_3:-v2.3.7}"
MICRUN_CONTAINERD_1_7="${MICRUN_CONTAINERD_1_7:-v1.7.35}"
MICRUN_PEERS_DIR="${MICRUN_PEERS_DIR:-/var/cache/micrun/peers}"
MICRUN_CRI_TOOLS="${MICRUN_CRI_TOOLS:-v1.37.0}"

micrun_containerd_series() {
    local s=${1:-${MICRUN_CONTAINERD:-1.6}}
    case $s in
        1.6 | 1.6.20 | v1.6.20) echo 1.6 ;;
        1.7 | 1.7.* | v1.7.*) echo 1.7 ;;
        2 | 2.3 | 2.3.* | v2.3.*) echo 2.3 ;;
        *)
            micrun_die "unknown containerd series '$s': use 1.6 (Debian's 1.6.20), 1.7 ($MICRUN_CONTAINERD_1_7) or 2.3 ($MICRUN_CONTAINERD_2_3)"
            return 1
            ;;
    esac
}

micrun_containerd_version_of() {
    case $1 in
        1.6) echo v1.6.20 ;;
        1.7) echo "$MICRUN_CONTAINERD_1_7" ;;
        2.3) echo "$MICRUN_CONTAINERD_2_3" ;;
    esac
}

# module path and version package (for -X ...version.Version=) of series $1
micrun__containerd_module() {
    case $1 in
        1.7) echo github.com/containerd/containerd ;;
        2.3) echo github.com/containerd/containerd/v2 ;;
    esac
}

micrun__go() {
    local go=go
    command -v go >/dev/null 2>&1 || go=/usr/local/go/bin/go
    if ! command -v "$go" >/dev/null 2>&1; then
        micrun_die "no Go toolchain (go on PATH or /usr/local/go): containerd 1.7/2.x, critest and the integration suite are built from Go modules"
        return 1
    fi
    GOFLAGS=-buildvcs=false "$go" "$@"
}

# Downloads module $1 at $2 through the Go module proxy and prints its
# (read-only) directory in the module cache. Fails plainly when the proxy does
# not answer: there is no fallback.
micrun__go_module_dir() {
    local mod=$1 ver=$2 out
    if ! out=$(micrun__go mod download -json "$mod@$ver" 2>&1); then
        micrun_die "the Go module proxy ($(micrun__go env GOPROXY)) did not serve $mod@$ver: $out"
        return 1
    fi
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$out"
}

# A writable copy of series $1's module under MICRUN_PEERS_DIR (made once).
micrun_containerd_source() {
    local series=$1 mod ver src dst
    mod=$(micrun__containerd_module "$series")
    ver=$(micrun_containerd_version_of "$series")
    dst="$MICRUN_PEERS_DIR/containerd-$ver/src"
    if [[ -f $dst/go.mod ]]; then
        echo "$dst"
        return 0
    fi
    src=$(micrun__go_module_dir "$mod" "$ver") || return 1
    [[ -d $src ]] || { micrun_die "module $mod@$ver has no directory in the module cache"; return 1; }
    mkdir -p "$(dirname "$dst")"
    rm -rf "$dst.tmp"
    cp -a "$src" "$dst.tmp"
    chmod -R u+w "$dst.tmp"
    mv "$dst.tmp" "$dst"
    echo "$dst"
}

micrun__containerd_built() {
    local dir=$1 b
    for b in containerd ctr containerd-shim-runc-v2 containerd-stress; do
        [[ -x $dir/$b ]] || return 1
    done
}

# Builds series $1 (1.7 or 2.3) into MICRUN_PEERS_DIR/containerd-V/bin. 1.7's
# go.mod has an `exclude` directive, which `go install pkg@V` refuses, so both
# are built the same way: from a copy of the module with -mod=mod (the zip keeps
# vendor/modules.txt but not vendor/).
micrun__build_containerd() {
    local series=$1 mod ver src bin tmp ldflags
    mod=$(micrun__containerd_module "$series")
    ver=$(micrun_containerd_version_of "$series")
    bin="$MICRUN_PEERS_DIR/containerd-$ver/bin"
    src=$(micrun_containerd_source "$series") || return 1
    tmp="$bin.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    ldflags="-X $mod/version.Version=$ver -X $mod/version.Package=$mod"
    micrun_log "building containerd $ver from the Go module proxy into $bin (a few minutes, once per machine)"
    (
        cd "$src" || exit 1
        micrun__go build -mod=mod -ldflags "$ldflags" -o "$tmp/" ./cmd/containerd ./cmd/ctr ./cmd/containerd-stress &&
            CGO_ENABLED=0 micrun__go build -mod=mod -tags "urfave_cli_no_docs no_grpc" -ldflags "$ldflags" \
                -o "$tmp/" ./cmd/containerd-shim-runc-v2
    ) || { micrun_die "building containerd $ver failed"; return 1; }
    rm -rf "$bin"
    mv "$tmp" "$bin"
}

micrun_containerd_bindir() {
    local series ver bin
    series=$(micrun_containerd_series "${1:-}") || return 1
    if [[ $series == 1.6 ]]; then
        # Debian's package (micrun_install_deps)
        echo /usr/bin
        return 0
    fi
    ver=$(micrun_containerd_version_of "$series")
    bin="$MICRUN_PEERS_DIR/containerd-$ver/bin"
    micrun__containerd_built "$bin" || micrun__build_containerd "$series" >&2 || return 1
    echo "$bin"
}

# crictl, the CLI the README's Kubernetes walk-through uses (and
# tests/crictl_example.rs runs). cri-tools' go.mod has no replace or exclude
# directive, so `go install pkg@V` builds it straight from the proxy; critest
# shares the directory (scripts/lib-critest.sh). The version is stamped as
# cri-tools' Makefile does, so `crictl --version` tells which one a log shows.
micrun_crictl() {
    local dir="$MICRUN_PEERS_DIR/cri-tools-$MICRUN_CRI_TOOLS" out
    local want="crictl version ${MICRUN_CRI_TOOLS#v}"
    if [[ ! -x $dir/crictl || $("$dir/crictl" --version 2>/dev/null) != "$want" ]]; then
        mkdir -p "$dir"
        micrun_log "building crictl $MICRUN_CRI_TOOLS from the Go module proxy into $dir (once per machine)"
        if ! out=$(GOBIN="$dir" micrun__go install -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=${MICRUN_CRI_TOOLS#v}" \
            "sigs.k8s.io/cri-tools/cmd/crictl@$MICRUN_CRI_TOOLS" 2>&1); then
            micrun_die "the Go module proxy ($(micrun__go env GOPROXY)) did not serve crictl $MICRUN_CRI_TOOLS, or it did not build: $out"
            return 1
        fi
        [[ $("$dir/crictl" --version 2>/dev/null) == "$want" ]] || {
            micrun_die "go install left no $dir/crictl answering '$want'"
            return 1
        }
    fi
    echo "$dir/crictl"
}
