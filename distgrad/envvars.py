"""The environment variables distgrad reads, named once.

A leaf module (it imports nothing of distgrad): the launcher sets some of these for the ranks it
starts, and it must be able to name them without loading the engine or NumPy.
"""

DATA_ROOT = "DISTGRAD_DATA"  # where datasets are read from (MNIST under $DISTGRAD_DATA/mnist)
EXPECTED_WORLD_SIZE = "DISTGRAD_EXPECTED_WORLD_SIZE"  # set by distgrad-launch, checked by init_process_group
MPIEXEC = "DISTGRAD_MPIEXEC"  # the mpiexec the launcher runs
MPI_CUDA_AWARE = "DISTGRAD_MPI_CUDA_AWARE"  # whether MPI may be handed device buffers
DISTRIBUTED_DEBUG = "DISTGRAD_DISTRIBUTED_DEBUG"  # OFF, INFO or DETAIL
