"""Application-wide event dispatch. The public facade is :mod:`encore.events.api`."""
