"""``python -m voice_ai.simulators --profile realistic --port-base 9100``: run the three
provider simulators on loopback until interrupted, printing the base URLs to use."""

from __future__ import annotations

import argparse
import asyncio
import json

from voice_ai.simulators.profile import PROFILE_NAMES
from voice_ai.simulators.suite import ProviderSimulators


async def _serve(profile: str, port_base: int, host: str, seed: int) -> None:
    async with ProviderSimulators(profile, host=host, port_base=port_base, seed=seed) as sims:
        print(json.dumps({"profile": profile, **sims.base_urls()}), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m voice_ai.simulators")
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="realistic")
    parser.add_argument("--port-base", type=int, default=0, help="0: free ports")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.profile, args.port_base, args.host, args.seed))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
