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
LOG="$VENV/setup.log"
: > "$LOG"
# step TEXT CMD...: CMD's output goes to $LOG; the terminal gets a spinner (a line every 10 s when
# piped), then the step's time, or on failure the end of the log.
step() {
  local text=$1; shift
  local start=$SECONDS spin='|/-\' i=0
  [[ -t 1 ]] || echo "setup: $text ..."
  "$@" >>"$LOG" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if [[ -t 1 ]]; then
      printf '\r%s setup: %s ... %ds' "${spin:i++%4:1}" "$text" $((SECONDS - start))
    elif (( (SECONDS - start) % 10 == 0 )); then
      echo "setup: $text ... $((SECONDS - start))s"
    fi
  done
  if wait "$pid"; then
    [[ -t 1 ]] && printf '\r\033[K'
    echo "setup: $text: done in $((SECONDS - start))s"
  else
    local rc=$?
    [[ -t 1 ]] && printf '\n'
    echo "setup: $text FAILED (exit $rc); the end of $LOG:" >&2
    tail -n 25 "$LOG" >&2
    exit "$rc"
  fi
}
step "upgrading pip" "$VENV/bin/python" -m pip install --upgrade pip setuptools wheel
step "installing TensorFlow and its pins (requirements/tf.txt)" "$VENV/bin/python" -m pip install -r requirements/tf.txt
step "installing the OD API (requirements/odapi-nodeps.txt)" \
  "$VENV/bin/python" -m pip install --no-deps -r requirements/odapi-nodeps.txt
step "installing odstack itself (pip install -e .[host,dev])" \
  "$VENV/bin/python" -m pip install -e '.[host,dev]' -r requirements/tf.txt
# export --format onnx/tflite, TF-free detect, odrun serve (TF's pins held: -c tf.txt)
step "installing the deploy extras (requirements/deploy.txt)" \
  "$VENV/bin/python" -m pip install -r requirements/deploy.txt -c requirements/tf.txt
# the independent converters the tests compare against (--no-deps: see the file's header)
step "installing the test peers (requirements/test-peers.txt)" \
  "$VENV/bin/python" -m pip install --no-deps -r requirements/test-peers.txt
echo "$stamp" > "$VENV/.odstack-stamp"
