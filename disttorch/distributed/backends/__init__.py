"""Communication backends (``mpi``, ``zmq``; ``nccl`` is planned, issue 13),
each a ``ProcessGroup`` subclass imported on first use."""
