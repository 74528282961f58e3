"""Small utilities that do not belong to a larger subpackage."""
