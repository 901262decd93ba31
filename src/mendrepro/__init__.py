"""mendrepro: reproduction of Fast Model Editing at Scale (MEND)."""

__version__ = "0.1.0"
