"""alstm's tests. alstm is imported first, before any test module imports torch, so that the
tests run with alstm's process set-up (alstm.mkl_path), as the CLI does."""

import alstm  # noqa: F401
