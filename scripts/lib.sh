# Shared by scripts/test and scripts/demo: install what the project needs.
# Sourced, not run.

# Debian packages the project needs, as "command-that-proves-it:package".
REMOTECOMM_DEBIAN_PACKAGES=(
    "python3 -c 'import ensurepip':python3-venv"
    "openssl version:openssl"
    "command -v prosody:prosody"
    "command -v chromium:chromium"
)

apt_updated=""
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian package(s) $*: run this command as root, or install them" >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_debian_packages() {
    local entry check pkg missing=()
    for entry in "${REMOTECOMM_DEBIAN_PACKAGES[@]}"; do
        check=${entry%:*}
        pkg=${entry##*:}
        if ! bash -c "$check" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

# A virtualenv in ./.venv with the pinned packages and remotecomm itself
# (compat editable mode: twistd must see twisted/plugins in this tree).
ensure_venv() {
    local stamp want
    want=$(cat constraints.txt setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
    stamp=.venv/.remotecomm-installed
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return
    fi
    echo "preparing .venv (pinned packages from constraints.txt)"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -c constraints.txt \
        --config-settings editable_mode=compat -e '.[server,device,simulator,test]'
    echo "$want" > "$stamp"
}

# sslyze scans our TLS listener in the tests; its pins (cryptography among them) clash with
# ours, so it lives in its own virtualenv.
SSLYZE_VERSION=6.3.1
ensure_sslyze_venv() {
    local stamp=.venv-sslyze/.installed
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$SSLYZE_VERSION" ]; then
        return
    fi
    echo "preparing .venv-sslyze (sslyze $SSLYZE_VERSION, for the TLS scan test)"
    [ -x .venv-sslyze/bin/python ] || python3 -m venv .venv-sslyze
    .venv-sslyze/bin/python -m pip install -q "sslyze==$SSLYZE_VERSION"
    echo "$SSLYZE_VERSION" > "$stamp"
}

# A PostgreSQL server for the store tests' second pass; sets POSTGRESQL_SERVER to a URL
# of its maintenance database.  This machine kind runs one on 127.0.0.1:5432 that lets
# "postgres" in without a password; elsewhere Debian's postgresql is installed and
# started, and root reaches it over its Unix socket.  No server: the run fails.
ensure_postgresql() {
    local local_tcp="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    local socket="postgresql+psycopg://root@/postgres?host=/var/run/postgresql"
    if .venv/bin/python -m remotecomm.testing.databases check "$local_tcp"; then
        POSTGRESQL_SERVER=$local_tcp
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "installing Debian packages: postgresql"
        apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
        pg_ctlcluster "$version" main start 2>/dev/null || true
    fi
    for _ in $(seq 1 30); do
        if su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1; then
            break
        fi
        sleep 1
    done
    su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'root'\"" \
        | grep -q 1 || su postgres -c "psql -qc 'CREATE ROLE root SUPERUSER LOGIN'"
    if .venv/bin/python -m remotecomm.testing.databases check "$socket"; then
        POSTGRESQL_SERVER=$socket
        return
    fi
    echo "no PostgreSQL server could be found or started: the store tests need one" >&2
    return 1
}
