#!/usr/bin/env bash
# Benchmarks the S3 backend against versitygw and MinIO on this machine,
# each next to the bare AWS SDK on the same server and plain local files.
# Needs the servers from scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TIERCEL_TOOLS:-$HOME/.cache/tiercel-tools}
export AWS_ACCESS_KEY_ID=tiercel AWS_SECRET_ACCESS_KEY=tiercel-secret AWS_EC2_METADATA_DISABLED=true
work=$(mktemp -d "$PWD/bench/out/objbench-XXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

vp=$(free_port)
"$TOOLS/bin/versitygw" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$vp" posix "$work/versitygw" >/dev/null 2>&1 &
pids+=($!)
mkdir -p "$work/versitygw" "$work/minio"
mp=$(free_port); mc=$(free_port)
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off "$TOOLS/bin/minio" server --quiet --address "127.0.0.1:$mp" --console-address "127.0.0.1:$mc" "$work/minio" >/dev/null 2>&1 &
pids+=($!)
for url in "http://127.0.0.1:$vp" "http://127.0.0.1:$mp/minio/health/ready"; do
	for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break || curl -s -o /dev/null "$url" && [[ $url != *ready ]] && break; sleep 0.2; done
done
for name in versitygw:$vp minio:$mp; do
	srv=${name%%:*}; port=${name##*:}
	u="s3://bench?endpoint=http://127.0.0.1:$port"
	bin/tiercel objstore mb "$u" >/dev/null
	echo "== $srv"
	bin/tiercel objstore bench "$u" --raw-dir "$work" "$@"
done
