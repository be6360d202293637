"""Batch jobs over many inputs: argument expansion (inputs), the run loop, output files and formats, Ray."""
