"""Demo app on the jupyter framework only: shows that scipy is not visible here."""

import importlib.util
import sys

import ipykernel
import numpy as np

print(f"ipykernel {ipykernel.__version__} from {ipykernel.__file__}")
print(f"numpy {np.__version__} from the runtime layer: {np.__file__}")
print("scipy visible:", importlib.util.find_spec("scipy") is not None)
print("python:", sys.executable)
