"""Stage 5: application layers as Jupyter kernels — kernelspecs, provisioner, fallback kernel."""
