"""User-facing errors: each carries a one-line message; the CLI prints it and exits with code 2."""


class RtlgenError(Exception):
    """Base class: ``str(e)`` is a single line naming the node, option or file and the reason."""


class ModelError(RtlgenError):
    """The model cannot be imported or implemented exactly (unsupported op, unquantized tensor, bad file)."""


class OptionError(RtlgenError):
    """A bad command-line option or API argument (unknown board, bad budget, bad plan file...)."""
