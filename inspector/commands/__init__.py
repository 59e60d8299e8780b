"""Built-in sub-commands of `pcb-inspector`; each module has `register(subparsers)`."""
