"""fabricsim: the virtual RoCE fabric (imports nothing else of the project).

- ``fabricsim.topology``  -- Spine/Leaf/TOR inventory generator (``generate_fabric``).
- ``fabricsim.physics``   -- ``Thresholds``, ``simulate``, ``simulate_batch``, ``SimResult``,
  the static baselines and the documented ``objective``.
- ``fabricsim.fluid``     -- DCQCN fluid model (``run_fluid``, ``p_star``, ``q_star_bytes``).
- ``fabricsim.fabric``    -- ``VirtualFabric`` (switch-like counters, QoS state, traffic).
- ``fabricsim.scenario``  -- YAML traffic schedules.
- ``fabricsim.workloads`` -- HPCC flow-size CDFs, Poisson arrivals.
- ``fabricsim.cli``       -- ``app`` (typer): ``run``, ``fluid``, ``sweep``.

Submodules are imported explicitly so that ``fabricsim.topology`` stays light.
"""
