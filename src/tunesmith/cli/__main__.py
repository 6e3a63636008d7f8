"""`python -m tunesmith.cli ...`: what the distributed launchers and the tests start."""

from tunesmith.cli import main

main()
