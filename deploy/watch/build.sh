#!/usr/bin/env bash
# Build the watch's Lambda package from this repository:
#   deploy/watch/build.sh CONFIG.yaml [OUTPUT.zip]
# It checks the config with `orgscan validate-config` (so orgscan must be installed where this
# runs), builds orgscan from the repository's committed HEAD (git archive: no local edits, no
# caches), pip-installs it and its pinned dependencies as Linux x86_64 wheels for the function's
# runtime (python3.12) into a folder, adds the config as orgscan-config.yaml (the function's
# ORGSCAN_CONFIG), and zips the folder. Only the package index is contacted.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 CONFIG.yaml [OUTPUT.zip]" >&2
  exit 2
fi
config=$1
python=${PYTHON:-python3}
output=$("$python" -c 'import os, sys; print(os.path.abspath(sys.argv[1]))' "${2:-orgscan-watch.zip}")
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

orgscan validate-config "$config"
commit=$(git -C "$root" rev-parse HEAD)
mkdir "$work/source"
git -C "$root" archive --format=tar "$commit" | tar -x -C "$work/source"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" "$work/source"
"$python" -m pip install --quiet --no-compile --target "$work/package" \
  --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
  --only-binary=:all: "$work"/wheel/orgscan-*.whl
cp "$config" "$work/package/orgscan-config.yaml"
rm -f "$output"
(cd "$work/package" && "$python" -m zipfile -c "$output" .)
echo "wrote $output: orgscan at $commit, $(du -h "$output" | cut -f1)"
echo "upload it to S3 for CloudFormation (CodeS3Bucket, CodeS3Key), or give it to Terraform (package_path)"
