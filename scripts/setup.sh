#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenv with everything the demo and the tests need.
#   scripts/setup.sh            python packages only (enough for `make demo`)
#   scripts/setup.sh --system   also the Debian packages the tests use (docker.io, debootstrap), when root
# Re-running is cheap: the venv is rebuilt only when pyproject.toml or requirements/ change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ODSTACK_VENV:-.venv}
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--system" ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    need=()
    for pkg in $(grep -v '^#' requirements/system-packages.txt); do
      dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if ((${#need[@]})); then
      echo "setup: installing Debian packages: ${need[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
  else
    echo "setup: not root or no apt-get; skipping Debian packages (requirements/system-packages.txt)" >&2
  fi
fi

stamp=$(cat pyproject.toml requirements/*.txt | sha256sum | cut -c1-16)
if [[ -f "$VENV/.odstack-stamp" && "$(cat "$VENV/.odstack-stamp")" == "$stamp" ]]; then
  exit 0
fi
echo "setup: building $VENV (TensorFlow + OD API; ~2 min with a warm pip cache)"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
"$VENV/bin/python" -m pip install -q -r requirements/tf.txt
"$VENV/bin/python" -m pip install -q --no-deps -r requirements/odapi-nodeps.txt
"$VENV/bin/python" -m pip install -q -e '.[host,dev]' -r requirements/tf.txt
# export --format onnx/tflite, TF-free detect, odrun serve (TF's pins held: -c tf.txt)
"$VENV/bin/python" -m pip install -q -r requirements/deploy.txt -c requirements/tf.txt
echo "$stamp" > "$VENV/.odstack-stamp"
