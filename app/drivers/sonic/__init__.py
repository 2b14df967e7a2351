"""Community SONiC: parsers of sonic-utilities output and renderers of its config commands."""
