"""alstm: Qlib's ALSTM benchmark, reproduced fast and readable."""

__version__ = "0.1.0"
