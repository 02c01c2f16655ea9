"""``distgrad-launch`` (``python -m distgrad.launch``): starts a script on N ranks.

Locally through the MPI's own ``mpiexec`` (MPICH or Open MPI, from PyPI or the system), inside a
SLURM allocation through ``srun --mpi=<mode>``, and with ``--slurm`` by writing and submitting an
sbatch script. Every rank is told the world size it should see (``DISTGRAD_EXPECTED_WORLD_SIZE``),
so a launch that silently yields N worlds of size 1 fails in ``init_process_group`` instead.
"""
