"""Ray Serve applications and the command line entry point (the outermost layer)."""
