"""`--pretrained`: a model-zoo checkpoint by name (odrun/data/zoo.yaml), URL or local path.

Downloads stream into a temp file with a progress bar and a running sha256; a digest that
differs from the pinned one (or from the first download's, when none is pinned) is an error
and nothing is cached. Archives are extracted into a temp folder and renamed into
~/.cache/odstack/zoo/<name>/ ($ODSTACK_CACHE overrides the root), so an interrupted run
never leaves a half-extracted model that a later run would trust.
"""
import hashlib
import os
import tarfile
import tempfile

from odcore import cache
from odcore.cache import cache_dir
from odcore.errors import UserError
from odcore.fileio import staged_dir, write_text
from odrun import DATA_DIR
from odrun.tasks.detect.config import checks as config_checks
from odrun.ui.progress import ItemProgress
from odrun.ui.quiet import terminal  # the terminal, also while library output goes to the log

ZOO_FILE = os.path.join(DATA_DIR, "zoo.yaml")
CHUNK = 1 << 16


def cache_root():
    return cache_dir("zoo")


def zoo(api):
    import yaml
    with open(ZOO_FILE, encoding="utf-8") as f:
        return (yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get(api, {})


def resolve(spec, api="tf2", progress=True):
    """(checkpoint prefix, fine_tune_checkpoint_type) for a zoo name, URL or local path."""
    entries = zoo(api)
    if os.path.exists(spec) or os.path.exists(spec + ".index"):
        prefix = config_checks.find_checkpoint(spec)
        if not prefix:
            raise UserError("no checkpoint in {}".format(spec), where="--pretrained",
                            fix="looked for: " + ", ".join(config_checks.checkpoint_files(os.path.join(spec, "checkpoint", "ckpt-0"))
                                                            + [os.path.join(spec, "model.ckpt.index")]))
        return prefix, "detection"
    if spec in entries:
        entry = entries[spec]
        folder = fetch(entry["url"], sha256=entry.get("sha256"), progress=progress)
        prefix = os.path.join(folder, entry.get("checkpoint", "checkpoint/ckpt-0"))
        if not os.path.exists(prefix + ".index"):
            prefix = config_checks.find_checkpoint(folder)
        if not prefix:
            raise UserError("the archive has no checkpoint", where=entry["url"],
                            fix="check the zoo entry's checkpoint: field in " + ZOO_FILE)
        return prefix, entry.get("type", "detection")
    if "://" in spec:
        folder = fetch(spec, progress=progress)
        prefix = config_checks.find_checkpoint(folder)
        if not prefix:
            raise UserError("the archive has no checkpoint (*.index)", where=spec,
                            fix="use a model-zoo .tar.gz that contains checkpoint/ckpt-0 or model.ckpt")
        return prefix, "detection"
    import difflib
    close = difflib.get_close_matches(spec, list(entries), n=1)
    raise UserError("not a zoo name, URL or existing path: {!r}{}".format(
        spec, " (did you mean {!r}?)".format(close[0]) if close else ""), where="--pretrained",
        fix="zoo names for {}: {}".format(api, ", ".join(sorted(entries)) or "(none)"))


def archive_name(url):
    name = os.path.basename(url.split("?", 1)[0]) or "model.tar.gz"
    for ext in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(ext):
            return name, name[:-len(ext)]
    return name, name


def fetch(url, sha256=None, progress=True):
    """Download + verify + extract (cached); returns the extracted folder."""
    root = cache_root()
    name, stem = archive_name(url)
    folder = os.path.join(root, stem)
    digest_file = folder + ".sha256"
    if os.path.isdir(folder) and os.path.exists(digest_file):
        with open(digest_file) as f:
            recorded = f.read().split()[0]
        if sha256 and recorded != sha256:
            raise UserError("cached {} has sha256 {}, the zoo pins {}".format(folder, recorded, sha256),
                            where=folder, fix="delete it and retry: rm -r " + folder)
        return _top(folder)
    cache.make_dir(os.path.basename(root))  # the marker: `odrun cache clear` may remove it
    fd, tmp_archive = tempfile.mkstemp(prefix="." + name + ".", dir=root)
    os.close(fd)
    try:
        got = download(url, tmp_archive, progress=progress)
        expected = sha256
        if not expected and os.path.exists(digest_file):
            with open(digest_file) as f:
                expected = f.read().split()[0]
        if expected and got != expected:
            raise UserError("sha256 mismatch for {}: expected {}, got {}".format(name, expected, got),
                            where=url, fix="the download is corrupt or the file changed upstream; retry, "
                                           "or update sha256 in " + ZOO_FILE)
        with staged_dir(folder) as tmp_dir:  # the extracted folder replaces the cached one as one
            extract(tmp_archive, tmp_dir, url)
        write_text(digest_file, "{}  {}\n".format(got, name))
        if not expected:
            say_trusted(name, got, digest_file)
    finally:
        if os.path.exists(tmp_archive):
            os.unlink(tmp_archive)
    return _top(folder)


def say_trusted(name, digest, digest_file):
    """No published digest for this archive: say that this first download is trusted as it is."""
    terminal().write(
        "warning: no published sha256 for {}: trusting this first download as it is (trust on first "
        "use): sha256 {}, recorded in {}; a later download or cached copy that differs is refused. "
        "Compare it with one measured elsewhere (sha256sum) before relying on it.\n".format(
            name, digest, digest_file))
    terminal().flush()


def _top(folder):
    """Zoo archives hold one top folder (<name>/checkpoint/...): return it if so."""
    entries = os.listdir(folder)
    if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])):
        return os.path.join(folder, entries[0])
    return folder


def download(url, dest, progress=True):
    """Stream url into dest; returns the sha256 hex digest."""
    from urllib.error import URLError
    from urllib.request import urlopen
    h = hashlib.sha256()
    try:
        with urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with ItemProgress(total, "download " + archive_name(url)[0], enabled=progress) as bar:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    bar.advance(len(chunk))
    except (URLError, OSError, ValueError) as exc:
        raise UserError("download failed: {}".format(getattr(exc, "reason", exc)), where=url,
                        fix="check the URL and the network, or pass a local checkpoint folder")
    return h.hexdigest()


def extract(archive, dest, url):
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            base = os.path.realpath(dest)
            for m in members:  # refuse ../ and absolute paths (tar path traversal)
                target = os.path.realpath(os.path.join(dest, m.name))
                if not (target == base or target.startswith(base + os.sep)) or m.issym() or m.islnk():
                    raise UserError("unsafe path in archive: {}".format(m.name), where=url,
                                    fix="use the original model-zoo archive")
            tar.extractall(dest, members)
    except tarfile.TarError as exc:
        raise UserError("not a valid tar archive: {}".format(exc), where=url,
                        fix="model-zoo checkpoints are .tar.gz files")
