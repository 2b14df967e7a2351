"""Virtual SSH switches: paramiko servers that speak Comware and SONiC CLI over VirtualFabric.

- ``fabricsim.ssh.lab``     -- ``start_lab`` / ``Lab`` (inventory, ports, faults, command logs),
  ``lab_inventory``.
- ``fabricsim.ssh.server``  -- the paramiko SSH server (one port per switch, one process).
- ``fabricsim.ssh.comware`` -- H3C Comware 7 CLI emulator.
- ``fabricsim.ssh.sonic``   -- community SONiC (bash + sonic-utilities) emulator.
- ``fabricsim.ssh.device``  -- what both share: command log, faults, config -> physics.

Like the rest of fabricsim it imports nothing of the application: it renders show output and
interprets configuration lines with its own code.
"""

from .device import CommandRecord, SwitchFaults
from .lab import Faults, Lab, lab_inventory, merge_inventories, start_lab

__all__ = ["CommandRecord", "Faults", "Lab", "SwitchFaults", "lab_inventory",
           "merge_inventories", "start_lab"]
