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
