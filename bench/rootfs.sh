#!/bin/bash
# Image build: vmsan-rootfs against skopeo + umoci unpack (root) + mkfs.ext4 -d,
# and against just decompressing the layers, on a ~200 MB / 10k-file image
# made from this machine's /usr (three gzip layers).  Needs root (umoci
# unpack keeps ownership only as root), hyperfine, umoci.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
LIBEXEC=$TOP/libexec
WORK=$(mktemp -d /var/tmp/vmsan-bench-rootfs.XXXXXX)
TEST_TMP=$WORK
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=../tests/rootfs_helper.bash
. "$TOP/tests/rootfs_helper.bash"
RUNS=${RUNS:-5}

echo "== building the test image from /usr" >&2
find /usr -xdev -type f -size -30M -printf '%s %p\n' 2>/dev/null | sort -k1,1rn -k2 >"$WORK/all"
{ sed -n '1101,1500p' "$WORK/all"; sed -n '30001,39600p' "$WORK/all"; } | cut -d' ' -f2- >"$WORK/files"
split -n l/3 -d "$WORK/files" "$WORK/part."
layers=()
for p in "$WORK"/part.*; do
	tar --format=posix --numeric-owner -cf - --files-from="$p" 2>/dev/null | gzip -6 -n >"$p.tgz"
	layers+=("$p.tgz")
done
oci_image "$WORK/oci" v1 '{"Cmd":["/bin/sh"]}' "${layers[@]}"
bytes=$(for l in "${layers[@]}"; do gzip -dc "$l"; done | wc -c)
files=$(wc -l <"$WORK/files")
comp=$(cat "${layers[@]}" | wc -c)
echo "image: $files files, $((bytes >> 20)) MiB of tar, $((comp >> 20)) MiB compressed, ${#layers[@]} layers" >&2

export VMSAN_DIR=$WORK/state
req="{\"op\":\"pull\",\"ref\":\"oci:$WORK/oci:v1\"}"
printf '%s' "$req" >"$WORK/req"
decompress="for l in ${layers[*]}; do gzip -dc \$l >/dev/null; done"
ours="$LIBEXEC/vmsan-rootfs <$WORK/req >/dev/null"
alt="skopeo copy --quiet oci:$WORK/oci:v1 oci:$WORK/alt:v1 && umoci unpack --image $WORK/alt:v1 $WORK/bundle >/dev/null && mkfs.ext4 -q -F -d $WORK/bundle/rootfs $WORK/alt.img 10G"
clean="rm -rf $WORK/state $WORK/alt $WORK/bundle $WORK/alt.img"

hyperfine --runs "$RUNS" --export-json "$WORK/cold.json" \
	--prepare "$clean" -n decompress-only "$decompress" \
	-n vmsan-rootfs "$ours" -n skopeo+umoci+mkfs "$alt" >&2
sh -c "$ours"
hyperfine --runs 30 --warmup 3 --export-json "$WORK/hit.json" -n cache-hit "$ours" >&2
rss=$( (rm -rf "$WORK/state"; printf '%s' "$req" | /usr/bin/time -f %M "$LIBEXEC/vmsan-rootfs" >/dev/null) 2>&1 | tail -1)
hit_ms=$(printf '%s' "$req" | "$LIBEXEC/vmsan-rootfs" | jq '.seconds * 1000 | floor')
alloc=$(du -k "$(printf '%s' "$req" | "$LIBEXEC/vmsan-rootfs" | jq -r .path)" | cut -f1)

jq -n --slurpfile c "$WORK/cold.json" --slurpfile h "$WORK/hit.json" \
	--argjson files "$files" --argjson bytes "$bytes" --argjson rss "$rss" \
	--argjson hitms "$hit_ms" --argjson alloc "$alloc" '
	($c[0].results | map({(.command): .median}) | add) as $m |
	{image: {files: $files, tarMiB: ($bytes / 1048576 | floor)},
	 medianSeconds: $m,
	 vmsanOverDecompress: ($m["vmsan-rootfs"] / $m["decompress-only"] * 100 | floor / 100),
	 alternativeOverVmsan: ($m["skopeo+umoci+mkfs"] / $m["vmsan-rootfs"] * 100 | floor / 100),
	 cacheHitMedianMs: ($h[0].results[0].median * 1000 * 10 | floor / 10),
	 cacheHitInternalMs: $hitms,
	 builderMaxRssKiB: $rss, imageAllocatedKiB: $alloc}'
