"""Demo app on the scipy + jupyter frameworks: solves a tiny linear system."""

import sys

import numpy as np
import scipy
from scipy import linalg
from tabulate import tabulate

a = np.array([[3.0, 1.0], [1.0, 2.0]])
b = np.array([9.0, 8.0])
x = linalg.solve(a, b)
rows = [
    ["numpy", np.__version__, np.__file__],
    ["scipy", scipy.__version__, scipy.__file__],
]
print(tabulate(rows, headers=["package", "version", "from layer"]))
print(f"solution of the demo system: {x.tolist()} (python {sys.version.split()[0]})")
