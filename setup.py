"""Build hook (metadata lives in pyproject.toml): a wheel carries the checkout's top-level data.

compat_matrix.yaml, playbooks/, images/ and requirements/ stay at the repository's top level (the
layout the docs and `make` use); `build_py` copies them into odcore/share/ of the built package,
where odcore.install.find() looks first. One source of truth: nothing is copied in the tree.
The sdist carries them through MANIFEST.in, so a wheel built from the sdist has them too.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

SHARED = ("compat_matrix.yaml", "playbooks", "images", "requirements")  # = odcore.install.SHARED
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


class BuildPyWithShare(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        here = os.path.dirname(os.path.abspath(__file__))
        share = os.path.join(self.build_lib, "odcore", "share")
        for name in SHARED:
            src, dest = os.path.join(here, name), os.path.join(share, name)
            if not os.path.exists(src):
                raise SystemExit("setup.py: {} is missing from the source tree".format(name))
            if os.path.isdir(src):
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(src, dest, ignore=IGNORE)
            else:
                os.makedirs(share, exist_ok=True)
                shutil.copy2(src, dest)


setup(cmdclass={"build_py": BuildPyWithShare})
