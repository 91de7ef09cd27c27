"""`python -m foodflow`: the same command line as the `foodflow` script."""

from foodflow.cli import app

if __name__ == "__main__":
    app()
