#!/usr/bin/env bash
# Every figure in the root README's benchmark table is the one in the crate README it cites.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 .ci/readme_figures.py
