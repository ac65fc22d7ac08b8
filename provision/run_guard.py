"""Checks `provision run` applies before anything is created or started (issue 11, item 16).

- mounts: a system folder (provision/data/system_dirs.yaml) is never bind-mounted;
- user: the job runs as the invoking user (under sudo SUDO_UID), never as 0 unless `--user 0`
  is explicit; a root caller without sudo gets the image's own non-root user;
- --flavor must be a known image flavour, --shm-size a docker size (e.g. 512m, 1g);
- mounts are written as `--mount type=bind,...` (a path with ':' breaks `-v src:dst:mode`).
"""
import csv
import io
import os
import re
from pathlib import Path

from odcore.errors import UserError

SIZE_RE = re.compile(r"^(\d+(\.\d+)?)([bkmg])?$", re.IGNORECASE)
DATA = Path(__file__).resolve().parent / "data" / "system_dirs.yaml"


def system_dirs():
    import yaml
    with open(str(DATA), encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return [Path(p) for p in data["exact"]], [Path(p) for p in data["tree"]]


def check_mount(path, flag):
    """`path` resolved; UserError when it is (or lies in) a system folder."""
    resolved = Path(path).expanduser().resolve()
    exact, tree = system_dirs()
    bad = resolved in exact or any(resolved == t or t in resolved.parents for t in tree)
    if bad:
        raise UserError("refusing to mount the system folder {} into the job".format(resolved), where=flag,
                        fix="pass a folder of your own, e.g. {} ./runs".format(flag))
    return resolved


def check_flavor(flavor, known):
    if flavor and flavor not in known:
        import difflib
        close = difflib.get_close_matches(flavor, known, n=1)
        raise UserError("unknown image flavour {!r}".format(flavor), where="--flavor",
                        fix=("did you mean {}? ".format(close[0]) if close else "") + "one of: " + ", ".join(known))


def check_shm_size(value):
    m = SIZE_RE.match(str(value).strip())
    if not m or float(m.group(1)) <= 0:
        raise UserError("not a size like 512m or 1g: {!r}".format(value), where="--shm-size",
                        fix="--shm-size 1g")
    return str(value).strip()


IMAGE_USER = "1000:1000"  # the images' USER (odstack, images/*/Dockerfile)


def job_user(explicit=None, env=None, euid=None, egid=None):
    """uid:gid for the container: --user as given, else the invoking user (under sudo SUDO_UID),
    else - root without sudo - the images' own non-root user, never 0."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    if explicit:
        if not re.match(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$", explicit):
            raise UserError("--user must be UID[:GID] (got {!r})".format(explicit), where="--user",
                            fix="--user 1000:1000 (or --user 0 to run as root)")
        return explicit  # --user 0 (or 0:0) only when asked for
    if euid == 0:
        if env.get("SUDO_UID") and env["SUDO_UID"] != "0":
            return "{}:{}".format(env["SUDO_UID"], env.get("SUDO_GID", env["SUDO_UID"]))
        return IMAGE_USER
    return "{}:{}".format(euid, os.getgid() if egid is None else egid)


def serve_job(export_dir, publish, extra_args):
    """(mount, odrun args, ports) for `provision run --serve EXPORT_DIR -p [HOST:]PORT`."""
    model = check_mount(export_dir, "--serve")
    if not (model / "metadata.json").is_file():
        raise UserError("not an `odrun export` directory (no metadata.json)", where=str(model),
                        fix="odrun export --workdir RUN_DIR --out " + str(model))
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", model.name) or "model"
    publish = str(publish or "8501")
    host, _, port = publish.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError("-p must be [HOST:]PORT (got {!r})".format(publish), where="-p/--publish", fix="-p 8501")
    target = "/models/" + name
    args = ["serve", "--model", target, "--host", "0.0.0.0", "--port", "8501"] + list(extra_args)
    return (str(model), target, "ro"), args, {"{}:{}".format(host or "127.0.0.1", port): "8501"}


def mount_flag(src, dst, mode):
    """`--mount` value (CSV as docker parses it: a field with ',' or '"' is quoted)."""
    fields = ["type=bind", "source=" + src, "target=" + dst] + (["readonly"] if mode == "ro" else [])
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()
