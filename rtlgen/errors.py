"""Every user-facing error of rtlgen, in one module: each carries a one-line message; the CLI prints it and exits with
code 2. All derive from :class:`RtlgenError`."""


class RtlgenError(Exception):
    """Base class: ``str(e)`` is a single line naming the node, option or file and the reason."""


class ModelError(RtlgenError):
    """The model cannot be imported or implemented exactly (unsupported op, unquantized tensor, bad file)."""


class OptionError(RtlgenError):
    """A bad command-line option or API argument (unknown board, bad budget, bad plan file...)."""


class InputsError(OptionError):
    """The ``--inputs`` array cannot be used (missing file, not .npy, wrong shape or dtype, unmappable values)."""


class DatasetError(RtlgenError):
    """The dataset folder is missing or malformed (message is one line naming the path)."""


class ToolchainError(RtlgenError):
    """The simulation toolchain is missing or broken."""


class SimulationError(RtlgenError):
    """A cocotb run failed (a test failed, none ran, or the simulator could not be built); one line."""


class YosysMissing(RtlgenError):
    """yosys is not on PATH (resource and timing estimates need it)."""


class TimingError(RtlgenError):
    """The timing estimate cannot read a netlist or a build (one line)."""
