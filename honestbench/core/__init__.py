"""The bottom layer: errors, files, seeding, threads, budgets, the generic name -> factory registry.
Imports nothing else from honestbench."""

__version__ = "0.1.0"
