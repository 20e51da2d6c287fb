"""The bottom layer: errors, files, seeding, threads, the generic name -> factory registry. Imports nothing
else from bench."""
