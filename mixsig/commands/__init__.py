"""Subcommands of the ``mixsig`` CLI, one module each (``register(subparsers)`` + ``run(args)``)."""
