"""Presentation: terminal tables, the HTML pages and their SVG plots, the PNG plot.

Steps, bench and the CLI use it; it imports none of them (only the registry, for colours).
"""
