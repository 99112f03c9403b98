"""Deep Learning from Scratch: the book's library."""
