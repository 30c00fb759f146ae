"""The agent eval: caller scenarios with expected facts, tools, rows and transfers, scored per
turn (``make eval``), and the comparison of embedded-default candidates (``compare``)."""
