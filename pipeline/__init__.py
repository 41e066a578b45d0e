"""Data pipeline behind ``make data``: download raw blueprint strings, decode, filter, write datasets."""
