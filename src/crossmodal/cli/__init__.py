"""The ``crossmodal`` command line: one module per command group."""
