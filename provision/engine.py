"""The Docker engine, through the docker SDK: one client factory and one place that turns engine
errors into messages that say what to do (no daemon, socket permission, missing image, no GPU runtime).
"""
import os

from odcore.errors import UserError

# What dockerd answers to a GPU device request when the NVIDIA Container Toolkit is not
# registered (text as seen on this machine's engine, docker.io 20.10; see shared notes).
GPU_DRIVER_MISSING = 'could not select device driver "" with capabilities: [[gpu]]'


def engine_url():
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def client(low_level=False):
    """A docker SDK client (APIClient when `low_level`) or a UserError naming the fix."""
    import docker

    try:
        if low_level:
            api = docker.APIClient(base_url=engine_url(), version="auto")
            api.ping()
            return api
        cli = docker.from_env(version="auto")
        cli.ping()
        return cli
    except docker.errors.DockerException as exc:
        raise engine_error(exc) from None


def engine_error(exc):
    """Map an exception from the SDK to a UserError (or return it unchanged if unknown)."""
    import docker

    text = str(exc)
    where = engine_url()
    if isinstance(exc, docker.errors.ImageNotFound):
        return UserError("image not found: " + _explanation(exc), fix="build it: provision image build FLAVOR")
    if GPU_DRIVER_MISSING in text or "could not select device driver" in text:
        return UserError("the engine cannot give the container a GPU: " + _explanation(exc),
                         fix="install and register the NVIDIA Container Toolkit: provision host --tags toolkit "
                             "(or run without GPUs: --gpus none)")
    if "Permission denied" in text or "PermissionError" in text:
        return UserError("no permission to use the Docker socket (" + where + ")",
                         fix="add yourself to the docker group: sudo usermod -aG docker $USER, then log in "
                             "again (or run with sudo)")
    if ("No such file or directory" in text or "Connection refused" in text or "FileNotFoundError" in text
            or "Connection aborted" in text):
        return UserError("cannot reach the Docker engine at " + where + ": no daemon is running",
                         fix="start it: sudo systemctl start docker (or: sudo dockerd &); install it with "
                             "provision host --tags docker")
    return UserError("Docker engine error: " + _explanation(exc))


def _explanation(exc):
    return getattr(exc, "explanation", None) or str(exc)
