"""Containers: the Docker CLI and daemon, and the NVIDIA container toolkit that lets
`docker run --gpus all` reach the GPU (without it: 'could not select device driver ""
with capabilities: [[gpu]]')."""
from provision.doctor.core import check, fail, has_gpu, no_gpu_skip, ok, skip
from provision.doctor.system import DockerUnavailable

TOOLKIT_BINARIES = ("nvidia-ctk", "nvidia-container-toolkit", "nvidia-container-runtime-hook",
                    "nvidia-container-runtime")
CDI_SPECS = ("/etc/cdi/nvidia.yaml", "/etc/cdi/nvidia.json", "/var/run/cdi/nvidia.yaml", "/var/run/cdi/nvidia.json")


def docker_info(ctx):
    return ctx.memo("docker", ctx.system.docker_info)


@check("containers.docker_cli", "Docker CLI installed")
def docker_cli(ctx):
    path = ctx.system.which("docker")
    if not path:
        return fail("docker: command not found", "provision host --tags docker")
    return ok(path)


def daemon_fix(ctx, error):
    """The smallest step first: a stopped daemon needs a start, not a whole `provision host` run."""
    if "permission" in error.lower():
        return ("sudo usermod -aG docker $USER and log in again (the socket is root:docker), "
                "or run as root")
    if ctx.system.which("dockerd") or ctx.system.which("docker"):
        return ("sudo systemctl start docker (and `sudo systemctl enable docker` to start it at boot; "
                "no systemd: sudo service docker start); if it does not start, `journalctl -u docker` says why; "
                "not installed properly: provision host --tags docker")
    return "provision host --tags docker (installs and starts dockerd)"


@check("containers.docker_daemon", "Docker daemon answers")
def docker_daemon(ctx):
    try:
        info = docker_info(ctx)
    except DockerUnavailable as exc:
        return fail("the Docker daemon does not answer: {}".format(exc), daemon_fix(ctx, str(exc)))
    return ok("Docker Engine {}, runtimes: {} (default {})".format(
        info.get("ServerVersion", "?"), ", ".join(sorted(info.get("Runtimes") or {})) or "?",
        info.get("DefaultRuntime", "?")))


@check("containers.nvidia_runtime", "NVIDIA runtime or CDI configured in Docker")
def nvidia_runtime(ctx):
    cdi = [p for p in CDI_SPECS if ctx.system.exists(p)]
    try:
        info = docker_info(ctx)
    except DockerUnavailable:
        info = None
    runtimes = sorted((info or {}).get("Runtimes") or {})
    if "nvidia" in runtimes or cdi:
        return ok("; ".join(filter(None, ["runtimes: " + ", ".join(runtimes) if runtimes else "",
                                          "CDI: " + ", ".join(cdi) if cdi else ""])))
    if not has_gpu(ctx):
        return no_gpu_skip()
    if info is None:
        return skip("Docker daemon not reachable: see containers.docker_daemon")
    return fail("Docker knows only the runtimes {} and there is no CDI spec: `docker run --gpus all` fails with "
                "'could not select device driver \"\" with capabilities: [[gpu]]'".format(", ".join(runtimes) or "?"),
                "provision host --tags toolkit (installs nvidia-container-toolkit, runs "
                "`nvidia-ctk runtime configure --runtime=docker`, restarts dockerd)")


@check("containers.toolkit", "nvidia-container-toolkit installed")
def toolkit(ctx):
    found = [b for b in TOOLKIT_BINARIES if ctx.system.which(b)]
    if found:
        return ok(", ".join(found))
    if not has_gpu(ctx):
        return no_gpu_skip()
    return fail("none of {} found".format(", ".join(TOOLKIT_BINARIES)), "provision host --tags toolkit")
