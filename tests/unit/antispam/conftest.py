from tests.unit.antispam.helpers import store  # noqa: F401 - fixture
