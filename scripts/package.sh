#!/usr/bin/env bash
# Builds a Debian package of analytics_ext for PostgreSQL 15 (Debian's postgresql-15):
#   target/package/postgresql-15-analytics-ext_<version>_<arch>.deb
# containing the shared library, the control file, the current install script, every upgrade and downgrade script
# and the released install scripts (docs/install.md). Named as Debian names PostgreSQL extensions
# (postgresql-15-pgvector, postgresql-15-cron, ...). `bash scripts/package.sh --debug` packages a debug build
# (what the tests install); the default is a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
profile=release
[ "${1:-}" = "--debug" ] && profile=debug
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
name=postgresql-15-analytics-ext
tree=$(mktemp -d /tmp/analytics_ext_package.XXXXXX)
trap 'rm -rf "$tree"' EXIT

args=(--pg-config "$PG_CONFIG" --out-dir "$tree/root")
[ "$profile" = debug ] && args+=(--debug)
echo "[package] cargo pgrx package ($profile)"
cargo pgrx package "${args[@]}" >"$tree/pgrx.log" 2>&1 || { cat "$tree/pgrx.log"; exit 1; }

root="$tree/root"
extdir="$root$("$PG_CONFIG" --sharedir)/extension"
libdir="$root$("$PG_CONFIG" --pkglibdir)"
[ -f "$libdir/analytics_ext.so" ] && [ -f "$extdir/analytics_ext.control" ] && [ -f "$extdir/analytics_ext--$version.sql" ] \
    || { echo "cargo pgrx package did not produce the expected tree:"; find "$root" -type f; exit 1; }
for f in sql/released/analytics_ext--*.sql; do
    [ "$(basename "$f")" = "analytics_ext--$version.sql" ] || install -m 644 "$f" "$extdir/"
done
install -d "$root/usr/share/doc/$name"
install -m 644 README.md CHANGELOG.md "$root/usr/share/doc/$name/"

# dependencies: the PostgreSQL server it extends, and the shared libraries the .so links (dpkg-shlibdeps)
mkdir -p "$tree/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" > "$tree/debian/control"
shlibs=$(cd "$tree" && dpkg-shlibdeps -O -e"$libdir/analytics_ext.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$tree/debian"
size=$(du -sk "$root" | cut -f1)
mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: analytics_ext developers <analytics-ext@example.invalid>
Installed-Size: $size
Depends: postgresql-15${shlibs:+, $shlibs}
Section: database
Priority: optional
Description: LLM-application analytics inside PostgreSQL 15
 analytics_ext keeps the traces of an LLM application, its A/B experiments and
 anomaly detection in PostgreSQL, under row-level security: ingest (batch,
 OpenTelemetry), trace trees and waterfalls, GrowthBook-identical assignment,
 experiment statistics, and anomaly detectors. After installing the package run
 CREATE EXTENSION analytics_ext; in a database (as a superuser).
CONTROL
mkdir -p target/package
out="target/package/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "[package] $out ($(du -h "$out" | cut -f1))"
