"""``python -m analyzer`` is the same as the ``nta`` console script."""

from analyzer.cli import main

if __name__ == "__main__":
    main()
