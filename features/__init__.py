"""Capture reading, packet decoding, flow building, NSL-KDD features and encoding.

This package never imports torch or rich: it turns bytes into tables and matrices, and reports
progress only through plain callbacks that ``analyzer`` wires to a terminal.
"""
