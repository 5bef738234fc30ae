"""``python -m scrubber`` is the ``scrubber`` command."""

from scrubber.cli import main

main()
