"""The one way our CLIs make a rich Console: on a terminal it wraps to the window; piped or
redirected (CI, `tee`, a file) it never hard-wraps a sentence at 80 columns."""


def make_console(stderr=False, **kw):
    from rich.console import Console

    probe = Console(stderr=stderr)
    kw.setdefault("highlight", False)
    if not probe.is_terminal:
        kw.setdefault("soft_wrap", True)
        kw.setdefault("width", 200)  # tables and panels: wide enough not to fold lines
    return Console(stderr=stderr, **kw)
