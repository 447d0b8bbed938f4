"""``disttorch.launcher``: the ``disttorch`` command (launch, doctor, ...).

Installed from the top-level ``launcher/`` directory. It never imports the tensor engine, so the
command starts fast.
"""
