"""Speech and language providers behind one small async interface (``engines``)."""
