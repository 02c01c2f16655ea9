"""The environment variables distgrad reads, named once.

A leaf module (it imports nothing of distgrad): the launcher sets some of these for the ranks it
starts, and it must be able to name them without loading the engine or NumPy.
"""

DATA_ROOT = "DISTGRAD_DATA"  # where datasets are read from (MNIST under $DISTGRAD_DATA/mnist)
EXPECTED_WORLD_SIZE = "DISTGRAD_EXPECTED_WORLD_SIZE"  # set by distgrad-launch, checked by init_process_group
MPIEXEC = "DISTGRAD_MPIEXEC"  # the mpiexec the launcher runs
MPI_CUDA_AWARE = "DISTGRAD_MPI_CUDA_AWARE"  # whether MPI may be handed device buffers
DISTRIBUTED_DEBUG = "DISTGRAD_DISTRIBUTED_DEBUG"  # OFF, INFO or DETAIL
RESTART_COUNT = "DISTGRAD_RESTART_COUNT"  # set by distgrad-launch: 0 on the first attempt, then 1, 2, ...
LAUNCHER = "DISTGRAD_LAUNCHER"  # set by distgrad-launch: its pid@host:start, watched by each rank's keeper
LAUNCH_STATUS_DIR = "DISTGRAD_LAUNCH_STATUS_DIR"  # set by distgrad-launch: where rank keepers record how ranks ended
COLLECTIVE_CHECK = "DISTGRAD_COLLECTIVE_CHECK"  # 0 turns off the default check of mismatched collectives
KERNELS = "DISTGRAD_KERNELS"  # 0 turns off distgrad's fused CUDA kernels (the ops then run CuPy array code)
FAKE_RANKS_PER_NODE = "DISTGRAD_RANKS_PER_NODE"  # groups ranks into nodes of this many (hierarchical all-reduce tests)
HIERARCHICAL_ALLREDUCE = "DISTGRAD_HIERARCHICAL_ALLREDUCE"  # 1: DDP reduces buckets with the hierarchical all-reduce
TIMELINE = "DISTGRAD_TIMELINE"  # a folder: each rank writes its Chrome-trace timeline there
# PyTorch's rendezvous variables (torchrun sets them; init_method="env://" reads them)
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
RANK = "RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_RANK = "LOCAL_RANK"
