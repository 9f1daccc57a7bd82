#!/usr/bin/env bash
# Set up fasts3 on a fresh machine and run the quick-start demo.
#
#   ./scripts/setup.sh             create .venv, install fasts3 with its test extras, run the demo
#   ./scripts/setup.sh --no-demo   install only (scripts/test.sh uses this)
#
# Idempotent: re-running reuses .venv and only installs what is missing or changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

demo=1
for arg in "$@"; do
    case "$arg" in
        --no-demo) demo=0 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

pick_python() {
    local cand
    for cand in "${PYTHON:-}" python3 /usr/bin/python3 python3.13 python3.12 python3.11 python3.10; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
            >/dev/null 2>&1; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

install() {
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
        local py
        if ! py="$(pick_python)"; then
            echo "setup.sh: need Python >= 3.10 with the venv module (apt-get install python3-venv)" >&2
            exit 1
        fi
        echo "==> creating .venv with $py ($("$py" --version 2>&1))"
        rm -rf .venv
        "$py" -m venv .venv
    fi
    echo "==> upgrading pip"
    .venv/bin/python -m pip install --quiet --upgrade pip
    echo "==> installing fasts3 with test extras"
    .venv/bin/python -m pip install --quiet -e '.[test]'
}

install

if [ "$demo" = 1 ]; then
    echo "==> running the quick-start demo (scripts/quickstart.py)"
    exec .venv/bin/python scripts/quickstart.py
fi
