"""The core: the hook table and `Plugin` base, the clock, batching, `BaseTemplate` (the loop,
its public phases and its state checks), the evaluator and the captured step.

Everything above (plugins, strategies, the fleet, runs, sweeps, the command line) builds on
it; it imports only benchmarks, models, metrics and data below it.
"""
