# Sourced by test-python.sh and demo.sh: `ensure_venv DIR [PYTHON]` creates the virtualenv DIR
# unless it exists, on a fresh Debian machine too (whose python3 lacks ensurepip until
# python3-venv is installed).
ensure_venv() {
    local venv="$1" python="${2:-python3}"
    [ -x "$venv/bin/python" ] && return 0
    printf '\n== creating %s\n' "$venv"
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
            "$python" -m venv "$venv"
        else
            "$python" -m pip install --user -q virtualenv
            "$python" -m virtualenv -q "$venv"
        fi
    fi
}
