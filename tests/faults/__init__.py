"""The fault suite of issue #14 (``make test-faults``) and the soak (``make soak``)."""
