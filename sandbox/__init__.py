"""A local stand-in for seQura's Order Update endpoint, with fault injection."""
