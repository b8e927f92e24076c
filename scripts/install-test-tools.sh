#!/usr/bin/env bash
# Placeholder until the objstore work lands: installs nothing yet.
set -euo pipefail
echo "install-test-tools: nothing to install yet"
