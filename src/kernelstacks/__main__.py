"""Allow ``python -m kernelstacks``."""

from kernelstacks.cli.app import main

if __name__ == "__main__":
    main()
