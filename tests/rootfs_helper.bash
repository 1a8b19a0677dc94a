# Building OCI images from files the tests make, and a real registry.
#
# oci_image LAYOUT TAG CONFIG LAYER... writes an OCI image layout by hand
# (blobs, config with diff_ids, manifest, index.json), so a test controls
# every byte of every layer: compression, odd tar members, bad digests.
# skopeo then pushes it to Debian's docker-registry on 127.0.0.1.

ROOTFS=$LIBEXEC/vmsan-rootfs

# rootfs OP [JSON]: run the helper (the op goes on the command line).
rootfs() {
	local op=$1 body=${2:-}
	printf '%s' "$body" | "$ROOTFS" "$op"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# corrupt FILE OFFSET: change the byte at OFFSET to a different value
# (writing a fixed byte leaves the file whole when it was already that one).
corrupt() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059 # the format is the octal escape of the byte
	printf "\\$(printf '%03o' $(((b + 1) % 256)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
	[ "$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')" = $(((b + 1) % 256)) ]
}

# The sha256 of a layer's uncompressed tar.
diff_id() {
	case $(head -c4 "$1" | od -An -tx1 | tr -d ' \n') in
	1f8b*) zcat "$1" | sha256sum | cut -d' ' -f1 ;;
	28b52ffd) zstd -dc "$1" | sha256sum | cut -d' ' -f1 ;;
	*) sha "$1" ;;
	esac
}

media_type() {
	case $(head -c4 "$1" | od -An -tx1 | tr -d ' \n') in
	1f8b*) echo application/vnd.oci.image.layer.v1.tar+gzip ;;
	28b52ffd) echo application/vnd.oci.image.layer.v1.tar+zstd ;;
	*) echo application/vnd.oci.image.layer.v1.tar ;;
	esac
}

# blob LAYOUT FILE: store FILE as a blob, print its digest.
blob() {
	local d
	d=$(sha "$2")
	mkdir -p "$1/blobs/sha256"
	cp "$2" "$1/blobs/sha256/$d"
	echo "sha256:$d"
}

# oci_image LAYOUT TAG CONFIG_JSON LAYER...: CONFIG_JSON is the image
# config's "config" object ({"Env":[...],"Cmd":[...]}).
oci_image() {
	local layout=$1 tag=$2 cfg=$3 l d diffs='[]' layers='[]' cfgfile man
	shift 3
	mkdir -p "$layout/blobs/sha256"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
	[ -f "$layout/index.json" ] || echo '{"schemaVersion":2,"manifests":[]}' >"$layout/index.json"
	for l in "$@"; do
		d=$(blob "$layout" "$l")
		diffs=$(jq -c --arg d "sha256:$(diff_id "$l")" '. + [$d]' <<<"$diffs")
		layers=$(jq -c --arg d "$d" --arg m "$(media_type "$l")" --argjson s "$(stat -c %s "$l")" \
			'. + [{mediaType:$m, digest:$d, size:$s}]' <<<"$layers")
	done
	cfgfile=$TEST_TMP/config.$$.json
	jq -n --argjson c "$cfg" --argjson d "$diffs" \
		'{architecture:"amd64", os:"linux", config:$c, rootfs:{type:"layers", diff_ids:$d}}' >"$cfgfile"
	d=$(blob "$layout" "$cfgfile")
	man=$TEST_TMP/manifest.$$.json
	jq -n --arg d "$d" --argjson s "$(stat -c %s "$cfgfile")" --argjson l "$layers" \
		'{schemaVersion:2, mediaType:"application/vnd.oci.image.manifest.v1+json",
		  config:{mediaType:"application/vnd.oci.image.config.v1+json", digest:$d, size:$s},
		  layers:$l}' >"$man"
	d=$(blob "$layout" "$man")
	jq --arg d "$d" --argjson s "$(stat -c %s "$man")" --arg t "$tag" \
		'.manifests = [.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] != $t)]
		 + [{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$d, size:$s,
		     annotations:{"org.opencontainers.image.ref.name":$t}}]' \
		"$layout/index.json" >"$layout/index.json.new"
	mv "$layout/index.json.new" "$layout/index.json"
	rm -f "$cfgfile" "$man"
}

# tar_layer DIR OUT [gzip|zstd|none] [extra tar args]: a layer from a tree,
# numeric owners kept, xattrs included (pax).
tar_layer() {
	local dir=$1 out=$2 comp=${3:-gzip}
	shift 3 || shift $#
	tar --format=posix --numeric-owner --xattrs --xattrs-include='*' \
		-C "$dir" -cf "$out.tar" "$@" .
	case $comp in
	gzip) gzip -n <"$out.tar" >"$out"; rm "$out.tar" ;;
	zstd) zstd -q <"$out.tar" >"$out"; rm "$out.tar" ;;
	none) mv "$out.tar" "$out" ;;
	esac
}

# The image file of the digest a reply names.
image_file() {
	echo "$VMSAN_DIR/images/${1#sha256:}/rootfs.ext4"
}

# dfs IMAGE CMD: a debugfs request against the image, its output only.
dfs() {
	debugfs -R "$2" "$1" 2>/dev/null
}

# Nothing half-built may be left behind: no build dir, no image without
# its record, no record without its image.
assert_cache_clean() {
	local left
	left=$(find "$VMSAN_DIR/images/tmp" -mindepth 1 2>/dev/null | head -5)
	[ -z "$left" ] || { echo "left in tmp: $left" >&2; return 1; }
	for d in "$VMSAN_DIR"/images/*/; do
		[ -d "$d" ] || continue
		case ${d%/} in */refs|*/tmp) continue ;; esac
		if [ ! -f "$d/image.json" ] || [ ! -f "$d/rootfs.ext4" ]; then
			echo "incomplete image dir $d" >&2
			return 1
		fi
	done
}

# ---- a registry on 127.0.0.1 ----------------------------------------

# reg_ns CMD...: CMD in the network namespace $REG_NS when it is set (a
# registry on the 127.0.0.1 of the namespace vmsan runs in), else here.
reg_ns() {
	if [ -n "${REG_NS:-}" ]; then
		nsenter --net="/run/netns/$REG_NS" "$@"
	else
		"$@"
	fi
}

# registry_start [tls]: with "tls", HTTPS with a self-signed certificate
# for 127.0.0.1 (its CA in $REG_CERTS/ca.crt) and htpasswd auth for
# user "vmsan", password in $REG_PASS.
registry_start() {
	require_cmd docker-registry || return 1
	local port tls=${1:-}
	REG_DIR=$TEST_TMP/registry
	mkdir -p "$REG_DIR/data"
	local extra='' scheme=http
	if [ "$tls" = tls ]; then
		require_cmd openssl || return 1
		require_cmd htpasswd || return 1
		REG_CERTS=$REG_DIR/certs
		REG_PASS=pw-$$-$RANDOM
		mkdir -p "$REG_CERTS"
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
			-addext subjectAltName=IP:127.0.0.1 -keyout "$REG_DIR/key.pem" \
			-out "$REG_CERTS/ca.crt" 2>/dev/null
		htpasswd -Bbn vmsan "$REG_PASS" >"$REG_DIR/htpasswd"
		extra="  tls:
	    certificate: $REG_CERTS/ca.crt
	    key: $REG_DIR/key.pem
	auth:
	  htpasswd:
	    realm: vmsan-test
	    path: $REG_DIR/htpasswd"
		scheme=https
	fi
	for port in $(shuf -i 20000-40000 -n 20); do
		cat >"$REG_DIR/config.yml" <<-EOF
		version: 0.1
		log:
		  level: error
		storage:
		  filesystem:
		    rootdirectory: $REG_DIR/data
		  delete:
		    enabled: true
		http:
		  addr: 127.0.0.1:$port
		EOF
		[ -z "$extra" ] || printf '%s\n' "$extra" | sed 's/^\t//' >>"$REG_DIR/config.yml"
		# not through reg_ns: $! must be the registry (nsenter execs it)
		if [ -n "${REG_NS:-}" ]; then
			nsenter --net="/run/netns/$REG_NS" docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
		else
			docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
		fi
		REG_PID=$!
		local _
		for _ in $(seq 50); do
			if reg_ns curl -sS -o /dev/null --cacert "${REG_CERTS:-$REG_DIR}/ca.crt" \
				"$scheme://127.0.0.1:$port/v2/" 2>/dev/null; then
				REG=127.0.0.1:$port
				return 0
			fi
			kill -0 "$REG_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill "$REG_PID" 2>/dev/null
		wait "$REG_PID" 2>/dev/null
	done
	echo "cannot start docker-registry: $(cat "$REG_DIR/log")" >&2
	return 1
}

registry_stop() {
	[ -n "${REG_PID:-}" ] || return 0
	kill "$REG_PID" 2>/dev/null
	wait "$REG_PID" 2>/dev/null || true
	REG_PID=
}

# push LAYOUT TAG NAME: copy an OCI layout's image into the registry.
push() {
	reg_ns skopeo copy --quiet --dest-tls-verify=false "oci:$1:$2" "docker://$REG/$3"
}
