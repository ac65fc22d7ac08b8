"""Checks `provision run` applies before anything is created or started (issue 11, item 16).

- mounts: a system folder is never bind-mounted - by rule (provision/data/system_dirs.yaml, FHS 3.0):
  the system trees, homes and their dot-folders, scratch roots and their system entries, lost+found;
- user: the job runs as the invoking user (under sudo SUDO_UID), never as 0 unless `--user 0`
  is explicit; a root caller without sudo gets the image's own non-root user;
- --flavor must be a known image flavour, --shm-size a docker size (e.g. 512m, 1g);
- mounts are written as `--mount type=bind,...` (a path with ':' breaks `-v src:dst:mode`).
"""
import csv
import fnmatch
import io
import os
import pwd
import re
from pathlib import Path

from odcore.errors import UserError

SIZE_RE = re.compile(r"^(\d+(\.\d+)?)([bkmg])?$", re.IGNORECASE)
DATA = Path(__file__).resolve().parent / "data" / "system_dirs.yaml"


def system_dirs():
    import yaml
    with open(str(DATA), encoding="utf-8") as f:
        return yaml.safe_load(f)


def _homes(rules):
    """Every passwd home directory (resolved)."""
    homes = set()
    for entry in pwd.getpwall():
        if entry.pw_dir and entry.pw_dir.startswith("/") and entry.pw_dir != "/":
            homes.add(Path(os.path.realpath(entry.pw_dir)))
    return homes | {Path(p) for p in rules["home_patterns"] if "*" not in p}


def _home_of(path, rules, homes):
    """(home, rest) when `path` is a home or lies in one (`/home/*` patterns count)."""
    for home in sorted(homes, key=lambda h: -len(h.parts)):
        if path == home or home in path.parents:
            return home, path.parts[len(home.parts):]
    for pattern in rules["home_patterns"]:
        base = Path(pattern)
        if "*" in pattern and len(path.parts) >= len(base.parts) and fnmatch.fnmatch(
                str(Path(*path.parts[:len(base.parts)])), pattern):
            return Path(*path.parts[:len(base.parts)]), path.parts[len(base.parts):]
    return None, ()


def _as_home_path(resolved, home_root=None):
    """A symlinked /home (Fedora Atomic: /home -> /var/home) resolves into /var: judge it as /home/..."""
    real = Path(home_root or os.path.realpath("/home"))
    if real != Path("/home") and (resolved == real or real in resolved.parents):
        return Path("/home", *resolved.parts[len(real.parts):])
    return resolved


def mount_refusal(resolved, rules=None, homes=None, home_root=None):
    """Why the resolved folder must not be mounted into a job (None: it may). Rules: system_dirs.yaml."""
    rules = rules or system_dirs()
    homes = _homes(rules) if homes is None else homes
    resolved = _as_home_path(resolved, home_root)
    if len(resolved.parts) == 1:
        return "the root folder /"
    if any(part in rules["refused_names"] for part in resolved.parts):
        return "a filesystem's lost+found"
    for root in map(Path, rules["scratch"]["roots"]):
        if resolved == root:
            return "the shared scratch folder {}".format(root)
        if root in resolved.parents:
            entry = resolved.parts[len(root.parts)]
            if any(fnmatch.fnmatch(entry, p) for p in rules["scratch"]["refused_entries"]):
                return "another program's entry {} in {}".format(entry, root)
            return None  # /tmp/myruns: scratch space
    if len(resolved.parts) > 1 and any(fnmatch.fnmatch(resolved.parts[1], p) for p in rules["system_trees"]):
        return "the system tree /{}".format(resolved.parts[1])
    home, rest = _home_of(resolved, rules, homes)
    if home is not None and not rest:
        return "the home folder {} (it holds its dot-folders)".format(home)
    if home is not None and rest[0].startswith("."):
        return "a home's dot-folder ({})".format(home / rest[0])
    if home is not None:
        return None  # ~/runs: the user's own space
    if any(resolved in h.parents for h in homes) or any(resolved == Path(p).parent for p in rules["home_patterns"]):
        return "a folder that holds home folders"
    if resolved in map(Path, rules["roots_only"]):
        return "the shared root {} (a subfolder of it is yours)".format(resolved)
    return None


def check_mount(path, flag):
    """`path` resolved; UserError when it is (or lies in) a system folder."""
    resolved = Path(os.path.realpath(str(Path(path).expanduser())))
    why = mount_refusal(resolved)
    if why:
        raise UserError("refusing to mount the system folder {} into the job: {}".format(resolved, why), where=flag,
                        fix="pass a folder of your own, e.g. {} ./runs or {} /data/NAME".format(flag, flag))
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


# uid_t/gid_t are 32-bit; (uid_t)-1 = 4294967295 means "no change" to chown(2)/setreuid(2), never an id
MAX_ID = 2 ** 32 - 2
IMAGE_USER = "1000:1000"  # the images' USER (odstack, images/*/Dockerfile)


def job_user(explicit=None, env=None, euid=None, egid=None):
    """uid:gid for the container: --user as given, else the invoking user (under sudo SUDO_UID),
    else - root without sudo - the images' own non-root user, never 0."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    if explicit:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$", explicit):  # no leading -
            raise UserError("--user must be UID[:GID] (got {!r})".format(explicit), where="--user",
                            fix="--user 1000:1000 (or --user 0 to run as root)")
        for part in explicit.split(":"):
            if part.isdigit() and int(part) > MAX_ID:
                raise UserError("--user {}: {} is out of range (ids are 0-{})".format(explicit, part, MAX_ID),
                                where="--user", fix="--user 1000:1000 (see `id -u`, `id -g`)")
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
