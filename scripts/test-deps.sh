#!/usr/bin/env bash
# Installs the tools the tests drive: for interop/, a Python venv with the
# websockets package and a node_modules with the ws and tus-js-client
# packages, all pinned, under .cache/interop/ (git ignores it); for
# backends/s3, the Versity S3 Gateway (versitygw), pinned, built with
# `go install` into .cache/bin/ (the script writes a .gitignore there); for
# internal/testengines, Redis, Kafka and Cassandra (scripts/engines-deps.sh).
# Idempotent: a second run checks the pinned versions and returns at once.
#
#   bash scripts/test-deps.sh            # install or check
#   INTEROP_CACHE=DIR bash scripts/...   # somewhere else (the test honours it too)
#   GO=go1.26.8 bash scripts/...         # the go command that builds versitygw
#
# Needs python3 (with venv), node + npm and go on PATH. Exits non-zero,
# saying which step failed, if anything cannot be installed.
set -euo pipefail

WEBSOCKETS_VERSION=17.4  # Python: websockets, the asyncio implementation
WS_VERSION=8.23.0        # Node: ws
TUS_JS_VERSION=4.3.1     # Node: tus-js-client, the tus client of interop/tus_client.mjs
VERSITYGW_VERSION=v1.8.0 # Go: github.com/versity/versitygw, the S3 server of backends/s3

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${INTEROP_CACHE:-$root/.cache/interop}
venv=$cache/venv
nodedir=$cache/node
bindir=$root/.cache/bin
GO=${GO:-go}

die() {
	echo "test-deps: $*" >&2
	exit 1
}

for tool in python3 node npm "$GO"; do
	command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
mkdir -p "$cache"

# Python websockets.
py_ok() {
	[ -x "$venv/bin/python" ] &&
		"$venv/bin/python" -c "import sys, websockets; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null
}
if py_ok; then
	echo "test-deps: websockets $WEBSOCKETS_VERSION already in $venv"
else
	echo "test-deps: installing websockets==$WEBSOCKETS_VERSION into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv" || die "python3 -m venv $venv failed (is the venv module installed?)"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION" ||
		die "pip install websockets==$WEBSOCKETS_VERSION failed"
	py_ok || die "websockets $WEBSOCKETS_VERSION does not import from $venv"
fi

# Node ws and tus-js-client, in one node_modules.
node_ok() {
	[ -f "$nodedir/node_modules/ws/package.json" ] &&
		[ -f "$nodedir/node_modules/tus-js-client/package.json" ] &&
		(cd "$nodedir" && node -e "
			const ws = require('ws/package.json').version;
			const tus = require('tus-js-client/package.json').version;
			require('ws');
			require('tus-js-client');
			process.exit(ws === '$WS_VERSION' && tus === '$TUS_JS_VERSION' ? 0 : 1);" 2>/dev/null)
}
if node_ok; then
	echo "test-deps: ws $WS_VERSION and tus-js-client $TUS_JS_VERSION already in $nodedir"
else
	echo "test-deps: installing ws@$WS_VERSION and tus-js-client@$TUS_JS_VERSION into $nodedir"
	rm -rf "$nodedir"
	mkdir -p "$nodedir"
	printf '{\n  "name": "switchboard-interop",\n  "private": true,\n  "dependencies": {"ws": "%s", "tus-js-client": "%s"}\n}\n' \
		"$WS_VERSION" "$TUS_JS_VERSION" >"$nodedir/package.json"
	(cd "$nodedir" && npm install --no-audit --no-fund --loglevel=error) ||
		die "npm install ws@$WS_VERSION tus-js-client@$TUS_JS_VERSION failed"
	node_ok || die "ws $WS_VERSION or tus-js-client $TUS_JS_VERSION does not load from $nodedir"
fi

# versitygw. `go version -m` reads the module version built into the binary
# (its --version says only "git" when built by go install).
vgw=$bindir/versitygw
vgw_ok() {
	[ -x "$vgw" ] &&
		"$GO" version -m "$vgw" 2>/dev/null |
		grep -qE "^[[:space:]]+mod[[:space:]]+github.com/versity/versitygw[[:space:]]+$VERSITYGW_VERSION[[:space:]]"
}
mkdir -p "$bindir"
[ -f "$bindir/.gitignore" ] || printf '*\n' >"$bindir/.gitignore"
if vgw_ok; then
	echo "test-deps: versitygw $VERSITYGW_VERSION already in $bindir"
else
	echo "test-deps: installing versitygw $VERSITYGW_VERSION into $bindir (builds from source, about a minute)"
	rm -f "$vgw"
	GOBIN=$bindir "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" ||
		die "go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION failed"
	vgw_ok || die "$vgw is not versitygw $VERSITYGW_VERSION"
fi

bash "$root/scripts/engines-deps.sh" || die "scripts/engines-deps.sh failed"

echo "test-deps: ok (python: $venv/bin/python, node modules: $nodedir/node_modules, versitygw: $vgw)"
