"""Inner test module for tests/test_pytest_holders.py: every way pytest itself holds objects."""

import logging
import unittest
import warnings

import pytest

log = logging.getLogger(__name__)


class User:
    def __init__(self, name="u"):
        self.name = name

    def __repr__(self):
        return f"User({self.name})"


class MyError(Exception):
    def __init__(self, user):
        super().__init__(user)
        self.user = user


def test_caplog_records_hold_args(caplog):
    caplog.set_level(logging.INFO)
    log.info("user %s", User())
    assert "user" in caplog.text


def test_capsys(capsys):
    print(User())
    assert "User" in capsys.readouterr().out


def test_raises_holds_exception():
    with pytest.raises(MyError) as info:
        raise MyError(User())
    assert info.value.user


def test_monkeypatch(monkeypatch):
    monkeypatch.setattr(logging, "some_user", User(), raising=False)


@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(n):
    users = [User(str(i)) for i in range(n)]
    assert users


class TestClassBased:
    def test_method(self):
        self.user = User()


class TestUnittest(unittest.TestCase):
    def setUp(self):
        self.user = User()

    def test_it(self):
        self.assertTrue(self.user)


@pytest.fixture(scope="module")
def module_user():
    return User("module")


def test_module_fixture_first_use(module_user):
    assert module_user


@pytest.fixture(scope="session")
def session_users():
    return [User("s")]


def test_session_fixture_first_use(session_users):
    session_users.append(User("added"))


@pytest.fixture
def yielded():
    user = User("y")
    yield user
    user.name = "done"


def test_yield_fixture(yielded):
    assert yielded


def test_tmp_path(tmp_path):
    (tmp_path / "x").write_text(repr(User()))


def test_addfinalizer(request):
    user = User()
    request.addfinalizer(lambda: user.name)


def test_warning_records_args():
    with pytest.warns(UserWarning):
        warnings.warn(UserWarning("with a user", User()), stacklevel=1)


def test_warning_captured_by_pytest():
    warnings.warn(UserWarning(User("recorded")), stacklevel=1)


def test_recwarn(recwarn):
    warnings.warn(UserWarning(User("rec")), stacklevel=1)
    assert len(recwarn) == 1


def make_user():
    """
    >>> make_user()
    User(doc)
    """
    return User("doc")


@pytest.fixture
def logs_an_error_on_teardown():
    yield
    user = User()
    try:
        raise MyError(user)
    except MyError:
        # pytest's logging plugin keeps this record (its exc_info: the traceback, the frame,
        # its local ``user``) until the next test begins.
        log.exception("teardown of %s", user)


def test_teardown_log_record_with_exc_info(logs_an_error_on_teardown):
    pass


@pytest.mark.parametrize("expected", [pytest.raises(MyError)])
def test_a_raises_parameter_keeps_what_it_caught(expected):
    # anyio's suite does this: the parameter lives in the item's callspec for the session, and
    # keeps the exception, its traceback, and this frame's locals.
    user = User()
    with expected:
        raise MyError(user)
