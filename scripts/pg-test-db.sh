#!/usr/bin/env bash
# Starts the local Debian PostgreSQL cluster and creates the role and
# database the tests use (hookbay_test, trusted over the Unix socket). Safe to
# run again. Then run the tests with
#   HOOKBAY_TEST_DATABASE_URL='postgres://hookbay_test@/hookbay_test?host=/var/run/postgresql&sslmode=disable'
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null; then
	echo "pg-test-db: PostgreSQL is not installed (apt-get install postgresql)" >&2
	exit 1
fi
read -r version cluster _ < <(pg_lsclusters --no-header | head -n 1)
if [ -z "${version:-}" ]; then
	echo "pg-test-db: no PostgreSQL cluster (pg_createcluster)" >&2
	exit 1
fi
if ! pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
	pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 60); do
	if su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1; then break; fi
	sleep 0.5
done

psql_su() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtA $*"; }
if [ "$(psql_su "-c \"select 1 from pg_roles where rolname='hookbay_test'\"")" != 1 ]; then
	psql_su "-c 'create role hookbay_test login createdb'"
fi
if [ "$(psql_su "-c \"select 1 from pg_database where datname='hookbay_test'\"")" != 1 ]; then
	psql_su "-c 'create database hookbay_test owner hookbay_test'"
fi

# The tests reach the cluster over the Unix socket as hookbay_test without a
# password: trust that one role on local connections.
hba=$(psql_su "-c 'show hba_file'")
if ! grep -q '^local[[:space:]]\+all[[:space:]]\+hookbay_test[[:space:]]\+trust' "$hba"; then
	sed -i '1i local all hookbay_test trust' "$hba"
	psql_su "-c 'select pg_reload_conf()'" >/dev/null
fi
echo "pg-test-db: PostgreSQL $version/$cluster is up; database hookbay_test ready"
