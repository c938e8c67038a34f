"""The studies' computations; each function returns a tidy pandas DataFrame."""
