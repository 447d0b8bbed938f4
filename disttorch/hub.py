"""``disttorch.hub``: pretrained weights and hub repositories from the local cache, as ``torch.hub``.

disttorch never downloads. ``load_state_dict_from_url`` reads the file PyTorch would have downloaded from
the same cache (``get_dir()/checkpoints/<file name>``; ``get_dir()`` is ``$TORCH_HOME/hub``, by default
``~/.cache/torch/hub``, so weights PyTorch already fetched are found) and loads it with ``disttorch.load``
(which never unpickles). When the file is missing, the error names the URL to fetch and the path to put it
at. ``load``/``list``/``help`` run a ``hubconf.py`` from a local directory (``source="local"``) or from a
repository PyTorch's hub already unpacked into the cache; otherwise they say which archive to unpack where.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import zipfile
from typing import Any, Optional
from urllib.parse import urlparse

__all__ = ["download_url_to_file", "get_dir", "help", "list", "load", "load_state_dict_from_url", "set_dir"]

HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")
ENV_TORCH_HOME = "TORCH_HOME"
ENV_XDG_CACHE_HOME = "XDG_CACHE_HOME"
DEFAULT_CACHE_DIR = "~/.cache"
VAR_DEPENDENCY = "dependencies"
MODULE_HUBCONF = "hubconf.py"

_hub_dir: Optional[str] = None


def _get_torch_home() -> str:
    return os.path.expanduser(os.getenv(ENV_TORCH_HOME, os.path.join(os.getenv(ENV_XDG_CACHE_HOME,
                                                                                DEFAULT_CACHE_DIR), "torch")))


def get_dir() -> str:
    """The hub cache directory: the one given to :func:`set_dir`, else ``$TORCH_HOME/hub``
    (``$XDG_CACHE_HOME/torch/hub`` or ``~/.cache/torch/hub`` when ``TORCH_HOME`` is unset)."""
    if _hub_dir is not None:
        return _hub_dir
    return os.path.join(_get_torch_home(), "hub")


def set_dir(d) -> None:
    """Use directory ``d`` as the hub cache."""
    global _hub_dir
    _hub_dir = os.path.expanduser(os.fspath(d))


def _no_download(what: str, url: str, dst: str, hash_prefix: Optional[str] = None) -> RuntimeError:
    check = (f" Its SHA-256 digest must start with {hash_prefix} (the hash in its file name)."
             if hash_prefix else "")
    return RuntimeError(f"{what}: {dst} is not in the cache, and disttorch does not download files. Fetch {url} on "
                        f"a machine with network access (e.g. `curl -L -o <file> {url}`) and put the file at {dst}."
                        f"{check} To use another cache directory, set TORCH_HOME or call disttorch.hub.set_dir().")


def download_url_to_file(url: str, dst: str, hash_prefix: Optional[str] = None, progress: bool = True) -> None:
    """Always raises: disttorch does not download. The message names ``url`` and where to put the file.

    Raises:
        RuntimeError: what to fetch and where to save it (``dst``).
    """
    raise _no_download("download_url_to_file", url, os.path.expanduser(os.fspath(dst)), hash_prefix)


def _check_hash(path: str, hash_prefix: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if not digest.startswith(hash_prefix):
        raise RuntimeError(f'invalid hash value for {path} (expected "{hash_prefix}", got "{digest}"): the file is '
                           "corrupt or not the one its name says; fetch it again")


def _safe_extract_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, directory: str) -> str:
    target = os.path.realpath(os.path.join(directory, member.filename))
    root = os.path.realpath(directory)
    if os.path.commonpath([root, target]) != root:
        raise RuntimeError(f"refusing to extract {member.filename!r} from {zf.filename}: it would be written outside "
                           f"{directory}")
    zf.extract(member, directory)
    return target


def load_state_dict_from_url(url: str, model_dir: Optional[str] = None, map_location=None, progress: bool = True,
                             check_hash: bool = False, file_name: Optional[str] = None,
                             weights_only: bool = True) -> dict:
    """Load the checkpoint ``url`` names from the hub cache (``model_dir``, default ``get_dir()/checkpoints``).

    The file name is ``file_name`` or the last part of the URL's path. With ``check_hash`` the file's SHA-256
    digest must start with the hex digits after the last ``-`` in its name (``resnet18-f37072fd.pth``); disttorch
    checks this on every load (PyTorch only after downloading).

    Args:
        url: where PyTorch would download the checkpoint from.
        model_dir: the directory holding it.
        map_location: as for ``disttorch.load``.
        progress: accepted for compatibility.
        check_hash: verify the hash prefix in the file name.
        file_name: the cached file's name, when it differs from the URL's.
        weights_only: as for ``disttorch.load``; default True (PyTorch's default here is False): a file from
            the internet may name any module, and ``weights_only=False`` would import it.

    Raises:
        RuntimeError: the file is not in the cache (the message says what to fetch and where to put it), or
            its hash does not match.
    """
    if model_dir is None:
        model_dir = os.path.join(get_dir(), "checkpoints")
    model_dir = os.path.expanduser(os.fspath(model_dir))
    filename = file_name if file_name is not None else os.path.basename(urlparse(url).path)
    cached_file = os.path.join(model_dir, filename)
    hash_prefix = None
    if check_hash:
        m = HASH_REGEX.search(filename)
        hash_prefix = m.group(1) if m else None
    if not os.path.exists(cached_file):
        raise _no_download("load_state_dict_from_url", url, cached_file, hash_prefix)
    if hash_prefix:
        _check_hash(cached_file, hash_prefix)
    from . import load as _load

    if zipfile.is_zipfile(cached_file):
        try:
            zf = zipfile.ZipFile(cached_file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, UnicodeDecodeError, EOFError, OSError,
                ValueError) as e:
            from .serialization import CheckpointError

            raise CheckpointError(f"{cached_file}: corrupted zip archive ({type(e).__name__}: {e})") from None
        with zf:
            members = zf.infolist()
            if len(members) == 1 and not members[0].is_dir():  # PyTorch's legacy format: one file in a zip
                cached_file = _safe_extract_member(zf, members[0], model_dir)
    return _load(cached_file, map_location=map_location, weights_only=weights_only)


# ---- hub repositories -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _on_sys_path(path: str):
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)


def _import_hubconf(repo_dir: str):
    path = os.path.join(repo_dir, MODULE_HUBCONF)
    if not os.path.isfile(path):
        raise RuntimeError(f"disttorch.hub: no {MODULE_HUBCONF} in {repo_dir}")
    spec = importlib.util.spec_from_file_location("hubconf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(module, model: str):
    if not isinstance(model, str):
        raise ValueError("Invalid input: model should be a string of function name")
    deps = getattr(module, VAR_DEPENDENCY, None)
    if deps is not None:
        missing = [d for d in deps if importlib.util.find_spec(d) is None]
        if missing:
            raise RuntimeError(f"Missing dependencies: {', '.join(missing)}")
    func = getattr(module, model, None)
    if func is None or not callable(func):
        raise RuntimeError(f"Cannot find callable {model} in hubconf")
    return func


def _cached_repo(github: str, trust_repo, force_reload: bool, verbose: bool) -> str:
    """The directory of a GitHub repository PyTorch's hub unpacked into the cache (``owner_name_ref``)."""
    repo_info, _, ref = github.partition(":")
    try:
        owner, name = repo_info.split("/")
    except ValueError:
        raise ValueError(f"disttorch.hub: expected 'owner/name[:ref]', got {github!r}") from None
    hub_dir = get_dir()
    refs = [ref] if ref else ["main", "master"]
    dirs = [os.path.join(hub_dir, "_".join([owner, name, r.replace("/", "_")])) for r in refs]
    found = next((d for d in dirs if os.path.isdir(d)), None)
    if found is None or force_reload:
        r = refs[0]
        raise RuntimeError(f"disttorch.hub: repository {owner}/{name} (ref {'/'.join(refs)}) is not in the hub cache "
                           f"{hub_dir}, and disttorch does not download. Fetch "
                           f"https://github.com/{owner}/{name}/zipball/{r} on a machine with network access and "
                           f"unpack it so that its hubconf.py is at {dirs[0]}/hubconf.py, or clone the repository "
                           "and call disttorch.hub.load(path, model, source='local').")
    # PyTorch counts a repository already unpacked into the cache as trusted; trust_repo=False makes it ask,
    # which disttorch (no prompt) turns into an error.
    if trust_repo is False:
        raise RuntimeError(f"disttorch.hub: trust_repo=False for {owner}/{name}; pass trust_repo=True (or 'check') "
                           f"to run its hubconf.py from {found}")
    if verbose:
        sys.stderr.write(f"Using cache found in {found}\n")
    return found


def _repo_dir(repo_or_dir: str, source: str, trust_repo, force_reload: bool, verbose: bool) -> str:
    source = source.lower()
    if source not in ("github", "local"):
        raise ValueError(f'Unknown source: "{source}". Allowed values: "github" | "local".')
    if source == "local":
        return os.fspath(repo_or_dir)
    return _cached_repo(repo_or_dir, trust_repo, force_reload, verbose)


def list(github: str, force_reload: bool = False, skip_validation: bool = False, trust_repo="check",  # noqa: A001
         verbose: bool = True):
    """The entrypoints (public callables) of a cached repository's ``hubconf.py``."""
    repo = _cached_repo(github, trust_repo, force_reload, verbose)
    with _on_sys_path(repo):
        module = _import_hubconf(repo)
    return [f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")]


def help(github: str, model: str, force_reload: bool = False, skip_validation: bool = False,  # noqa: A001
         trust_repo="check") -> Optional[str]:
    """The docstring of entrypoint ``model`` of a cached repository's ``hubconf.py``."""
    repo = _cached_repo(github, trust_repo, force_reload, True)
    with _on_sys_path(repo):
        module = _import_hubconf(repo)
    return _entry(module, model).__doc__


def load(repo_or_dir: str, model: str, *args, source: str = "github", trust_repo="check", force_reload: bool = False,
         verbose: bool = True, skip_validation: bool = False, **kwargs) -> Any:
    """Call entrypoint ``model`` of ``hubconf.py`` in a local directory (``source="local"``) or in a GitHub
    repository already unpacked into the hub cache (``source="github"``, ``"owner/name[:ref]"``).

    Raises:
        RuntimeError: the repository is not in the cache (the message says which archive to unpack where),
            is not trusted, or has no such entrypoint.
    """
    repo = _repo_dir(repo_or_dir, source, trust_repo, force_reload, verbose)
    with _on_sys_path(repo):
        module = _import_hubconf(repo)
        return _entry(module, model)(*args, **kwargs)
