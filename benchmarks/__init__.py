"""Performance benchmarks of the editors (``make bench``); not part of ``make test``."""
