"""`python -m foodflow`: the same command line as the `foodflow` script."""

from foodflow.cli import run

if __name__ == "__main__":
    run()
