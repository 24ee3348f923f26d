"""`python -m tradectl`: the same CLI as the `tradectl` command."""

from tradectl.cli import app

app(prog_name="tradectl")
