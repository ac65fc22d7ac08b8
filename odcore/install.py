"""How odstack is installed here, where its data files are, and what to install for a missing piece.

Three ways odstack runs:
  wheel     `pip install odstack` (or pipx): the top-level data of the checkout
            (compat_matrix.yaml, playbooks/, images/, requirements/) is copied into
            odcore/share/ by setup.py at build time -- one source of truth, no second copy in git;
  checkout  a clone with scripts/setup.sh: the data is read where it lives;
  image     inside an odstack image: odrun/ and odcore/ are copied to /opt/odstack/lib.

`find(name)` looks in the package data first, then the checkout. Python 3.6-safe (odcore is copied
into the TF 1.15 images).
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SHARE = os.path.join(HERE, "share")  # filled by setup.py's build_py in a wheel / sdist build
CHECKOUT = os.path.dirname(HERE)  # the repository root when running from a clone
IMAGE_LIB = "/opt/odstack/lib"  # where the Dockerfiles COPY odrun/ and odcore/
# The checkout's top-level data that a wheel carries in odcore/share/ (see setup.py).
SHARED = ("compat_matrix.yaml", "playbooks", "images", "requirements")
OD_API_PINS = os.path.join("requirements", "odapi-nodeps.txt")


def find(name, env=None):
    """Path of a shared data file or folder (`name` is relative to the repository root, e.g.
    "compat_matrix.yaml" or "playbooks"): $env if set, the package's share/ copy, the checkout's;
    None when none exists."""
    if env and os.environ.get(env):
        return os.environ[env]
    for root in (SHARE, CHECKOUT):
        path = os.path.join(root, name)
        if os.path.exists(path):
            return path
    return None


def mode():
    """'image', 'checkout' or 'wheel'."""
    if os.path.abspath(CHECKOUT) == IMAGE_LIB:
        return "image"
    if os.path.exists(os.path.join(CHECKOUT, "scripts", "setup.sh")) and \
            os.path.exists(os.path.join(CHECKOUT, "pyproject.toml")):
        return "checkout"
    return "wheel"


def od_api_pins():
    """The OD API packages that are installed with --no-deps (requirements/odapi-nodeps.txt)."""
    path = find(OD_API_PINS)
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def tf_fix(how=None):
    """What to do when TensorFlow or the OD API is missing, for the way odstack was installed."""
    how = how or mode()
    if how == "checkout":
        return "run scripts/setup.sh (TensorFlow, the OD API and their pins into .venv)"
    if how == "image":
        return ("this image lacks it: rebuild it with `provision image build FLAVOR` on the host, "
                "or run in another image: `provision run --flavor cpu -- VERB ...`")
    pins = " ".join(od_api_pins()) or "tf-models-research-object-detection tf-models-official"
    return ("pip install 'odstack[tf]' && pip install --no-deps {}; "
            "or use the image: `provision run --flavor cpu -- VERB ...` (odrun VERB inside it)".format(pins))
