#!/usr/bin/env bash
# Packs what a bare GPU machine lacks (Ray, ale-py, gymnasium and their few missing needs, for its
# Python 3.12; PYVER=3.11 for another) into .dev/site.tar.xz, under the device tool's 64 MiB carry
# limit: Ray's wheel alone is 79 MB, so its Java jars, dashboard client, RLlib/Tune/Data/Serve/
# Train/LLM and symbols go (25 MB left).
# The versions are this venv's, so the GPU figures come from the code CI tests.
# On the GPU machine: tar -xJf .dev/site.tar.xz -C /tmp && export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
packages=()
for name in ray ale-py gymnasium farama-notifications jsonschema jsonschema-specifications referencing rpds-py; do
    packages+=("$name==$(version "$name")")
done
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$build/wheels" "${packages[@]}"
mkdir -p "$build/site"
for wheel in "$build"/wheels/*.whl; do
    unzip -q -o "$wheel" -d "$build/site"
done
rm -rf "$build"/site/ray/{jars,rllib,tune,data,serve,train,llm,dashboard/client}
find "$build/site" -type f \( -name "*.so*" -o -perm -u+x \) -exec strip --strip-unneeded {} + 2>/dev/null || true
mkdir -p .dev .git/info
grep -qx "/.dev/" .git/info/exclude 2>/dev/null || echo "/.dev/" >> .git/info/exclude
tar -cJf .dev/site.tar.xz -C "$build" site
echo "wrote .dev/site.tar.xz ($(du -h .dev/site.tar.xz | cut -f1)): ${packages[*]}"
