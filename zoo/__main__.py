"""`python -m zoo <verb> ...` is the same as the `zoo` console script."""

from zoo.cli import main

if __name__ == "__main__":
    main()
