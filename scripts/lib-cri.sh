# shellcheck shell=bash
# CRI (Kubernetes) part of scripts/lib.sh, which sources it: a second private
# containerd with its CRI plugin on, for tests/cri_pod.rs.

# CRI's sandbox (pause) image: busybox whose command sleeps forever
MICRUN_PAUSE_REF="localhost/micrun/pause:test"

# The test CNI plugin: CRI refuses a pod without an IP on eth0, and a
# loopback-only network config is rejected. This plugin creates nothing and
# reports eth0 = 127.0.0.1, so the pod's network namespace holds only `lo` and
# no traffic can leave it.
micrun__cni_setup() {
    local dir=$1
    [[ -x $MICRUN_CNI_LOOPBACK ]] || {
        micrun_die "$MICRUN_CNI_LOOPBACK missing (apt-get install containernetworking-plugins)"
        return 1
    }
    mkdir -p "$dir/cni/bin" "$dir/cni/net.d"
    ln -sf "$MICRUN_CNI_LOOPBACK" "$dir/cni/bin/loopback"
    cat >"$dir/cni/bin/micrun-test-net" <<'EOF'
#!/bin/sh
# micrun's test CNI plugin (scripts/lib-cri.sh): no interface, no route, no address.
cat >/dev/null
case "$CNI_COMMAND" in
ADD)
    printf '{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"version":"4","address":"127.0.0.1/8","interface":0}]}\n' "$CNI_NETNS"
    ;;
VERSION)
    printf '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}\n'
    ;;
esac
exit 0
EOF
    chmod 755 "$dir/cni/bin/micrun-test-net"
    printf '{"cniVersion":"0.4.0","name":"micrun-test","plugins":[{"type":"micrun-test-net"}]}\n' \
        >"$dir/cni/net.d/10-micrun-test.conflist"
}

# CRI's part of DIR's containerd config for SERIES, on stdout. The runtime
# handler `mica` is the example file itself (examples/containerd-config.toml
# for 1.6/1.7, examples/containerd-config-v3.toml for 2.x), with ConfigPath
# pointing at DIR/micrun-cri.toml (the CRI test writes it before each pod), so
# the example is what the test proves.
micrun__cri_config() {
    local dir=$1 series=$2
    micrun__cni_setup "$dir" || return 1
    printf '# written by scripts/lib-cri.sh; the CRI test replaces it before each pod\n' >"$dir/micrun-cri.toml"
    micrun__cri_settings "$series" "$dir" "$dir/cni/bin" "$MICRUN_PAUSE_REF" "" || return 1
    micrun__cri_handlers "$series" "$dir/micrun-cri.toml"
}

# The runtime handlers of SERIES's example config (without its `version`
# line), ConfigPath set to MICRUN_CONFIG; fails if the example no longer has
# the handlers named after it (default: mica) or the commented ConfigPath.
micrun__cri_handlers() {
    local series=$1 config=$2 example handler h
    shift 2
    if [[ $series == 2.* ]]; then
        example="$MICRUN_REPO/examples/containerd-config-v3.toml"
    else
        example="$MICRUN_REPO/examples/containerd-config.toml"
    fi
    handler=$(sed -e '/^version = /d' -e "s|^\( *\)# ConfigPath = .*|\1ConfigPath = \"$config\"|" "$example")
    if ! grep -qF "ConfigPath = \"$config\"" <<<"$handler"; then
        micrun_die "$example no longer has a commented ConfigPath line"
        return 1
    fi
    for h in "${@:-mica}"; do
        grep -qF "runtimes.$h]" <<<"$handler" || {
            micrun_die "$example no longer has the runtime handler $h"
            return 1
        }
    done
    printf '%s\n' "$handler"
}

# CRI's settings for SERIES: state and CNI config under DIR, CNI plugins in
# CNI_BIN_DIR, the pod sandbox image SANDBOX, and (when REGISTRY_DIR is not
# empty) registry host configs under REGISTRY_DIR.
micrun__cri_settings() {
    local series=$1 dir=$2 cni_bin=$3 sandbox=$4 registry=$5
    if [[ $series == 2.* ]]; then
        # config version 3: CRI's settings are split over the plugins
        # cri.v1.images (images, the sandbox image), cri.v1.runtime (runtimes,
        # CNI, container settings) and grpc.v1.cri (the CRI service itself)
        cat <<EOF

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "$sandbox"
EOF
        [[ -z $registry ]] || cat <<EOF
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "$registry"
EOF
        cat <<EOF

[plugins."io.containerd.cri.v1.runtime"]
  # Without it the sandbox asks for oom_score_adj -998, which this kind of VM
  # refuses; the OCI runtime then fails with "can't get final child's PID".
  restrict_oom_score_adj = true
  # pod network namespaces under DIR, not /run/netns, so teardown finds them
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$cni_bin"]
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
    else
        cat <<EOF

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox"
  # Without it the sandbox asks for oom_score_adj -998, which this kind of VM
  # refuses; the OCI runtime then fails with "can't get final child's PID".
  restrict_oom_score_adj = true
  # pod network namespaces under DIR, not /run/netns, so teardown finds them
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
        [[ -z $registry ]] || cat <<EOF
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$registry"
EOF
    fi
}

# Starts the CRI containerd in WORK/cri (after micrun_private_containerd) and
# imports the busybox and pause images into its CRI namespace. The ctr-driven
# tests keep their own containerd without CRI: a restart or a leftover there
# never touches the pods, and the other way round.
micrun_private_cri() {
    local dir="$WORK/cri" bare="$WORK/cri-bare"
    micrun_start_containerd "$dir" cri || return 1
    micrun_import_image "$dir" "$MICRUN_CRI_NS" "$WORK/busybox.tar" || return 1
    micrun_build_busybox_image "$dir/pause.tar" "$MICRUN_PAUSE_REF" '"sleep","2147483647"' || return 1
    micrun_import_image "$dir" "$MICRUN_CRI_NS" "$dir/pause.tar" || return 1
    # A third containerd, with CRI and nothing but the shim on its PATH (so no
    # crun, runc or youki for the shim to find): the RTOS-only pod test shows a
    # pod needs no OCI runtime. CRI still wants its pause image present.
    mkdir -p "$bare/bin"
    ln -sf "$MICRUN_REPO/target/shim/$MICRUN_SHIM_NAME" "$bare/bin/$MICRUN_SHIM_NAME"
    MICRUN__CONTAINERD_PATH="$bare/bin" micrun_start_containerd "$bare" cri || return 1
    micrun_import_image "$bare" "$MICRUN_CRI_NS" "$dir/pause.tar" || return 1
    rm -f "$dir/pause.tar"
}
