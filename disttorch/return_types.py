"""Named-tuple results of ops that return several tensors, as ``torch.return_types``.

``disttorch.max(x, 1)`` returns ``return_types.max(values, indices)``: a tuple (index it, unpack it)
whose fields are also attributes (``.values``, ``.indices``). It prints like PyTorch's::

    disttorch.return_types.max(
    values=tensor([...]),
    indices=tensor([...]))
"""
from __future__ import annotations

__all__ = ["max", "min", "sort", "topk", "kthvalue", "median", "nanmedian", "mode", "aminmax", "cummax",
           "cummin", "slogdet", "qr", "svd", "linalg_svd", "eig", "eigh", "linalg_eig", "linalg_eigh",
           "linalg_slogdet", "linalg_qr", "linalg_inv_ex", "linalg_cholesky_ex", "linalg_lstsq", "lu_unpack",
           "linalg_lu", "linalg_lu_factor", "frexp", "histogram", "geqrf"]


def _field(i: int, name: str) -> property:
    return property(lambda self: tuple.__getitem__(self, i), doc=f"Field {i} ({name}).")


class _ReturnType(tuple):
    """Base: a fixed-length tuple with named fields, built from a sequence like PyTorch's structseq."""

    __slots__ = ()
    _fields: tuple = ()

    def __new__(cls, *args, **kwargs):
        n = len(cls._fields)
        if len(args) == 1 and n != 1 and not kwargs and isinstance(args[0], (tuple, list)):
            args = tuple(args[0])
        if kwargs:
            args = args + tuple(kwargs.pop(f) for f in cls._fields[len(args):] if f in kwargs)
            if kwargs:
                raise TypeError(f"return_types.{cls.__name__}() got unexpected keyword arguments {sorted(kwargs)}")
        if len(args) != n:
            raise TypeError(f"return_types.{cls.__name__}() takes a {n}-sequence ({len(args)}-sequence given)")
        return tuple.__new__(cls, args)

    def __repr__(self) -> str:
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
        return f"disttorch.return_types.{type(self).__name__}(\n{body})"

    def __reduce__(self):
        return (type(self), (tuple(self),))

    def _asdict(self) -> dict:
        return dict(zip(self._fields, self))

    # structseq attributes PyTorch exposes
    @property
    def n_fields(self) -> int:
        return len(self._fields)

    n_sequence_fields = n_fields
    n_unnamed_fields = 0


class _ValuesIndices(_ReturnType):
    __slots__ = ()
    _fields = ("values", "indices")
    values = _field(0, "values")
    indices = _field(1, "indices")


class max(_ValuesIndices):  # noqa: A001 - PyTorch's name
    __slots__ = ()


class min(_ValuesIndices):  # noqa: A001
    __slots__ = ()


class sort(_ValuesIndices):
    __slots__ = ()


class topk(_ValuesIndices):
    __slots__ = ()


class kthvalue(_ValuesIndices):
    __slots__ = ()


class median(_ValuesIndices):
    __slots__ = ()


class nanmedian(_ValuesIndices):
    __slots__ = ()


class mode(_ValuesIndices):
    __slots__ = ()


class cummax(_ValuesIndices):
    __slots__ = ()


class cummin(_ValuesIndices):
    __slots__ = ()


class aminmax(_ReturnType):
    __slots__ = ()
    _fields = ("min", "max")
    min = _field(0, "min")
    max = _field(1, "max")


# Result types of the linear-algebra and misc families (used by other op files).
class slogdet(_ReturnType):
    __slots__ = ()
    _fields = ("sign", "logabsdet")
    sign = _field(0, "sign")
    logabsdet = _field(1, "logabsdet")


class linalg_slogdet(slogdet):
    __slots__ = ()


class qr(_ReturnType):
    __slots__ = ()
    _fields = ("Q", "R")
    Q = _field(0, "Q")
    R = _field(1, "R")


class linalg_qr(qr):
    __slots__ = ()


class svd(_ReturnType):
    __slots__ = ()
    _fields = ("U", "S", "V")
    U = _field(0, "U")
    S = _field(1, "S")
    V = _field(2, "V")


class linalg_svd(_ReturnType):
    __slots__ = ()
    _fields = ("U", "S", "Vh")
    U = _field(0, "U")
    S = _field(1, "S")
    Vh = _field(2, "Vh")


class _Eig(_ReturnType):
    __slots__ = ()
    _fields = ("eigenvalues", "eigenvectors")
    eigenvalues = _field(0, "eigenvalues")
    eigenvectors = _field(1, "eigenvectors")


class eig(_Eig):
    __slots__ = ()


class eigh(_Eig):
    __slots__ = ()


class linalg_eig(_Eig):
    __slots__ = ()


class linalg_eigh(_Eig):
    __slots__ = ()


class linalg_inv_ex(_ReturnType):
    __slots__ = ()
    _fields = ("inverse", "info")
    inverse = _field(0, "inverse")
    info = _field(1, "info")


class linalg_cholesky_ex(_ReturnType):
    __slots__ = ()
    _fields = ("L", "info")
    L = _field(0, "L")
    info = _field(1, "info")


class linalg_lstsq(_ReturnType):
    __slots__ = ()
    _fields = ("solution", "residuals", "rank", "singular_values")
    solution = _field(0, "solution")
    residuals = _field(1, "residuals")
    rank = _field(2, "rank")
    singular_values = _field(3, "singular_values")


class lu_unpack(_ReturnType):
    __slots__ = ()
    _fields = ("P", "L", "U")
    P = _field(0, "P")
    L = _field(1, "L")
    U = _field(2, "U")


class linalg_lu(lu_unpack):
    __slots__ = ()


class linalg_lu_factor(_ReturnType):
    __slots__ = ()
    _fields = ("LU", "pivots")
    LU = _field(0, "LU")
    pivots = _field(1, "pivots")


class frexp(_ReturnType):
    __slots__ = ()
    _fields = ("mantissa", "exponent")
    mantissa = _field(0, "mantissa")
    exponent = _field(1, "exponent")


class histogram(_ReturnType):
    __slots__ = ()
    _fields = ("hist", "bin_edges")
    hist = _field(0, "hist")
    bin_edges = _field(1, "bin_edges")


class geqrf(_ReturnType):
    __slots__ = ()
    _fields = ("a", "tau")
    a = _field(0, "a")
    tau = _field(1, "tau")
