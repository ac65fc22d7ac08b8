#!/bin/sh
# The install steps every images/<flavour>/Dockerfile shares, in one place. The Dockerfile COPYs its
# two locks, this folder (images/common/) and the optional wheelhouse to /tmp/odstack-build/ first.
#   install-odstack.sh PYTHON [PIP_FLAG...]           the locks with PYTHON's pip, then the runtime
#   install-odstack.sh --locks PYTHON [PIP_FLAG...]   the locks only (the cpu flavour's build stage)
#   install-odstack.sh --runtime                      the runtime only (the cpu flavour's final stage)
# PIP_FLAGs go to the odapi.lock install (e.g. --no-build-isolation: the OD API sdist is built with
# the base image's setuptools). pip reads PIP_NO_INDEX / PIP_INDEX_URL from the Dockerfile's ARGs.
set -eu
BUILD=/tmp/odstack-build

locks() {
    python=$1
    shift
    # both locks are fully resolved: --no-deps, so pip never swaps a pin (or the base's TensorFlow)
    "$python" -m pip install --no-cache-dir --no-deps --find-links "$BUILD" -r "$BUILD/requirements.lock"
    "$python" -m pip install --no-cache-dir --no-deps "$@" --find-links "$BUILD" -r "$BUILD/odapi.lock"
}

runtime() {
    # Any uid may run the image (`provision run` maps the caller's uid:gid): HOME and caches in /work.
    install -m 0755 "$BUILD/odrun.sh" /usr/local/bin/odrun
    useradd --create-home --uid 1000 --shell /bin/sh odstack
    mkdir -p /work /data /runs
    chmod 1777 /work /runs
    rm -rf "$BUILD"
}

case "${1:-}" in
    --locks) shift; locks "$@" ;;
    --runtime) runtime ;;
    -*|"") echo "usage: install-odstack.sh [--locks] PYTHON [PIP_FLAG...] | --runtime" >&2; exit 2 ;;
    *) locks "$@"; runtime ;;
esac
