"""The Faust worker and what it runs with (see each module's docstring for what it owns)."""
