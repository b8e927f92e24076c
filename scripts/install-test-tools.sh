#!/usr/bin/env bash
# Installs the real servers the tests run against, pinned, into
# $TIERCEL_TOOLS (default ~/.cache/tiercel-tools), skipping any already there
# at its pinned version. Everything comes from the Go module proxy (and, for
# Azurite and the KafkaJS client, the npm registry), so a fresh machine needs
# nothing by hand.
set -euo pipefail
TOOLS=${TIERCEL_TOOLS:-$HOME/.cache/tiercel-tools}
mkdir -p "$TOOLS/bin"

VERSITYGW=github.com/versity/versitygw/cmd/versitygw@v1.8.0
MINIO=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
FAKEGCS=github.com/fsouza/fake-gcs-server@v1.56.1
AZURITE=azurite@3.37.0
KAFKAJS=kafkajs@2.2.4

install_go() { # name module@version
	local name=$1 mod=$2 stamp="$TOOLS/bin/.$1.version"
	if [ -x "$TOOLS/bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$mod" ]; then
		echo "install-test-tools: $name $mod already installed"
		return
	fi
	echo "install-test-tools: installing $name ($mod) into $TOOLS/bin"
	GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false go install "$mod"
	echo "$mod" >"$stamp"
}

install_go versitygw "$VERSITYGW" &
v=$!
install_go minio "$MINIO" &
m=$!
install_go fake-gcs-server "$FAKEGCS" &
g=$!

# Azurite comes from npm into its own directory; bin/azurite-blob links to it.
stamp="$TOOLS/bin/.azurite.version"
if [ -x "$TOOLS/bin/azurite-blob" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$AZURITE" ]; then
	echo "install-test-tools: azurite $AZURITE already installed"
else
	echo "install-test-tools: installing $AZURITE into $TOOLS/azurite"
	mkdir -p "$TOOLS/azurite"
	(cd "$TOOLS/azurite" && npm install --no-audit --no-fund --loglevel=error "$AZURITE" >/dev/null)
	ln -sf "$TOOLS/azurite/node_modules/.bin/azurite-blob" "$TOOLS/bin/azurite-blob"
	echo "$AZURITE" >"$stamp"
fi

# KafkaJS (the interop test's Node.js client) goes into its own directory;
# bin/kafkajs-node runs node with it on the module path.
stamp="$TOOLS/bin/.kafkajs.version"
if [ -x "$TOOLS/bin/kafkajs-node" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$KAFKAJS" ]; then
	echo "install-test-tools: kafkajs $KAFKAJS already installed"
else
	echo "install-test-tools: installing $KAFKAJS into $TOOLS/kafkajs"
	mkdir -p "$TOOLS/kafkajs"
	(cd "$TOOLS/kafkajs" && npm install --no-audit --no-fund --loglevel=error "$KAFKAJS" >/dev/null)
	printf '#!/bin/sh\nNODE_PATH="%s" exec node "$@"\n' "$TOOLS/kafkajs/node_modules" >"$TOOLS/bin/kafkajs-node"
	chmod +x "$TOOLS/bin/kafkajs-node"
	echo "$KAFKAJS" >"$stamp"
fi

# kcat (librdkafka's command-line client, as users run it) from Debian's
# packages; CI runs as root.
if ! command -v kcat >/dev/null; then
	echo "install-test-tools: installing kcat (apt)"
	if [ "$(id -u)" = 0 ]; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q kcat >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }
	else
		sudo apt-get install -y -q kcat >/dev/null || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q kcat >/dev/null; }
	fi
fi
wait $v
wait $m
wait $g
