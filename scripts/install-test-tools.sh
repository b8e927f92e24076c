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

# npm packages go into a directory each; a command in bin/ runs them.
install_npm() { # dir package@version command-in-bin make-command
	local dir=$1 pkg=$2 cmd=$3 make=$4 stamp="$TOOLS/bin/.$1.version"
	if [ -x "$TOOLS/bin/$cmd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg" ]; then
		echo "install-test-tools: $dir $pkg already installed"
		return
	fi
	echo "install-test-tools: installing $pkg into $TOOLS/$dir"
	mkdir -p "$TOOLS/$dir"
	(cd "$TOOLS/$dir" && npm install --no-audit --no-fund --loglevel=error "$pkg" >/dev/null)
	$make "$TOOLS/$dir/node_modules" "$TOOLS/bin/$cmd"
	chmod +x "$TOOLS/bin/$cmd"
	echo "$pkg" >"$stamp"
}
link_azurite() { ln -sf "$1/.bin/azurite-blob" "$2"; }
# KafkaJS is a library: the command runs node with it on the module path.
node_with_modules() { printf '#!/bin/sh\nNODE_PATH="%s" exec node "$@"\n' "$1" >"$2"; }
install_npm azurite "$AZURITE" azurite-blob link_azurite
install_npm kafkajs "$KAFKAJS" kafkajs-node node_with_modules

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
