"""The ``bourse`` subcommands, one module each: its arguments
(``add_arguments``, which also names the function that runs it) and its
code. ``bourse.cli`` imports a command's module only when that command is
parsed, so no command pays for another's imports: ``bourse serve --help``
never loads the server, the benchmarks or matplotlib.
"""
