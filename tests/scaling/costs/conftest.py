from tests.scaling.store.conftest import shared_store_url, store  # noqa: F401 - shared backend fixtures
