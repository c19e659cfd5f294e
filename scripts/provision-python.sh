#!/usr/bin/env bash
# Installs the Python SDK (clients/python) with its test extras into a virtual
# environment of this checkout, .pocket/python, for the conformance tests:
# pip takes the packages from this machine's configured index. Safe to run again:
# it does nothing when the environment already has them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.pocket/python
check='import pocket, pytest, pytest_asyncio, sys; assert sys.version_info >= (3, 11), sys.version'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
  exit 0
fi
python=${POCKET_PYTHON_BASE:-python3}
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "provision: the Python SDK needs Python 3.11 or later as $python (POCKET_PYTHON_BASE names another)" >&2
  exit 1
fi
echo "provision: installing the Python SDK into $venv" >&2
"$python" -m venv "$venv"
# Packages come from this machine's configured index and wheel folders; an index that cannot be
# reached is passed over at once rather than retried.
log=$(mktemp)
if ! "$venv/bin/python" -m pip install -q --retries 0 --timeout 10 -e 'clients/python[test]' >"$log" 2>&1; then
  grep -v '^WARNING: ' "$log" >&2 || true
  rm -f "$log"
  echo "provision: pip could not install the Python SDK (above)" >&2
  exit 1
fi
rm -f "$log"
"$venv/bin/python" -c "$check"
echo "provision: done" >&2
