"""Allow ``python -m kernelstacks``."""

from kernelstacks.cli import main

if __name__ == "__main__":
    main()
