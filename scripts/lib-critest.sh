# shellcheck shell=bash
# critest (part of scripts/lib.sh, which sources it): cri-tools' CRI
# validation suite, built as a test binary from the Go module proxy at a
# pinned version into MICRUN_PEERS_DIR/cri-tools-<version> once per machine,
# and the pieces scripts/conformance-cri.sh runs it with: a network namespace,
# a CNI bridge inside it, containerd's registry host config and a CRI config
# with the runtime handlers `runc` and `mica`.
#
# Functions:
#   micrun_critest                     build if missing; print the critest binary's path
#   micrun_critest_netns_add NAME      a network namespace /run/netns/NAME with lo up
#   micrun_critest_netns_del NAME      kill what still runs in it, delete it
#   micrun_critest_cni DIR             DIR/cni/net.d: a bridge with host-local IPs and portmap
#   micrun_critest_hosts DIR REGISTRY  DIR/certs.d/_default/hosts.toml: every registry
#                                      name resolves to http://REGISTRY
#   micrun_critest_config DIR SERIES SANDBOX_IMAGE RUNC_BINARY
#                                      DIR's containerd config (stdout): CRI on, handler
#                                      `runc` (io.containerd.runc.v2 running RUNC_BINARY)
#                                      and `mica` (the example file, ConfigPath DIR/micrun.toml);
#                                      on 2.x NRI listens on DIR/nri.sock

MICRUN_CRI_TOOLS_VERSION="${MICRUN_CRI_TOOLS_VERSION:-v1.37.0}"
# where Debian's containernetworking-plugins puts its plugins
MICRUN_CNI_BIN_DIR=/usr/lib/cni

# cri-tools' go.mod has no vendor directory in the module zip: -mod=mod. A
# writable copy of the module (the module cache is read-only) is kept beside
# the binary for reading the specs.
micrun_critest() {
    local ver=$MICRUN_CRI_TOOLS_VERSION dir src mod=sigs.k8s.io/cri-tools
    dir="$MICRUN_PEERS_DIR/cri-tools-$ver"
    if [[ ! -x $dir/critest ]]; then
        if [[ ! -f $dir/src/go.mod ]]; then
            src=$(micrun__go_module_dir "$mod" "$ver") || return 1
            [[ -d $src ]] || { micrun_die "module $mod@$ver has no directory in the module cache"; return 1; }
            mkdir -p "$dir"
            rm -rf "$dir/src.tmp"
            cp -a "$src" "$dir/src.tmp"
            chmod -R u+w "$dir/src.tmp"
            mv "$dir/src.tmp" "$dir/src"
        fi
        micrun_log "building critest $ver from the Go module proxy into $dir (once per machine)"
        (cd "$dir/src" && micrun__go test -c -mod=mod -ldflags "-X $mod/pkg/version.Version=$ver" \
            -o "$dir/critest.tmp" ./cmd/critest) >&2 \
            || { micrun_die "building critest $ver failed"; return 1; }
        mv "$dir/critest.tmp" "$dir/critest"
    fi
    echo "$dir/critest"
}

micrun_critest_netns_add() {
    local name=${1:?usage: micrun_critest_netns_add NAME}
    command -v ip >/dev/null 2>&1 || { micrun_die "ip (iproute2) missing"; return 1; }
    ip netns add "$name" || { micrun_die "ip netns add $name failed"; return 1; }
    ip -n "$name" link set lo up
}

# Everything in the namespace is ours (it was created for the run): the
# containerd, its shims and containers, the registry, critest.
micrun_critest_netns_del() {
    local name=${1:?usage: micrun_critest_netns_del NAME} pids=()
    [[ -e /run/netns/$name ]] || return 0
    mapfile -t pids < <(ip netns pids "$name" 2>/dev/null)
    if ((${#pids[@]})); then
        micrun_log "killing what still runs in network namespace $name: ${pids[*]}"
        micrun__kill_wait 30 "${pids[@]}"
    fi
    ip netns del "$name" 2>/dev/null || micrun_log "could not delete network namespace $name"
}

# The bridge's own host side lives in the test's network namespace, so pods,
# host ports and the pod IPs critest dials never leave it. portmap needs
# iptables (nft-backed on Debian 12, one table set per namespace).
micrun_critest_cni() {
    local dir=${1:?usage: micrun_critest_cni DIR} p
    for p in bridge host-local portmap loopback; do
        [[ -x $MICRUN_CNI_BIN_DIR/$p ]] || {
            micrun_die "$MICRUN_CNI_BIN_DIR/$p missing (apt-get install containernetworking-plugins)"
            return 1
        }
    done
    command -v iptables >/dev/null 2>&1 || { micrun_die "iptables missing (the portmap plugin needs it)"; return 1; }
    mkdir -p "$dir/cni/net.d"
    cat >"$dir/cni/net.d/10-micrun-critest.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "micrun-critest",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "micrun-cri0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

# containerd asks every registry name (registry.k8s.io, gcr.io, k8s.gcr.io)
# the one loopback registry over plain HTTP; the image's path stays as it is.
micrun_critest_hosts() {
    local dir=${1:?usage: micrun_critest_hosts DIR REGISTRY} reg=${2:?usage: micrun_critest_hosts DIR REGISTRY}
    mkdir -p "$dir/certs.d/_default"
    cat >"$dir/certs.d/_default/hosts.toml" <<EOF
# written by scripts/lib-critest.sh: every registry is the test's loopback one
server = "http://$reg"

[host."http://$reg"]
  capabilities = ["pull", "resolve", "push"]
EOF
}

micrun_critest_config() {
    local dir=$1 series=$2 sandbox=$3 runc_bin=$4 runc_opts
    # the plain config without CRI, then CRI's plugins back on
    micrun__containerd_config "$dir" "$series" plain \
        | grep -v '"io.containerd.grpc.v1.cri"\|"io.containerd.cri.v1.runtime"\|"io.containerd.cri.v1.images"\|"io.containerd.podsandbox.controller.v1.podsandbox"'
    micrun__cri_settings "$series" "$dir" "$MICRUN_CNI_BIN_DIR" "$sandbox" "$dir/certs.d" || return 1
    if [[ $series == 2.* ]]; then
        runc_opts='[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]'
        cat <<EOF

# NRI (on by default in 2.x) with its socket under DIR, not the host-wide
# /var/run/nri/nri.sock another containerd may hold; critest's NRI specs
# connect to it (-nri-socket DIR/nri.sock)
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "$dir/nri.sock"
  plugin_path = "$dir/nri/plugins"
  plugin_config_path = "$dir/nri/conf.d"
EOF
    else
        runc_opts='[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]'
    fi
    micrun__cri_handlers "$series" "$dir/micrun.toml" mica runc || return 1
    cat <<EOF

# the reference: containerd's own runc shim, running crun
$runc_opts
  BinaryName = "$runc_bin"
EOF
}
