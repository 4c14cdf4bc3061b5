#!/usr/bin/env bash
# Set up, then run the whole test suite: unit tests and the sandbox integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
