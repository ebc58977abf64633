"""Many runs at once: multi-seed benches on an executor (local process pool or Ray) and their
tables, plus the attention, complexity and early-stopping studies built on them."""
