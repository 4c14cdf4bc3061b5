#!/usr/bin/env bash
# The main job: set up, build the demo bundle, boot a sandbox host, run every runbook on it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/gpurun demo "$@"
