"""Terminal output helpers; the public facade is :mod:`encore.terminal.api`."""
