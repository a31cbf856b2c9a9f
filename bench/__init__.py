"""parley's performance suite: scripts that print figures (``make bench``), never timed tests.

Every figure is measured beside its ceiling in the same run (a plain Flask endpoint, pgbench,
the instant stub), because the machine is shared and noisy; ratios and medians are reported.
"""
