"""`python -m riskpipe` = the `riskpipe` console script."""

from riskpipe.cli import main

main()
