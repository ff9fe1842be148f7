"""The reconciler: closes records of runs that stopped outside the workflow's own writes, reopens them on redrive."""
