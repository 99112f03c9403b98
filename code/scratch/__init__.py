"""Deep Learning from Scratch: the book's library.

Chapter: "Running the chapters yourself" (book/appendix/running.md).
"""
