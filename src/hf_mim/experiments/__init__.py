"""Experiments built from the package's commands (label efficiency on CIFAR-10)."""
