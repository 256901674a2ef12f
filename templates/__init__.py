"""Jinja templates for the generated PyTorch code (shipped as the package `derive.templates`)."""
