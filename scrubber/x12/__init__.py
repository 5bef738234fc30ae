"""The scrubber's X12 edge: 837P interchanges in, claim lines, 999s and 277CAs out.

pyx12 validates and walks the interchanges (see ``validator``); this package maps the 837P's
loops to claim lines (``mapping``), renders the acknowledgements (``ack``, ``ack277``) and ties
them together for the offline command and the stream (``intake``).
"""

from __future__ import annotations

import logging

# pyx12 logs each validation error with the offending value, which is claim data (names, member
# ids, dates). Nothing of it may reach a log: its loggers stop at a null handler.
_pyx12_log = logging.getLogger("pyx12")
_pyx12_log.addHandler(logging.NullHandler())
_pyx12_log.propagate = False
