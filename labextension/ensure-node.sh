#!/usr/bin/env bash
# Node.js 18+ and npm, to build the TensorLab lab extension: used when present, else Debian's nodejs and npm
# through apt (as .ci/run installs Chromium). Users of a built wheel never need Node.
set -euo pipefail
node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]
}
if node_ok; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if ! node_ok; then
  echo "tensorlab: building the JupyterLab extension needs Node.js 18+ and npm (e.g. sudo apt-get install nodejs npm)" >&2
  exit 1
fi
