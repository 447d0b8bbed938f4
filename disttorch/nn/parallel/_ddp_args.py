"""DistributedDataParallel's constructor checks and deprecations, with PyTorch 2.13's messages."""
from __future__ import annotations

import warnings


def device_args(all_params: list, device_ids, output_device) -> tuple:
    """``(device_ids, output_device)`` after PyTorch's checks: one device type per module, and no device ids
    for CPU modules (or modules spread over several devices), where both become None."""
    device_types = {p.device.type for p in all_params}
    if len(device_types) != 1:
        raise ValueError("DistributedDataParallel's input module must be on the same type of devices, but input "
                         f"module parameters locate in {device_types}.")
    devices = {p.device for p in all_params}
    if device_ids is None or len(device_ids) == 0 or "cpu" in device_types or len(devices) > 1:
        if device_ids or output_device:
            raise ValueError("DistributedDataParallel device_ids and output_device arguments only work with "
                             "single-device/multiple-device GPU modules or CPU modules, but got device_ids "
                             f"{device_ids}, output_device {output_device}, and module parameters {devices}.")
        return None, None
    return device_ids, output_device


def buffer_sync_flags(broadcast_buffers, forward_sync_buffers) -> tuple:
    """``(forward_sync_buffers, init_sync_buffers)`` from the deprecated ``broadcast_buffers`` and its
    replacement ``forward_sync_buffers`` (which always syncs buffers at construction), warning as PyTorch does."""
    if broadcast_buffers is not None:
        if forward_sync_buffers is not None:
            warnings.warn("Both `broadcast_buffers` and `forward_sync_buffers` were specified. `broadcast_buffers` "
                          "is deprecated and its value is ignored when `forward_sync_buffers` is provided.",
                          FutureWarning, stacklevel=3)
        else:
            warnings.warn("`broadcast_buffers` is deprecated. Use `forward_sync_buffers` instead. IMPORTANT: "
                          "unlike `broadcast_buffers=False`, `forward_sync_buffers=False` still syncs buffers at "
                          "init. If you rely on buffers NOT being synced at init (e.g. rank-local buffers), keep "
                          "using `broadcast_buffers=False` until `init_sync_buffers` is available.",
                          FutureWarning, stacklevel=3)
    if forward_sync_buffers is not None:
        return bool(forward_sync_buffers), True
    flag = broadcast_buffers if broadcast_buffers is not None else True
    return bool(flag), bool(flag)


def warn_check_reduction() -> None:
    warnings.warn("The `check_reduction` argument in `DistributedDataParallel` module is deprecated. Please "
                  "avoid using it.", FutureWarning, stacklevel=3)
