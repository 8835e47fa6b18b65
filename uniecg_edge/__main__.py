"""``python -m uniecg_edge`` = the ``uniecg-edge`` command."""

from .cli import main

main(prog_name="uniecg-edge")
