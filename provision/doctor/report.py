"""`provision doctor --report FILE`: a shareable environment report for a bug report or a forum
post, gathering what TensorFlow's tf_env_collect.sh does (OS, kernel, driver, nvidia-smi, CUDA /
cuDNN libraries found, Python and its packages, Docker and its runtimes) plus doctor's findings,
with hostnames, IP and MAC addresses, user names, e-mail addresses and tokens redacted.

  1. collect each section through the System (so --root works on a captured machine),
  2. redact: values of secret-looking environment variables, this host's names, the user's
     names (and /home/USER paths), addresses and well-known token shapes,
  3. write atomically (odcore.fileio) as Markdown; the caller prints the path.
"""
import getpass
import os
import platform
import re
import socket
import sys

from odcore import fileio

PACKAGES = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-keras", "keras", "numpy", "protobuf",
            "tf-models-official", "tf-slim", "object-detection", "tf-models-research-object-detection",
            "pycocotools", "pandas", "Pillow", "opencv-python", "lxml", "nvidia-ml-py", "docker",
            "ansible-core", "odstack")
LIB_RE = re.compile(r"lib(cudart|cudnn|cublas|cublasLt|cufft|curand|cusolver|cusparse|nvinfer|nccl|cuda|nvidia-ml)\b")
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH|COOKIE|SESSION",
                        re.IGNORECASE)
REDACTED = "<redacted>"
TOKEN_PATTERNS = [
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,}"),  # JWT
    re.compile(r"(?i)\b(bearer|token|password|passwd|secret|api[_-]?key)(\s*[:=]\s*|\s+)[^\s'\"]{6,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b|\b(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4})?\b")
MAC = re.compile(r"\b(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\b")
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b")
HOME = re.compile(r"(/home/|/Users/|C:\\Users\\)[^/\\\s]+")
MIN_SECRET = 4  # shorter env values ("1", "yes") would redact half the report


class Redactor(object):
    """Replaces this machine's identifying strings and secrets in report text."""

    def __init__(self, environ=None, extra=()):
        environ = os.environ if environ is None else environ
        words = set(w for w in extra if w)
        for name, value in environ.items():
            if SECRET_ENV.search(name) and len(value) >= MIN_SECRET:
                words.add(value)
        for name in ("USER", "LOGNAME", "USERNAME", "SUDO_USER", "HOSTNAME"):
            if len(environ.get(name, "")) >= 2:
                words.add(environ[name])
        for fn in (getpass.getuser, socket.gethostname, socket.getfqdn, platform.node):
            try:
                value = fn()
            except Exception:  # noqa: BLE001 - a name we cannot read cannot leak
                continue
            if value and value not in ("localhost", "root") and len(value) >= 2:
                words.add(value)
                words.add(value.split(".")[0])
        self.words = sorted((w for w in words if len(w) >= 2), key=len, reverse=True)

    def __call__(self, text):
        for pattern in TOKEN_PATTERNS:
            text = pattern.sub(REDACTED, text)
        text = HOME.sub(lambda m: m.group(1) + "<user>", text)
        for word in self.words:
            text = re.sub(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", REDACTED, text)
        text = EMAIL.sub("<email>", text)
        text = MAC.sub("<mac>", text)
        text = IPV4.sub(lambda m: m.group(0) if m.group(0).startswith("127.") else "<ip>", text)
        text = IPV6.sub("<ip>", text)
        return text


def _cmd(system, argv):
    res = system.run(argv)
    if res.missing:
        return "({}: not installed)".format(argv[0])
    out = res.output or "(no output)"
    return out if res.returncode == 0 else "{}\n(exit {})".format(out, res.returncode)


def _libraries(system):
    res = system.run(["ldconfig", "-p"])
    found = sorted(set(line.split(" => ")[-1].strip() for line in res.stdout.splitlines() if LIB_RE.search(line)))
    for d in ("/usr/local/cuda/version.txt", "/usr/local/cuda/version.json", "/usr/include/cudnn_version.h",
              "/usr/include/x86_64-linux-gnu/cudnn_version_v8.h"):
        text = system.read(d)
        if text:
            lines = [line for line in text.splitlines() if "CUDNN_MAJOR" in line or "CUDNN_MINOR" in line
                     or "CUDA Version" in line or '"version"' in line][:4]
            found.append("{}: {}".format(d, "; ".join(s.strip() for s in lines)))
    return "\n".join(found) or "(no CUDA/cuDNN libraries in the loader cache)"


def _packages(system):
    if not system.live:
        return "(captured system: not recorded)"
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover
        return "(importlib.metadata unavailable)"
    lines = []
    for name in PACKAGES:
        try:
            lines.append("{}=={}".format(name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines)


def _docker(system):
    try:
        info = system.docker_info()
    except Exception as exc:  # noqa: BLE001 - DockerUnavailable and SDK errors alike
        return "unavailable: {}".format(exc)
    keep = ("ServerVersion", "OperatingSystem", "KernelVersion", "Runtimes", "DefaultRuntime", "CgroupVersion",
            "Driver", "NCPU", "MemTotal")
    return "\n".join("{}: {}".format(k, sorted(info[k]) if k == "Runtimes" and isinstance(info.get(k), dict)
                                     else info.get(k)) for k in keep if k in info)


def sections(system, findings):
    """-> [(title, text)] in report order."""
    out = [
        ("OS", system.read("/etc/os-release") or "(no /etc/os-release)"),
        ("Kernel", _cmd(system, ["uname", "-a"])),
        ("NVIDIA driver", system.read("/proc/driver/nvidia/version") or "(no /proc/driver/nvidia/version)"),
        ("nvidia-smi", _cmd(system, ["nvidia-smi"])),
        ("CUDA / cuDNN libraries", _libraries(system)),
        ("Python", "{} ({})".format(sys.version.split()[0], sys.executable) if system.live else "(captured)"),
        ("Python packages", _packages(system)),
        ("Docker", _docker(system)),
        ("NVIDIA container toolkit", _cmd(system, ["nvidia-ctk", "--version"])),
    ]
    rows = ["[{}] {} {}: {}".format(f.status, f.section, f.id, f.evidence) + ("\n    fix: " + f.fix if f.fix else "")
            for f in findings]
    out.append(("provision doctor findings", "\n".join(rows) or "(none)"))
    return out


def render(parts, redact):
    body = ["# odstack environment report", "",
            "Made by `provision doctor --report`. Host names, addresses, user names and tokens are "
            "replaced by <redacted>/<ip>/<user>.", ""]
    for title, text in parts:
        body += ["## " + title, "", "```", redact(str(text).rstrip()), "```", ""]
    return "\n".join(body)


def host_names(system):
    """The names the (possibly captured) machine calls itself: /etc/hostname, `uname -n`, `hostname`."""
    names = [(system.read("/etc/hostname") or "").strip()]
    for argv in (["uname", "-n"], ["hostname"], ["hostname", "-f"]):
        res = system.run(argv)
        if res.returncode == 0:
            names.append(res.stdout.strip())
    uname = system.run(["uname", "-a"])
    if uname.returncode == 0 and len(uname.stdout.split()) > 1:
        names.append(uname.stdout.split()[1])
    return [n for n in names if n and n not in ("localhost", "(none)")]


def write(path, system, findings, environ=None):
    text = render(sections(system, findings), Redactor(environ, extra=host_names(system)))
    fileio.write_text(path, text)
    return text
