"""Communication backends (``mpi``, ``zmq``, ``nccl``), each a ``ProcessGroup`` subclass imported on first use."""
