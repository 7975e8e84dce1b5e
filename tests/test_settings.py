"""Server settings read from the environment: defaults, shared mode, and clear refusals of bad values."""

import pytest

from compression.core import settings
from compression.core.errors import InputError


def test_shared_mode_lowers_the_upload_cap_unless_it_is_set(monkeypatch):
    monkeypatch.delenv(settings.MAX_UPLOAD_ENV, raising=False)
    monkeypatch.delenv(settings.SHARED_ENV, raising=False)
    assert settings.max_upload_mb() == settings.DEFAULT_MAX_UPLOAD_MB
    monkeypatch.setenv(settings.SHARED_ENV, "1")
    assert settings.max_upload_mb() == settings.SHARED_MAX_UPLOAD_MB < settings.DEFAULT_MAX_UPLOAD_MB
    monkeypatch.setenv(settings.MAX_UPLOAD_ENV, "120")
    assert settings.max_upload_mb() == 120


@pytest.mark.parametrize("env", ["MAX_JOBS_ENV", "TORCH_THREADS_ENV", "MAX_UPLOAD_ENV"])
def test_a_bad_number_is_refused_with_its_variable_named(monkeypatch, env):
    name = getattr(settings, env)
    monkeypatch.setenv(name, "0")
    reader = {"MAX_JOBS_ENV": settings.max_jobs, "TORCH_THREADS_ENV": settings.torch_threads,
              "MAX_UPLOAD_ENV": settings.max_upload_mb}[env]
    with pytest.raises(InputError, match=name):
        reader()
