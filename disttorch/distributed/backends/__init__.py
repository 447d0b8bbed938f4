"""Communication backends (``mpi``, ``zmq``, ``nccl``; ``_nccl_dispatch`` joins a CPU one and nccl),
each a ``ProcessGroup`` subclass imported on first use."""
