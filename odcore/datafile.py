"""Reading odstack's YAML data files: one loader (libyaml's C loader when PyYAML has it: the
knowledge base is read on every `provision explain`) and one cache per file for the resolvers."""
_CACHE = {}


def read_yaml(path):
    """The parsed file (PyYAML imported here, lazily: `provision doctor --no-tf` stays fast)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, "rb") as fh:
        return yaml.load(fh, Loader=loader)


def cached_yaml(path):
    """read_yaml(path), read once per process."""
    if path not in _CACHE:
        _CACHE[path] = read_yaml(path)
    return _CACHE[path]
