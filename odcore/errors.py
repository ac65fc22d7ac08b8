"""Errors that reach the user as one clear message and an exit code (no traceback)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and found problems (checks failed, nothing matched, ...)
EXIT_USAGE = 2  # bad input: a file, a field or a flag; the message names it and the fix
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    `fix` is the exact thing to do about it; `where` names the file/field at fault.
    """

    def __init__(self, message, fix=None, where=None, code=EXIT_USAGE):
        Exception.__init__(self, message)
        self.message = message
        self.fix = fix
        self.where = where
        self.code = code

    def render(self):
        text = "error: "
        if self.where:
            text += "{}: ".format(self.where)
        text += self.message
        if self.fix:
            text += "\n  fix: {}".format(self.fix)
        return text
