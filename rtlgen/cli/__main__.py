"""``python -m rtlgen.cli``."""

from . import main

main()
