# Sourced by scripts/test and scripts/scan. `ensure_venv DIR REQUIREMENTS` creates the
# Python virtual environment DIR when it is missing, and installs REQUIREMENTS into it
# only when that file changed since the last install (its hash is kept in
# DIR/.requirements.sha256), so repeated runs cost nothing.
ensure_venv() {
    local venv="$1" requirements="$2"
    local caller="scripts/$(basename "$0")"
    local stamp="${venv}/.requirements.sha256"
    local wanted
    wanted="$(sha256sum "${requirements}" | cut -d' ' -f1)"
    if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${wanted}" ]]; then
        return 0
    fi
    if [[ ! -x "${venv}/bin/python" ]]; then
        echo "${caller}: creating a Python environment in ${venv}"
        mkdir -p "$(dirname "${venv}")"
        python3 -m venv "${venv}"
    fi
    echo "${caller}: installing ${requirements} into ${venv}"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "${requirements}"
    echo "${wanted}" >"${stamp}"
}
