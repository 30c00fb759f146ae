"""The Ray cluster `voice-ai run` starts refuses a client without its token (issue #15).

`voice-ai run` runs for real in a subprocess with its own HOME, so the token Ray generates for
it lands in a directory of that run; the clients knock as soon as it prints its cluster's
address (while its pools are still loading) and the run is killed after
(``tests/ray_auth_run.py``, run in the background from the session's start).
Three clients try to join that cluster: one with no token, one with a wrong token (both
must be refused) and one with the token from that HOME (must get in: without this control the
first two could "fail" for any reason).
"""

from __future__ import annotations

import re

import pytest

from tests import background

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_cluster_voice_ai_run_starts_refuses_clients_without_its_token(
        capsys: pytest.CaptureFixture[str]) -> None:
    result = background.result("ray_auth").json_or_error()
    assert "error" not in result, result["error"]
    assert result["auth_mode"] == "token", result
    assert result["token_file"], "Ray made no token for the cluster"
    clients = result["clients"]
    no_token, wrong, right = (clients[k] for k in ("no token", "wrong token", "the token"))
    for refused in (no_token, wrong):
        assert "JOINED" not in refused["stdout"], refused["stdout"]
        assert refused["returncode"] != 0
    assert right["returncode"] == 0 and "JOINED" in right["stdout"], \
        right["stdout"] + right["stderr"]
    for refused in (no_token, wrong):
        text = refused["stdout"] + refused["stderr"]
        assert re.search(r"(?i)authenticat|token", text), text[-2000:]
    with capsys.disabled():
        for name, client in clients.items():
            lines = (client["stdout"] + client["stderr"]).strip().splitlines() or [""]
            said = next((ln for ln in lines if re.search(r"(?i)authenticat", ln)), lines[-1])
            print(f"\nclient with {name}: exit {client['returncode']}: {said.strip()[:160]}")
