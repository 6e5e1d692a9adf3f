"""Captures to the model's input matrix, as four stages in the order a packet passes through them.

``capture`` (bytes -> packet columns) -> ``flows`` (packet columns -> flow records) -> ``kdd`` (flow records ->
NSL-KDD's 41 features) -> ``encode`` (feature rows -> float32 matrix). ``common`` holds what every stage and the
model share (errors with exit codes, atomic writes, the progress callback). A stage imports only from earlier
stages and ``common`` (``tests/test_layers.py`` reads the imports to hold this).

This package never imports torch or rich: it turns bytes into tables and matrices, and reports
progress only through plain callbacks that ``analyzer`` wires to a terminal.
"""
