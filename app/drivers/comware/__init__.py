"""H3C Comware 7: parsers of display output and renderers of system-view configuration."""
