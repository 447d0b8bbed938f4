"""no_grad, enable_grad, set_grad_enabled and inference_mode as context managers and decorators."""
import disttorch as torch


def test_no_grad_context_and_restore():
    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        assert not torch.is_grad_enabled()
        assert not (x * 2).requires_grad
        with torch.enable_grad():
            assert (x * 2).requires_grad
    assert torch.is_grad_enabled()


def test_no_grad_decorator_with_and_without_parentheses():
    x = torch.ones(2, requires_grad=True)

    @torch.no_grad()
    def f(t):
        return t * 2

    @torch.no_grad
    def g(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    assert torch.is_grad_enabled()


def test_no_grad_decorates_generators():
    x = torch.ones(2, requires_grad=True)

    @torch.no_grad()
    def gen():
        yield (x * 2).requires_grad
        yield torch.is_grad_enabled()

    assert list(gen()) == [False, False]
    assert torch.is_grad_enabled()


def test_set_grad_enabled_as_function_and_context():
    x = torch.ones(2, requires_grad=True)
    with torch.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        assert not torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)


def test_inference_mode():
    x = torch.ones(2, requires_grad=True)
    with torch.inference_mode():
        assert torch.is_inference_mode_enabled()
        assert not (x * 2).requires_grad
    with torch.inference_mode(False):
        assert (x * 2).requires_grad

    @torch.inference_mode()
    def f():
        return (x * 2).requires_grad

    assert f() is False


def test_exceptions_restore_grad_mode():
    try:
        with torch.no_grad():
            raise ValueError("boom")
    except ValueError:
        pass
    assert torch.is_grad_enabled()
