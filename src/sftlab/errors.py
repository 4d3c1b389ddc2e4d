"""Errors a user can cause. The CLI prints them as one line, without a traceback."""


class SftlabError(Exception):
    """Base class for user-facing errors (bad input files, bad configuration)."""


class DataError(SftlabError):
    """A data file or record is malformed; the message names the file, record and field."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem

    def __reduce__(self):  # keep the two-argument form picklable across datasets' worker processes
        return (type(self), (self.where, self.problem))


class TemplateError(SftlabError):
    """A chat template could not render a conversation, or does not fit the tokenizer."""


class Stopped(Exception):
    """The run stopped on purpose before its end (preemption): the CLI prints the message as one line and
    exits with `exit_status` (128 + the signal, as a shell reports a process a signal ended), so a
    scheduler or `sftlab fit ... && next-step` never takes it for success."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status

    def __reduce__(self):
        return (type(self), (str(self), self.exit_status))
