"""One thin package per method; they never import each other."""
