#!/bin/sh
# odrun inside the images: odrun/ and odcore/ are copied to /opt/odstack/lib (no packaging step, so the
# same thing works on Python 3.6 images where setuptools >= 61 is not available).
exec python3 -m odrun "$@"
