"""Many runs per device: K runs that differ only in their seed, trained in lockstep."""

from agem.fleet.fleet import Fleet, fleet_classes

__all__ = ["Fleet", "fleet_classes"]
