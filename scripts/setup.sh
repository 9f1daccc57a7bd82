#!/usr/bin/env bash
# Set up fasts3 on a fresh machine, then run the quick-start demo.
#
#   ./scripts/setup.sh             create .venv, install fasts3 with its test extras, run the demo
#   ./scripts/setup.sh --no-demo   install only (scripts/test.sh uses this)
#   ./scripts/setup.sh --force     reinstall even if .venv is up to date
#
# Idempotent: a re-run reuses .venv and skips pip while pyproject.toml is unchanged.
# PYTHON=/path/to/python3 picks the interpreter (default: python3 on PATH, >= 3.10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

demo=1
force=0
for arg in "$@"; do
    case "$arg" in
        --no-demo) demo=0 ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

VENV_PY=.venv/bin/python
STAMP=.venv/.fasts3-setup-stamp

pick_python() {
    local cand
    for cand in "${PYTHON:-}" python3 /usr/bin/python3 python3.13 python3.12 python3.11 python3.10; do
        [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' \
                >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

# What the install depends on: the project's metadata and the interpreter.
wanted_stamp() {
    { sha256sum pyproject.toml; "$VENV_PY" -c 'import sys; print(sys.version)'; } | sha256sum
}

# True if .venv has everything the tests and the demo need, installed from this pyproject.toml.
CHECK_IMPORTS='import importlib.metadata as md, boto3, pytest, pytest_timeout, moto.server
md.version("fasts3")'
installed() {
    [ -x "$VENV_PY" ] && [ -x .venv/bin/ruff ] && [ -x .venv/bin/mypy ] && [ -x .venv/bin/weed ] && [ -f "$STAMP" ] \
        && [ "$(cat "$STAMP")" = "$(wanted_stamp)" ] \
        && "$VENV_PY" -c "$CHECK_IMPORTS" >/dev/null 2>&1
}

install() {
    if [ "$force" = 0 ] && installed; then
        echo "==> .venv is up to date (./scripts/setup.sh --force to reinstall)"
        return 0
    fi
    if ! "$VENV_PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
        local py
        if ! py="$(pick_python)"; then
            echo "setup.sh: need Python >= 3.10 with venv and ensurepip" \
                 "(Debian/Ubuntu: apt-get install python3-venv), or set PYTHON=..." >&2
            exit 1
        fi
        echo "==> creating .venv with $py ($("$py" --version 2>&1))"
        rm -rf .venv
        "$py" -m venv .venv
    fi
    rm -f "$STAMP"
    echo "==> upgrading pip"
    pip_quiet install --upgrade pip
    echo "==> installing fasts3 (editable) with its test extras: pip install -e '.[test]'"
    pip_quiet install -e '.[test]'
    wanted_stamp > "$STAMP"
    echo "==> installed into $ROOT/.venv"
}

# pip, with its (and the build backend's) chatter in .venv/pip.log, shown only on failure.
pip_quiet() {
    if ! "$VENV_PY" -m pip --disable-pip-version-check "$@" > .venv/pip.log 2>&1; then
        tail -n 40 .venv/pip.log >&2
        echo "setup.sh: 'pip $*' failed; full output in .venv/pip.log" >&2
        exit 1
    fi
}

install
# Every worker process imports fasts3 when it starts: keep its bytecode cache current (where
# PYTHONDONTWRITEBYTECODE is set, each worker would otherwise compile what changed, ~20 ms).
"$VENV_PY" -m compileall -q fasts3 > /dev/null

if [ "$demo" = 1 ]; then
    echo "==> running the quick-start demo: .venv/bin/python scripts/quickstart.py"
    exec "$VENV_PY" scripts/quickstart.py
fi
