"""Generated trading.v1 API: do not edit, run `make proto`."""
