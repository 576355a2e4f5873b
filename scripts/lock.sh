#!/usr/bin/env bash
# Regenerate requirements.lock: the exact, hash-checked versions the Docker image installs.
#
#   scripts/lock.sh            # after any change to pyproject.toml's dependencies
#
# Input: pyproject.toml's [project] dependencies plus its [build-system] requires (setuptools,
# wheel), so that the image builds the project itself offline from locked wheels too. The output
# resolves for every platform (--universal) for Python 3.11, the image's Python, with every
# file's sha256 (--generate-hashes) for `pip install --require-hashes`.
#
# The resolver is uv, at the version below. It runs from $UV when set, else from a virtual
# environment this script makes once under ${XDG_CACHE_HOME:-~/.cache}/kraken-copytrader/.
set -euo pipefail
cd "$(dirname "$0")/.."

uv_version="0.13.9"
uv="${UV:-}"
if [ -z "$uv" ]; then
    tools="${XDG_CACHE_HOME:-$HOME/.cache}/kraken-copytrader/uv-$uv_version"
    if [ ! -x "$tools/bin/uv" ]; then
        echo "lock.sh: installing uv $uv_version into $tools (first run only)" >&2
        python3 -m venv "$tools"
        "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
    fi
    uv="$tools/bin/uv"
fi

python3 -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
' | "$uv" pip compile pyproject.toml - \
    --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "scripts/lock.sh" \
    --quiet --output-file requirements.lock
echo "lock.sh: wrote requirements.lock ($(grep -c '^[a-z0-9]' requirements.lock) packages)" >&2
