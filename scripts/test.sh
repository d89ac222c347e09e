#!/usr/bin/env bash
# The one test command: installs and starts what the tests need when it is
# missing (PostgreSQL, curl, bubblewrap, Chromium, slapd, a single-node Slurm,
# moto_server, schemathesis, aiosmtpd, an OpenID provider),
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  command -v curl >/dev/null || { say "installing curl"; apt_install curl; }
  command -v psql >/dev/null || { say "installing postgresql-client"; apt_install postgresql-client; }
}

pg_ok() { psql "postgres://postgres@127.0.0.1:5432/postgres" -qtAc 'SELECT 1' >/dev/null 2>&1; }

ensure_postgres() {
  if pg_ok; then return; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    say "installing PostgreSQL"
    apt_install postgresql
  fi
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$ver" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    pg_createcluster "$ver" main >/dev/null
  fi
  say "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 60); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 0.5
  done
  if ! pg_ok; then
    # A fresh install asks for passwords on TCP; the tests use trust on loopback.
    local hba="/etc/postgresql/$ver/main/pg_hba.conf"
    say "allowing trust authentication on 127.0.0.1 in $hba"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
    sleep 1
  fi
  pg_ok || { echo "PostgreSQL is not reachable as postgres@127.0.0.1:5432" >&2; exit 1; }
}

# The portal's tests drive Debian's headless Chromium over WebDriver.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null; then
    say "installing chromium and chromium-driver"
    apt_install chromium chromium-driver
  fi
}

# The task sandbox (tests/isolation.rs, the agent's worker tests): bubblewrap.
ensure_bubblewrap() {
  command -v bwrap >/dev/null || { say "installing bubblewrap"; apt_install bubblewrap; }
}

# OpenLDAP for the LDAP tests: each test starts a private slapd with its
# own config, port and database (never the system's service).
ensure_slapd() {
  if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null || ! command -v openssl >/dev/null; then
    say "installing slapd, ldap-utils and openssl"
    apt_install slapd ldap-utils openssl
  fi
}

# A private single-node Slurm (its own config, ports and munge socket).
ensure_slurm() {
  ./scripts/slurm.sh start
  eval "$(./scripts/slurm.sh env)"
  export TRESTLE_TEST_SLURM_CONF="$SLURM_CONF"
}

# An S3 API server for the object-storage tests: moto_server from PyPI,
# in a virtual environment of the checkout unless one is on the PATH.
ensure_moto() {
  if [ -n "${TRESTLE_TEST_MOTO_SERVER:-}" ]; then return; fi
  if command -v moto_server >/dev/null && moto_server --help >/dev/null 2>&1; then
    TRESTLE_TEST_MOTO_SERVER=$(command -v moto_server)
  else
    if [ ! -x .venv-test/bin/moto_server ]; then
      if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        say "installing python3-venv"
        apt_install python3-venv python3-pip
      fi
      say "installing moto[server] into .venv-test"
      python3 -m venv .venv-test
      .venv-test/bin/pip install -q 'moto[server]'
    fi
    TRESTLE_TEST_MOTO_SERVER=$PWD/.venv-test/bin/moto_server
  fi
  export TRESTLE_TEST_MOTO_SERVER
}

# A property-based API fuzzer (schemathesis, from PyPI) for the OpenAPI
# document, in the same virtual environment unless one is on the PATH.
ensure_schemathesis() {
  if [ -n "${TRESTLE_TEST_SCHEMATHESIS:-}" ]; then return; fi
  if [ ! -x .venv-test/bin/st ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      say "installing python3-venv"
      apt_install python3-venv python3-pip
    fi
    [ -x .venv-test/bin/pip ] || python3 -m venv .venv-test
    say "installing schemathesis into .venv-test"
    .venv-test/bin/pip install -q 'schemathesis==4.32.5'
  fi
  TRESTLE_TEST_SCHEMATHESIS=$PWD/.venv-test/bin/st
  export TRESTLE_TEST_SCHEMATHESIS
}

# A real SMTP server for the notification tests (aiosmtpd from PyPI) and a
# JSON Schema validator for the Teams cards (jsonschema), in the same
# virtual environment unless a Python with both is given.
ensure_aiosmtpd() {
  # The TLS mail tests make their certificates with the openssl CLI.
  command -v openssl >/dev/null || { say "installing openssl"; apt_install openssl; }
  if [ -n "${TRESTLE_TEST_AIOSMTPD_PYTHON:-}" ]; then return; fi
  if [ ! -x .venv-test/bin/python ] || ! .venv-test/bin/python -c 'import aiosmtpd, jsonschema' 2>/dev/null; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      say "installing python3-venv"
      apt_install python3-venv python3-pip
    fi
    [ -x .venv-test/bin/pip ] || python3 -m venv .venv-test
    say "installing aiosmtpd and jsonschema into .venv-test"
    .venv-test/bin/pip install -q 'aiosmtpd==1.4.6' 'jsonschema==4.26.0'
  fi
  TRESTLE_TEST_AIOSMTPD_PYTHON=$PWD/.venv-test/bin/python
  export TRESTLE_TEST_AIOSMTPD_PYTHON
}

# A real OpenID provider for the sign-in tests: npm's oidc-provider,
# installed from crates/trestle/tests/oidc's lockfile into its node_modules
# (ignored by git), again whenever the lockfile changes.
ensure_oidc_provider() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing nodejs and npm"
    apt_install nodejs npm
  fi
  local dir=crates/trestle/tests/oidc stamp
  stamp=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.trestle-lock" 2>/dev/null)" != "$stamp" ]; then
    say "installing oidc-provider into $dir/node_modules"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
    echo "$stamp" >"$dir/node_modules/.trestle-lock"
  fi
}

# JupyterLab for the workspace tests, in a virtual environment cached
# outside the checkout and keyed by its version (installed from PyPI where
# the cache is missing); its bin directory goes on the workers' PATH.
JUPYTERLAB_VERSION=4.6.6
ensure_jupyterlab() {
  if [ -n "${TRESTLE_TEST_JUPYTER_BIN:-}" ]; then return; fi
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/trestle-test/jupyterlab-$JUPYTERLAB_VERSION"
  if [ ! -x "$venv/bin/jupyter-lab" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      say "installing python3-venv"
      apt_install python3-venv python3-pip
    fi
    say "installing JupyterLab $JUPYTERLAB_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "jupyterlab==$JUPYTERLAB_VERSION"
  fi
  TRESTLE_TEST_JUPYTER_BIN="$venv/bin"
  export TRESTLE_TEST_JUPYTER_BIN
}

# Workflow tools that speak Slurm, for the drop-in's tests: submitit,
# dask-jobqueue and Snakemake with its Slurm executor plugin, from PyPI in
# a virtual environment cached outside the checkout, keyed by their
# versions.
SUBMITIT_VERSION=1.5.4
DASK_JOBQUEUE_VERSION=0.9.0
SNAKEMAKE_VERSION=9.27.1
SNAKEMAKE_SLURM_VERSION=2.8.0
ensure_slurm_tools() {
  if [ -n "${TRESTLE_TEST_SLURM_TOOLS:-}" ]; then return; fi
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/trestle-test/slurm-tools-submitit-$SUBMITIT_VERSION-dask-jobqueue-$DASK_JOBQUEUE_VERSION-snakemake-$SNAKEMAKE_VERSION-$SNAKEMAKE_SLURM_VERSION"
  if [ ! -x "$venv/bin/snakemake" ] || ! "$venv/bin/python" -c 'import submitit, dask_jobqueue, snakemake_executor_plugin_slurm' 2>/dev/null; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      say "installing python3-venv"
      apt_install python3-venv python3-pip
    fi
    say "installing submitit, dask-jobqueue and Snakemake into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "submitit==$SUBMITIT_VERSION" "dask-jobqueue==$DASK_JOBQUEUE_VERSION" \
      "snakemake==$SNAKEMAKE_VERSION" "snakemake-executor-plugin-slurm==$SNAKEMAKE_SLURM_VERSION"
  fi
  TRESTLE_TEST_SLURM_TOOLS="$venv/bin"
  export TRESTLE_TEST_SLURM_TOOLS
}

ensure_tools
ensure_slurm_tools
ensure_jupyterlab
ensure_bubblewrap
ensure_postgres
ensure_chromium
ensure_slapd
ensure_slurm
ensure_moto
ensure_schemathesis
ensure_aiosmtpd
ensure_oidc_provider

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
