"""The scale-out backend: MongoDB through motor (the only package that imports it)."""
