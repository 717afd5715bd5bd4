#!/usr/bin/env bash
# Runs a peer project's own conformance suite against micrun and against the
# peer's reference runtime, side by side, and compares the results with the
# committed expectations (tests/conformance/).
#
#   scripts/conformance.sh containerd [--delegate NAME]... [--run REGEX] [--timeout SECONDS]
#   scripts/conformance.sh cri [--handler runc|mica]... [--focus REGEX] [--containerd 1.6|2.3]
#
# containerd: containerd v2.3.7's client integration suite, containerd's own
# runc shim (with crun) beside micrun with each delegate
# (scripts/conformance-containerd.sh; tests/conformance/containerd-v2.3.txt).
#
# cri: critest (cri-tools v1.37.0, Kubernetes' CRI validation suite) against
# a CRI containerd (2.3.7, or Debian's 1.6.20) with the runtime handler `runc`
# (containerd's runc shim running crun) and `mica` (micrun), inside a network
# namespace of its own (scripts/conformance-cri.sh;
# tests/conformance/cri-v2.3.txt, cri-v1.6.txt).
#
# Exit status is non-zero when a test passes on the reference and fails on
# micrun without an entry in the expectations. MICRUN_NO_BUILD=1 skips
# scripts/build.sh.
set -euo pipefail
. "$(cd "$(dirname "$0")/.." && pwd)/scripts/lib.sh"

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

T0=$(date +%s)

# --------------------------------------------------------------------------
# expectations (CONF_EXPECT): "Name  reason", or with CONF_SEP set (names with
# spaces) "Name SEP reason"; a reason starting "not run:" keeps the test from
# running at all (for both runtimes)

declare -A EXPECT=() NOT_RUN=()
conf_load_expectations() {
    local line name reason n=0 bad=0
    [[ -f $CONF_EXPECT ]] || { micrun_die "missing $CONF_EXPECT"; return 1; }
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        line=${line%%$'\r'}
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ -n ${CONF_SEP:-} ]]; then
            name="" reason=""
            if [[ $line == *"$CONF_SEP"* ]]; then
                name=${line%%"$CONF_SEP"*}
                reason=${line#*"$CONF_SEP"}
            fi
            # trim the blanks around both halves
            name=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$name")
            reason=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$reason")
        else
            read -r name reason <<<"$line"
        fi
        if [[ -z $name || -z $reason ]]; then
            micrun_log "$CONF_EXPECT:$n: '$line' has no reason: every entry says why"
            bad=1
            continue
        fi
        EXPECT[$name]=$reason
        [[ $reason == "not run:"* ]] && NOT_RUN[${name%@*}]=$reason
    done <"$CONF_EXPECT"
    ((bad == 0)) || { micrun_die "refusing $CONF_EXPECT"; return 1; }
}

# the expectation for test $1 under delegate or handler $2 (specific first)
conf_expected() {
    if [[ -n ${EXPECT[$1@$2]:-} ]]; then
        echo "${EXPECT[$1@$2]}"
    else
        echo "${EXPECT[$1]:-}"
    fi
}

# --------------------------------------------------------------------------
# images (integration/images/image_list.go names them; -image-list overrides)

# Packs the layer directories LAYER... as one OCI image archive OUT named REF:
# an image index holding this machine's image and, like the public images the
# suite expects, a second platform's (arm64, or amd64 on arm64) whose one
# layer only names it; that image is never run.
conf_pack_layers() {
    local out=$1 ref=$2 cmd=$3
    shift 3
    local work layout arch other n=0 l
    work=$(mktemp -d "$WORK/pack.XXXX")
    layout="$work/layout"
    mkdir -p "$layout/blobs/sha256" "$work/other"
    arch=$(micrun__oci_arch)
    other=arm64
    [[ $arch == arm64 ]] && other=amd64
    echo "$other" >"$work/other/platform"
    local own alt
    own=$(conf__image "$work" "$arch" "$cmd" "$@")
    alt=$(conf__image "$work" "$other" "$cmd" "$work/other")
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[$own,$alt]}" >"$work/index.json"
    local id is
    read -r id is < <(micrun__put_blob "$work/index.json" "$layout")
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:$id\",\"size\":$is,\"annotations\":{\"org.opencontainers.image.ref.name\":\"$ref\"}}]}" >"$layout/index.json"
    tar -C "$layout" --sort=name --numeric-owner --mtime=@0 -cf "$out" oci-layout index.json blobs
    rm -rf "$work"
}

# One platform's image from layer directories into WORK/layout; prints its
# manifest descriptor (JSON). CONF_IMAGE_EXTRA: more members of the image's
# config (e.g. "User":"1002").
conf__image() {
    local work=$1 arch=$2 cmd=$3
    shift 3
    local layout="$work/layout" l digest size diff_ids="" layers="" n
    for l in "$@"; do
        n=$(mktemp -u "$work/l.XXXX")
        tar -C "$l" --sort=name --numeric-owner --mtime=@0 -cf "$n.tar" .
        diff_ids+="${diff_ids:+,}\"sha256:$(sha256sum "$n.tar" | cut -d' ' -f1)\""
        gzip -n <"$n.tar" >"$n.tgz"
        rm -f "$n.tar"
        read -r digest size < <(micrun__put_blob "$n.tgz" "$layout")
        layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$size}"
    done
    printf '%s' "{\"architecture\":\"$arch\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[$cmd],\"WorkingDir\":\"/\"${CONF_IMAGE_EXTRA:+,$CONF_IMAGE_EXTRA}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diff_ids]}}" >"$work/config.json"
    local cd cs md ms
    read -r cd cs < <(micrun__put_blob "$work/config.json" "$layout")
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd\",\"size\":$cs},\"layers\":[$layers]}" >"$work/manifest.json"
    read -r md ms < <(micrun__put_blob "$work/manifest.json" "$layout")
    printf '%s' "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":$ms,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}"
}

# A root file system with the static busybox and its applets under DIR.
conf_busybox_root() {
    local root=$1 name=$2
    micrun_busybox_root "$root"
    mkdir -p "$root"/{sbin,run,var,usr/bin,usr/sbin}
    # the users of the public busybox image (the suite runs as some of them)
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
backup:x:34:34:backup:/var/backups:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
backup:x:34:
operator:x:37:
users:x:100:
nogroup:x:65534:
EOF
    # each image's own base layer: the suite checks garbage collection of
    # one image's layers while others are pulled
    echo "$name" >"$root/etc/image"
}



# --------------------------------------------------------------------------

mode=${1:-}
(($#)) && shift
case $mode in
    containerd) . "$MICRUN_REPO/scripts/conformance-containerd.sh" ;;
    cri) . "$MICRUN_REPO/scripts/conformance-cri.sh" ;;
    *) usage ;;
esac
