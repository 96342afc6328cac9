"""Readers and writers for the file formats omnigen emits and lints.

Each writer has a reader next to it, and the pair round-trips: what a writer
encodes, the reader (and the real consumer: Docker Compose, Asterisk) reads
back byte for byte.
"""
