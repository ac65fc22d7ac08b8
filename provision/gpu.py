"""The one NVML reader (nvidia-ml-py): this machine's driver, CUDA driver API and GPUs.

`read()` returns an NvmlSnapshot or raises NvmlFailure(kind, message); doctor (LiveSystem.nvml),
`provision run` (default flavour) and `matrix recommend` (this machine) all read NVML here.
A recorded machine (doctor's RecordedSystem) builds the same NvmlSnapshot from `nvidia-smi -q -x`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class NvmlFailure(Exception):
    """NVML could not be initialised. `kind` is one of: no_library, driver_not_loaded,
    version_mismatch, no_binding, other."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


# pynvml error values (nvml.h) -> our kinds. 12 is what this GPU-less machine raises.
NVML_ERROR_KINDS = {12: "no_library", 9: "driver_not_loaded", 18: "version_mismatch"}

# The same failures as nvidia-smi (a thin NVML client) prints them.
SMI_ERROR_PATTERNS = [
    ("version_mismatch", re.compile(r"driver/library version mismatch|NVML/RM version mismatch", re.I)),
    ("driver_not_loaded", re.compile(r"couldn.t communicate with the NVIDIA driver|Driver Not Loaded", re.I)),
    ("no_library", re.compile(r"NVML Shared Library Not Found|libnvidia-ml\.so.*(not found|cannot open)", re.I)),
]


def classify_nvml_message(text):
    for kind, pattern in SMI_ERROR_PATTERNS:
        if pattern.search(text or ""):
            return kind
    return "other"


@dataclass
class GpuInfo:
    name: str
    bus_id: str = ""
    memory_mib: int | None = None
    compute_capability: str | None = None  # "X.Y"


@dataclass
class NvmlSnapshot:
    driver_version: str
    cuda_driver_version: str | None
    gpus: list = field(default_factory=list)


def text(value):
    """nvidia-ml-py < 11.515 returns bytes, newer ones str."""
    return value.decode() if isinstance(value, bytes) else value


def read():
    """NvmlSnapshot of this machine; NvmlFailure when NVML (or its Python binding) is unusable."""
    try:
        import pynvml
    except ImportError:
        raise NvmlFailure("no_binding", "nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        kind = NVML_ERROR_KINDS.get(getattr(exc, "value", None)) or classify_nvml_message(str(exc))
        raise NvmlFailure(kind, "{} (NVML error {}: {})".format(type(exc).__name__, exc.value, exc))
    try:
        driver = text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12020
        snap = NvmlSnapshot(driver, "{}.{}".format(cuda // 1000, (cuda % 1000) // 10))
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            snap.gpus.append(GpuInfo(
                name=text(pynvml.nvmlDeviceGetName(h)),
                bus_id=text(pynvml.nvmlDeviceGetPciInfo(h).busId),
                memory_mib=pynvml.nvmlDeviceGetMemoryInfo(h).total // (1 << 20),
                compute_capability="{}.{}".format(major, minor)))
        return snap
    except pynvml.NVMLError as exc:  # a half-working driver
        raise NvmlFailure(classify_nvml_message(str(exc)), "{}: {}".format(type(exc).__name__, exc))
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def first_gpu():
    """(name, compute capability "X.Y", driver) of GPU 0; (None, None, driver) without GPUs;
    NvmlFailure without NVML."""
    snap = read()
    if not snap.gpus:
        return None, None, snap.driver_version
    g = snap.gpus[0]
    return g.name, g.compute_capability, snap.driver_version
