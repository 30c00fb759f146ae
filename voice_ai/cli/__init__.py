"""The ``voice-ai`` command line. Commands that need Ray are added by ``deployments.cli``."""
