"""The ``bourse`` subcommands, one module each: its arguments
(``add_arguments``, which also names the function that runs it) and its
code. ``bourse.cli`` imports a command's module only when that command is
parsed, so no command pays for another's imports: ``bourse serve --help``
never loads the server, the benchmarks or matplotlib.

This package is part of the command line, with ``bourse.cli``: besides
``bourse.bench`` itself, they are the only code that may import
``bourse.bench`` (``bench``, ``scale``, ``report``, ``gen`` and
``null-server`` are its commands). The server never imports this package,
so it never loads the benchmarks.
"""
