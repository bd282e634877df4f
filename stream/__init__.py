"""microseg: streaming, dynamic customer micro-segmentation.

Importing the package does nothing beyond defining names: no I/O, no configuration loading.
"""

__version__ = "0.1.0"
