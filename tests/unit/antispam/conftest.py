from tests.unit.antispam.helpers import store  # noqa: F401 - fixture
from tests.unit.dns_helpers import dns  # noqa: F401 - fixture
