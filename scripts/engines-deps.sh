#!/usr/bin/env bash
# Installs the real engines that internal/testengines starts for tests:
# Redis (Debian's redis-server, by apt-get if missing), and Kafka and
# Cassandra as directories of jars from Maven Central, pinned, resolved by
# Maven into .cache/kafka/lib/ and .cache/cassandra/lib/ (Maven's own
# repository in .cache/m2/; git ignores .cache/). Called by test-deps.sh.
# Idempotent: a second run checks the pinned versions and returns at once.
#
#   bash scripts/engines-deps.sh
#
# Needs java (17) and mvn on PATH, and apt-get when redis-server is missing.
# Exits non-zero, saying which step failed, if anything cannot be installed.
set -euo pipefail

REDIS_SERIES=7.0           # Debian 12's redis-server (checked: major.minor)
KAFKA_VERSION=4.1.2        # org.apache.kafka:kafka_2.13, KRaft broker+controller
LOG4J_VERSION=2.24.3       # Kafka's SLF4J 1.x binding (log4j-slf4j-impl) and log4j-core
CASSANDRA_VERSION=5.0.9    # org.apache.cassandra:cassandra-all
DEPENDENCY_PLUGIN=3.8.1    # org.apache.maven.plugins:maven-dependency-plugin

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=$root/.cache

die() {
	echo "engines-deps: $*" >&2
	exit 1
}

for tool in java mvn; do
	command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
mkdir -p "$cache"

# Redis.
redis_ok() {
	command -v redis-server >/dev/null &&
		redis-server --version | grep -qE "v=${REDIS_SERIES//./\\.}\."
}
if redis_ok; then
	echo "engines-deps: redis-server $REDIS_SERIES.x already installed"
else
	if ! command -v redis-server >/dev/null; then
		command -v apt-get >/dev/null || die "redis-server not found and no apt-get to install it"
		echo "engines-deps: installing Debian's redis-server"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } ||
			die "apt-get install redis-server failed"
	fi
	redis_ok || die "redis-server is $(redis-server --version 2>&1 | head -1), want $REDIS_SERIES.x"
fi

# mvn_lib NAME GROUP:ARTIFACT:VERSION... resolves the artifacts with their
# runtime dependencies into $cache/NAME/lib. $cache/NAME/VERSION records
# what the lib holds; it is written last, so a half-done install is redone.
mvn_lib() {
	local name=$1
	shift
	local dir=$cache/$name want="$*"
	if [ -d "$dir/lib" ] && [ -f "$dir/VERSION" ] && [ "$(cat "$dir/VERSION")" = "$want" ]; then
		echo "engines-deps: $name ($want) already in $dir/lib"
		return
	fi
	echo "engines-deps: installing $name ($want) into $dir/lib"
	rm -rf "$dir"
	mkdir -p "$dir"
	{
		printf '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
		printf '  <modelVersion>4.0.0</modelVersion>\n'
		printf '  <groupId>switchboard.test</groupId><artifactId>%s-lib</artifactId><version>0</version><packaging>pom</packaging>\n' "$name"
		printf '  <dependencies>\n'
		local coord g a v
		for coord in "$@"; do
			IFS=: read -r g a v <<<"$coord"
			printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$g" "$a" "$v"
		done
		printf '  </dependencies>\n</project>\n'
	} >"$dir/pom.xml"
	mvn -B -q -f "$dir/pom.xml" -Dmaven.repo.local="$cache/m2" \
		"org.apache.maven.plugins:maven-dependency-plugin:$DEPENDENCY_PLUGIN:copy-dependencies" \
		-DincludeScope=runtime -DoutputDirectory="$dir/lib" >"$dir/mvn.log" 2>&1 ||
		die "mvn could not resolve $want (see $dir/mvn.log): $(tail -5 "$dir/mvn.log")"
	echo "$want" >"$dir/VERSION"
}

mvn_lib kafka "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
	"org.apache.logging.log4j:log4j-slf4j-impl:$LOG4J_VERSION" \
	"org.apache.logging.log4j:log4j-core:$LOG4J_VERSION"
[ -f "$cache/kafka/lib/kafka_2.13-$KAFKA_VERSION.jar" ] || die "$cache/kafka/lib has no kafka_2.13-$KAFKA_VERSION.jar"

mvn_lib cassandra "org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION"
[ -f "$cache/cassandra/lib/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "$cache/cassandra/lib has no cassandra-all-$CASSANDRA_VERSION.jar"

echo "engines-deps: ok (redis-server: $(command -v redis-server), kafka: $cache/kafka/lib, cassandra: $cache/cassandra/lib)"
