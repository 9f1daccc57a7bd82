#!/usr/bin/env bash
# Lint, type-check and test fasts3: ./scripts/test.sh [pytest args...]
#
# Installs .venv first (./scripts/setup.sh --no-demo) if it is missing or out of date.
# Exits non-zero if ruff or pytest fails, and also if pytest ran no test at all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

./scripts/setup.sh --no-demo

lint_dirs=()
for d in fasts3 tests bench scripts; do
    [ -e "$d" ] && lint_dirs+=("$d")
done
echo "==> ruff check ${lint_dirs[*]}"
.venv/bin/ruff check "${lint_dirs[@]}"

echo "==> mypy fasts3"
.venv/bin/mypy

echo "==> pytest -q $*"
rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
if [ "$rc" = 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$rc"
