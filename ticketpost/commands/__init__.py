"""Sub-commands of ``ticketpost``: each module defines ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``func`` to a callable taking the parsed
arguments and returning an exit code.
"""
