"""User-facing errors: one line, no traceback, exit status 2 (:func:`honestbench.cli.main.main` catches
:class:`BenchError`; every exit status is listed in docs/reliability.md)."""


class BenchError(Exception):
    """An error caused by the user's input or environment; its message is one line saying what to do."""


class DataError(BenchError):
    """A data file is missing, corrupt or of the wrong shape."""


class AttackConfigError(BenchError, ValueError):
    """An attack was constructed with invalid parameters or called on invalid inputs."""


class ModelCardError(BenchError):
    """A model card is invalid or its checkpoint is missing / does not match its sha256."""
