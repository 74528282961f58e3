"""The abstract key-value store API and its stores."""
