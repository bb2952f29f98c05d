"""Many runs per device: K runs that differ only in their seed, trained in lockstep."""

from agem.fleet.fleet import FLEET_STRATEGIES, Fleet

__all__ = ["FLEET_STRATEGIES", "Fleet"]
