#!/usr/bin/env bash
# The Debian package installs and works: build it (debug profile, to keep the test fast), check its metadata and
# contents, install it with apt as a DBA would, create the extension from the installed files in a database of the
# throwaway cluster (current version, and a released version updated to it), remove the package and check its files
# are gone; then (on any exit) put the development build back (scripts/install_extension.sh) for the later tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
released=$(ls sql/released/ | sed -n 's/^analytics_ext--\([^-]*\)\.sql$/\1/p' | sort -V | head -1)

# whatever happens below, the server gets the development build back for the tests that follow
restore() {
    if dpkg-query -W -f='${Status}' postgresql-15-analytics-ext 2>/dev/null | grep -q "install ok installed"; then
        DEBIAN_FRONTEND=noninteractive as_root apt-get remove -y -qq postgresql-15-analytics-ext >/dev/null
    fi
    bash scripts/install_extension.sh >/tmp/analytics_ext_install.log 2>&1 || cat /tmp/analytics_ext_install.log
}
trap restore EXIT

bash scripts/package.sh --debug
deb="target/package/postgresql-15-analytics-ext_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ]
dpkg-deb --field "$deb" Package Version Depends
[ "$(dpkg-deb --field "$deb" Version)" = "$version" ]
dpkg-deb --field "$deb" Depends | grep -q '^postgresql-15\b'
dpkg-deb --field "$deb" Depends | grep -q 'libc6'
contents=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
for f in /usr/lib/postgresql/15/lib/analytics_ext.so /usr/share/postgresql/15/extension/analytics_ext.control \
         "/usr/share/postgresql/15/extension/analytics_ext--$version.sql" \
         "/usr/share/postgresql/15/extension/analytics_ext--$released.sql" \
         "/usr/share/postgresql/15/extension/analytics_ext--$released--$version.sql" \
         "/usr/share/postgresql/15/extension/analytics_ext--$version--$released.sql"; do
    echo "$contents" | grep -qx ".$f" || { echo "FAIL: the package lacks $f"; exit 1; }
done
echo "ok: package metadata and contents"

# a clean install: the development build's files are removed first, so the extension can only come from the package
as_root rm -f /usr/lib/postgresql/15/lib/analytics_ext.so /usr/share/postgresql/15/extension/analytics_ext*
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "./$deb" >/dev/null
dpkg-query -W -f='${Status}\n' postgresql-15-analytics-ext | grep -q "install ok installed"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'drop database if exists package_test' -c 'create database package_test'
psql -X -q -At -v ON_ERROR_STOP=1 -d package_test \
    -c 'create extension analytics_ext' \
    -c "select 'installed ' || extversion from pg_extension where extname = 'analytics_ext'" \
    -c "select 'assignment ' || analytics.gb_hash('checkout-button', 'visitor-1', 2)" \
    -c "drop extension analytics_ext" -c "create extension analytics_ext version '$released'" \
    -c "alter extension analytics_ext update" \
    -c "select 'updated to ' || extversion from pg_extension where extname = 'analytics_ext'"
echo "ok: apt install ./$(basename "$deb"), then create extension analytics_ext"

DEBIAN_FRONTEND=noninteractive as_root apt-get remove -y -qq postgresql-15-analytics-ext >/dev/null
[ ! -e /usr/lib/postgresql/15/lib/analytics_ext.so ] || { echo "FAIL: apt remove left the library"; exit 1; }
echo "ok: apt remove takes the files away"
